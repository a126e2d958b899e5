"""The responses to one prompt rated from the judgements comparing them: online Elo, its per-prompt
reward, and the Bradley–Terry fit beside it.

Online Elo (the seed's) depends on the order the games were played: a response that won early and
lost late ends lower than one that lost early and won late. The Bradley–Terry maximum-likelihood fit
of the same games does not, so the two side by side show how far the order moved a rating. Both count
a tie as half a win and skip both-bad (see :mod:`app.ratings.elo`). With a handful of games a response
that won all of its games has no finite BT maximum; the fit's tiny penalty keeps it finite but far
apart, which says exactly that.
"""

from __future__ import annotations

from collections.abc import Hashable, Iterable
from dataclasses import dataclass

from app.ratings.bradley_terry import fit_bradley_terry, to_elo_scale
from app.ratings.elo import GameLike, as_game, normalise_per_prompt, replay


@dataclass(frozen=True)
class ResponseRating:
    """One response's ratings among the other responses to its prompt."""

    response: Hashable
    games: int  # games it played (ties included, both-bad skipped)
    elo: float  # online Elo after every game, in order (start 1000, K 32)
    reward: float  # the Elo normalised per prompt (logistic): 0.5 is the prompt's average
    bt: float  # Bradley–Terry MLE of the same games on the Elo scale (mean 1000), order-independent


def rate_responses(games: Iterable[GameLike]) -> list[ResponseRating]:
    """Every response that played, best Elo first; empty when no judgement was a game."""
    played = [as_game(game) for game in games]
    elo = replay(played)
    if not elo.ratings:
        return []
    rewards = normalise_per_prompt(elo.ratings, dict.fromkeys(elo.ratings, "prompt"), scale=elo.scale)
    theta = fit_bradley_terry((g.a, g.b, g.choice) for g in played if g.choice != "both_bad")
    rows = [
        ResponseRating(r, elo.games[r], rating, rewards[r], float(to_elo_scale(theta[r])))
        for r, rating in elo.ratings.items()
    ]
    return sorted(rows, key=lambda row: -row.elo)
