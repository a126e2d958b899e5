"""The regression targets of a reward model trained with ``target: elo``: each response's Elo over the
training judgements, normalised per prompt, as the seed describes ("use an Elo system to assign a
relative rating to each response … normalised into a scalar reward").

Every training example is one game its chosen response won, played in the examples' order (the job
reads judgements by id, i.e. in the order they were made). The examples are A/B judgements only (the
job reads no ties for this target, ``encode_elo_pairs`` drops any it is given, and both-bad is never a
reward example), so these are A/B games; the prompt page and the exports, which read the judgements
themselves, also count ties as half a win.

A response is known by its prompt (the example's ``prompt_key``, else a hash of the prompt) and its
text: the same answer judged in two pairs is one player. Only the examples given are read, so the
trainer passes the training split alone: no validation judgement moves a target.
"""

from __future__ import annotations

from collections.abc import Sequence
from operator import itemgetter

from app.ratings.elo import elo_rewards
from app.training.core.data import PreferenceExample, prompt_key_of

ResponseKey = tuple[str, str]  # (prompt key, response text)
AVERAGE = 0.5  # the reward of a response that played no game (its pair compared two equal texts)


def elo_targets(examples: Sequence[PreferenceExample]) -> list[tuple[float, float]]:
    """(chosen, rejected) reward targets in [0, 1] of each example, in order."""
    keys = [(prompt_key_of(ex), ex.chosen, ex.rejected) for ex in examples]
    games = [((p, chosen), (p, rejected), "a") for p, chosen, rejected in keys if chosen != rejected]
    rewards = {key: reward for key, (_, reward) in elo_rewards(games, itemgetter(0)).items()}
    return [(rewards.get((p, chosen), AVERAGE), rewards.get((p, rejected), AVERAGE)) for p, chosen, rejected in keys]
