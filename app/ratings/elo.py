"""Online Elo over responses, and its normalisation into a scalar reward per prompt.

The source notes rank responses by Elo: every human comparison of two responses to the same prompt
is a game, the winner takes rating points from the loser, and "the Elo scores are then normalised
into a scalar reward signal". This module is that, and nothing else: it knows response ids and
choices, not the database.

Choices follow the ``judgements`` table: ``a`` and ``b`` are wins, ``tie`` is half a win for each
side. ``both_bad`` is **skipped by default**: it says both responses are unacceptable, not that they
are equally good, so counting it as a tie would pull a good-but-flawed and a terrible response
together. Absolute badness is the classifier's job (``response_labels``). Pass
``both_bad="tie"`` to count it as a tie instead.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Callable, Hashable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Literal

Choice = Literal["a", "b", "tie", "both_bad"]
BothBad = Literal["skip", "tie"]

_SCORES: dict[str, float] = {"a": 1.0, "b": 0.0, "tie": 0.5}


@dataclass(frozen=True)
class Game:
    """One judgement seen as a game between two responses to the same prompt."""

    a: Hashable  # id of response A
    b: Hashable  # id of response B
    choice: Choice  # what the annotator chose


def expected_score(rating_a: float, rating_b: float, scale: float = 400.0) -> float:
    """E_a = 1 / (1 + 10^((R_b − R_a) / scale)): A's expected score against B.

    A difference of ``scale`` points means 10:1 odds, the usual chess convention.
    """
    return 1.0 / (1.0 + 10.0 ** ((rating_b - rating_a) / scale))


def elo_update(
    rating_a: float, rating_b: float, score_a: float, k: float = 32.0, scale: float = 400.0
) -> tuple[float, float]:
    """R'_a = R_a + K·(S_a − E_a), R'_b = R_b − K·(S_a − E_a): points move from loser to winner.

    The update is zero-sum, so the mean rating stays at the initial rating.
    """
    delta = k * (score_a - expected_score(rating_a, rating_b, scale))
    return rating_a + delta, rating_b - delta


def game_score(choice: Choice, both_bad: BothBad = "skip") -> float | None:
    """A's score for a choice: 1, 0 or ½; None when the judgement is not a game."""
    if choice == "both_bad":
        return 0.5 if both_bad == "tie" else None
    if choice not in _SCORES:
        raise ValueError(f"unknown choice {choice!r}")
    return _SCORES[choice]


@dataclass
class OnlineElo:
    """Ratings updated one judgement at a time, in the order they were made."""

    k: float = 32.0  # points at stake per game
    initial: float = 1000.0  # rating of a response before its first game
    scale: float = 400.0  # rating difference that means 10:1 odds
    both_bad: BothBad = "skip"  # see the module docstring
    ratings: dict[Hashable, float] = field(default_factory=dict)  # response id -> rating
    games: dict[Hashable, int] = field(default_factory=lambda: defaultdict(int))  # id -> games

    def rating(self, item: Hashable) -> float:
        """The current rating of ``item``; the initial rating if it has not played."""
        return self.ratings.get(item, self.initial)

    def record(self, a: Hashable, b: Hashable, choice: Choice) -> bool:
        """Play one game; return False (and change nothing) when the judgement is skipped."""
        if a == b:
            raise ValueError("a response cannot play against itself")
        score = game_score(choice, self.both_bad)
        if score is None:
            return False
        self.ratings[a], self.ratings[b] = elo_update(self.rating(a), self.rating(b), score, self.k, self.scale)
        self.games[a] += 1
        self.games[b] += 1
        return True


GameLike = Game | tuple[Hashable, Hashable, Choice]  # a Game or (a, b, choice)


def as_game(game: GameLike) -> Game:
    """A :class:`Game` from a Game or an (a, b, choice) tuple."""
    return game if isinstance(game, Game) else Game(*game)


def replay(games: Iterable[GameLike], **options: object) -> OnlineElo:
    """An :class:`OnlineElo` built with ``options`` that has played ``games`` in order."""
    elo = OnlineElo(**options)  # type: ignore[arg-type]
    for game in map(as_game, games):
        elo.record(game.a, game.b, game.choice)
    return elo


def elo_ratings(games: Iterable[GameLike], **options: object) -> dict[Hashable, float]:
    """Replay ``games`` in order through an :class:`OnlineElo` built with ``options``."""
    return dict(replay(games, **options).ratings)


def normalise_per_prompt(
    ratings: Mapping[Hashable, float],
    prompt_of: Mapping[Hashable, Hashable],
    method: Literal["logistic", "minmax"] = "logistic",
    scale: float = 400.0,
) -> dict[Hashable, float]:
    """Map each response's Elo into a reward in [0, 1], comparing it only with its own prompt.

    Ratings are only comparable between responses that met, i.e. answered the same prompt, so
    each prompt is normalised on its own. ``logistic`` (default) gives the expected score against
    a response rated at the prompt's mean: 0.5 is average, and a tiny rating gap stays a tiny
    reward gap. ``minmax`` stretches each prompt to span exactly [0, 1] (0.5 when all are equal).
    """
    by_prompt: dict[Hashable, list[Hashable]] = defaultdict(list)
    for response in ratings:
        by_prompt[prompt_of[response]].append(response)
    rewards: dict[Hashable, float] = {}
    for responses in by_prompt.values():
        values = [ratings[r] for r in responses]
        if method == "logistic":
            mean = math.fsum(values) / len(values)
            rewards.update({r: expected_score(v, mean, scale) for r, v in zip(responses, values, strict=True)})
        elif method == "minmax":
            low, high = min(values), max(values)
            span = high - low
            rewards.update({r: (v - low) / span if span > 0 else 0.5 for r, v in zip(responses, values, strict=True)})
        else:
            raise ValueError(f"unknown normalisation {method!r}")
    return rewards


def elo_rewards(
    games: Iterable[GameLike], prompt_of: Callable[[Hashable], Hashable], **options: object
) -> dict[Hashable, tuple[float, float]]:
    """(Elo rating, reward) of every response that played: the games replayed in order, then each rating
    normalised (logistic) against its own prompt's responses, ``prompt_of`` saying whose a response is.

    The one path from judgements to the seed's scalar reward, whatever names the responses: database ids
    (the prompt page, exports) or (prompt, text) keys (the reward job's ``target: elo``)."""
    elo = replay(games, **options)
    rewards = normalise_per_prompt(elo.ratings, {r: prompt_of(r) for r in elo.ratings}, scale=elo.scale)
    return {r: (rating, rewards[r]) for r, rating in elo.ratings.items()}
