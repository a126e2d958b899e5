"""Each exported answer's Elo among the answers to its prompt: the table formats' ``elo_*`` columns.

A rating needs every game of its prompt, and the rows stream out pair by pair, so the ratings are
computed first, in a pass of their own that keeps memory bounded at any size: it reads only (prompt,
response A, response B, choice) of each judgement, by id (the order they were made), a chunk per
transaction like the rows, into flat arrays (25 bytes a game); sorts them by prompt (stable, so each
prompt's games keep their order); replays each prompt's games through online Elo and normalises them
within the prompt (:func:`app.ratings.elo.elo_rewards`); and keeps two floats per answer, in arrays
sorted by response id (24 bytes an answer). A million judgements take about 25 MB while the games are
sorted and 24 MB per million answers after; the rows then look each answer up by binary search.

The games are every judgement the export's filters select (dates, annotators, prompt set, policy,
quarantine; gold pairs never), each annotator's own verdict even where the rows are majorities, and
before the ties, both-bad and agreement rules decide which rows are written: those say what goes in
the file, not what the annotators said. A tie is half a win each; both-bad is no game, so an answer
judged only both-bad has no rating (an empty cell).
"""

from __future__ import annotations

from array import array
from collections.abc import Iterable
from dataclasses import dataclass
from itertools import pairwise
from typing import Any

import numpy as np
from sqlalchemy.orm import Session

from app.export import query
from app.export.filters import ExportFilters
from app.ratings.elo import elo_rewards

CHOICES = ("a", "b", "tie")  # a game's choice, stored as its index here; both-bad is no game
CODE = {choice: code for code, choice in enumerate(CHOICES)}


@dataclass(frozen=True)
class ResponseElo:
    """Elo rating and per-prompt reward of every answer that played, looked up by response id."""

    ids: np.ndarray  # int64, sorted
    ratings: np.ndarray  # float64, Elo from 1000, K 32
    rewards: np.ndarray  # float64, the rating normalised within its prompt: 0.5 is the prompt's average

    def of(self, response_id: int) -> tuple[float | None, float | None]:
        """(rating, reward) of a response; (None, None) when it played no game."""
        i = int(np.searchsorted(self.ids, response_id))
        if i < len(self.ids) and self.ids[i] == response_id:
            return float(self.ratings[i]), float(self.rewards[i])
        return None, None


def _read(rows: Iterable[Any]) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(prompt, response A, response B, choice code) of each game, as flat arrays (8 + 8 + 8 + 1 bytes a game)."""
    prompts, a, b, choices = array("q"), array("q"), array("q"), array("b")
    for row in rows:
        code = CODE.get(getattr(row.choice, "value", row.choice))
        if code is not None:
            prompts.append(row.prompt_id)
            a.append(row.response_a_id)
            b.append(row.response_b_id)
            choices.append(code)
    return tuple(np.frombuffer(x, dtype=x.typecode) for x in (prompts, a, b, choices))  # type: ignore[return-value]


def _sorted_by_id(ids: array, ratings: array, rewards: array) -> ResponseElo:
    order = np.argsort(np.frombuffer(ids, dtype=np.int64), kind="stable")
    return ResponseElo(*(np.frombuffer(x, dtype=x.typecode)[order] for x in (ids, ratings, rewards)))


def rate(rows: Iterable[Any]) -> ResponseElo:
    """The ratings from game rows (``prompt_id``, ``response_a_id``, ``response_b_id``, ``choice``) in the
    order they were played."""
    prompts, a, b, choices = _read(rows)
    order = np.argsort(prompts, kind="stable")  # by prompt, each prompt's games still in their order
    bounds = [*np.flatnonzero(np.diff(prompts[order], prepend=-1)).tolist(), len(order)]  # each prompt's games
    ids, ratings, rewards = array("q"), array("d"), array("d")
    for start, end in pairwise(bounds):
        index = order[start:end]
        played = zip(a[index].tolist(), b[index].tolist(), (CHOICES[c] for c in choices[index]), strict=True)
        for response, (rating, reward) in elo_rewards(played, lambda _: 0).items():
            ids.append(response)
            ratings.append(rating)
            rewards.append(reward)
    return _sorted_by_id(ids, ratings, rewards)


def response_elo(db: Session, filters: ExportFilters) -> ResponseElo:
    """The ratings of every answer in the export's judgements (see the module docstring)."""
    return rate(query.games(db, filters))
