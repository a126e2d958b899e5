"""Training examples from the database: judged pairs for the reward model, labelled responses for
the classifier.

Only a judgement that prefers one side (choice ``a`` or ``b``) is a Bradley–Terry pair; a tie or a
"both bad" says nothing about which answer is better, so it is left out. When several annotators
judged one pair, each judgement is an example by default (agreeing votes weigh more, split votes
cancel out in the loss), or, with ``aggregate="majority"``, the pair counts once, for the side that
strictly outvotes every other verdict. Every example carries its prompt id as ``prompt_key``, so the
trainer's split puts all of one prompt's pairs on the same side of train/validation.

``cutoff`` freezes the snapshot: a job passes its own creation time, so an attempt that resumes
after a crash reads the same data as the first one even while annotators keep judging.
"""

from __future__ import annotations

import statistics
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any, Literal

from sqlalchemy import Select, func, select
from sqlalchemy.orm import Session, aliased

from app.annotation.models import Choice, Judgement, ResponseLabel
from app.auth.quarantine import counted
from app.pool.models import GOLD_SOURCE_PREFIX, Pair, PairStatus, Response
from app.prompts.models import Prompt
from app.training.core.data import LabelledResponse, PreferenceExample

Aggregate = Literal["each", "majority"]
CLASSIFIER_HEADS = ("quality", "safety")


@dataclass(frozen=True)
class DataFilters:
    """Which annotations a training run reads; None means no restriction. Dates are UTC, ``since``
    inclusive and ``until`` exclusive."""

    prompt_set_ids: Sequence[int] | None = None
    annotator_ids: Sequence[int] | None = None
    since: datetime | None = None
    until: datetime | None = None
    ids: Sequence[int] | None = None  # exactly these rows (judgement or label ids): an export's snapshot
    include_quarantined: bool = False  # also quarantined annotators' rows (an export's snapshot is kept as is)

    def capped(self, cutoff: datetime | None) -> DataFilters:
        """The same filters, reading nothing created after ``cutoff`` (a list of ids is frozen already)."""
        if cutoff is None or self.ids is not None or (self.until is not None and self.until <= cutoff):
            return self
        return replace(self, until=cutoff)


ID_CHUNK = 5_000  # ids per IN (...) list: well under every driver's bound on parameters


def _rows(db: Session, query: Select[Any], id_column: Any, ids: Sequence[int] | None) -> list[Any]:
    """The query's rows, restricted to ``ids`` (when given) a chunk of ids per statement."""
    if ids is None:
        return list(db.execute(query))
    ordered = sorted(set(ids))
    return [
        row
        for start in range(0, len(ordered), ID_CHUNK)
        for row in db.execute(query.where(id_column.in_(ordered[start : start + ID_CHUNK])))
    ]


def missing_ids(db: Session, id_column: Any, ids: Sequence[int]) -> int:
    """How many of ``ids`` have no row any more (an export's rows deleted since it was written)."""
    unique = sorted(set(ids))
    found = sum(
        db.scalar(select(func.count()).where(id_column.in_(unique[start : start + ID_CHUNK]))) or 0
        for start in range(0, len(unique), ID_CHUNK)
    )
    return len(unique) - found


@dataclass(frozen=True)
class JudgedPair:
    """One A/B judgement with the texts it compares (a row of :func:`judged_pairs`)."""

    judgement_id: int
    pair_id: int
    prompt_id: int
    messages: list[dict[str, str]]
    text_a: str
    text_b: str
    choice: Choice
    strength: int
    annotator_id: int
    created_at: datetime

    @property
    def chosen(self) -> str:
        return self.text_a if self.choice is Choice.a else self.text_b

    @property
    def rejected(self) -> str:
        return self.text_b if self.choice is Choice.a else self.text_a


def _filtered(query: Select[Any], created: Any, annotator: Any, filters: DataFilters) -> Select[Any]:
    """Apply the filters to a query over rows with a creation time and an annotator, joined to Prompt."""
    if filters.prompt_set_ids is not None:
        query = query.where(Prompt.prompt_set_id.in_(list(filters.prompt_set_ids)))
    if filters.annotator_ids is not None:
        query = query.where(annotator.in_(list(filters.annotator_ids)))
    if not filters.include_quarantined and filters.ids is None:
        query = query.where(counted(annotator))
    if filters.since is not None:
        query = query.where(created >= filters.since)
    if filters.until is not None:
        query = query.where(created < filters.until)
    return query


def count_judged_pairs(
    db: Session, filters: DataFilters = DataFilters(), *, choices: Iterable[Choice] = (Choice.a, Choice.b)
) -> int:
    """How many rows :func:`judged_pairs` would return, without reading a text: a page's cheap check of
    whether a stored figure is behind the judgements."""
    query = (
        select(func.count(Judgement.id))
        .join(Pair, Pair.id == Judgement.pair_id)
        .join(Prompt, Prompt.id == Pair.prompt_id)
        .where(Judgement.choice.in_(list(choices)), Pair.status != PairStatus.gold)
    )
    query = _filtered(query, Judgement.created_at, Judgement.annotator_id, filters)
    return sum(int(count) for (count,) in _rows(db, query, Judgement.id, filters.ids))


def judged_pairs(
    db: Session, filters: DataFilters = DataFilters(), *, choices: Iterable[Choice] = (Choice.a, Choice.b)
) -> list[JudgedPair]:
    """Judgements with the given choices (default: those that prefer a side) and their texts, by id."""
    resp_a, resp_b = aliased(Response), aliased(Response)
    query = (
        select(
            Judgement.id,
            Judgement.pair_id,
            Pair.prompt_id,
            Prompt.messages,
            resp_a.text,
            resp_b.text,
            Judgement.choice,
            Judgement.strength,
            Judgement.annotator_id,
            Judgement.created_at,
        )
        .join(Pair, Pair.id == Judgement.pair_id)
        .join(Prompt, Prompt.id == Pair.prompt_id)
        .join(resp_a, resp_a.id == Pair.response_a_id)
        .join(resp_b, resp_b.id == Pair.response_b_id)
        .where(Judgement.choice.in_(list(choices)), Pair.status != PairStatus.gold)  # gold: known answers
        .order_by(Judgement.id)
    )
    query = _filtered(query, Judgement.created_at, Judgement.annotator_id, filters)
    rows = _rows(db, query, Judgement.id, filters.ids)
    return [
        JudgedPair(jid, pid, prompt_id, list(messages), a, b, choice, strength or 1, annotator, created)
        for jid, pid, prompt_id, messages, a, b, choice, strength, annotator, created in rows
    ]


def preference_examples(
    db: Session, filters: DataFilters = DataFilters(), *, aggregate: Aggregate = "each", ties: bool = False
) -> list[PreferenceExample]:
    """The reward model's training examples: one per A/B judgement, or one per pair by majority; with
    ``ties``, also one per tie judgement (or pair whose majority is a tie), marked ``tie``."""
    if aggregate == "each":
        choices = (Choice.a, Choice.b, Choice.tie) if ties else (Choice.a, Choice.b)
        rows = judged_pairs(db, filters, choices=choices)
        return [_example(row, row.strength, str(row.judgement_id)) for row in rows]
    if aggregate != "majority":
        raise ValueError(f"unknown aggregate {aggregate!r}")
    every = judged_pairs(db, filters, choices=tuple(Choice))  # ties and both-bad vote too
    by_pair: dict[int, list[JudgedPair]] = {}
    for row in every:
        by_pair.setdefault(row.pair_id, []).append(row)
    examples = []
    for rows in by_pair.values():
        winner = majority_choice([row.choice for row in rows])
        if winner in (Choice.a, Choice.b) or (ties and winner is Choice.tie):
            votes = [row for row in rows if row.choice is winner]
            strength = round(statistics.median(row.strength for row in votes))
            examples.append(_example(votes[0], strength, "+".join(str(row.judgement_id) for row in rows)))
    return examples


def majority_choice(choices: Sequence[Choice]) -> Choice | None:
    """The verdict with strictly more votes than any other, or None (no votes, or a draw)."""
    ranked = Counter(choices).most_common(2)
    if not ranked or (len(ranked) == 2 and ranked[0][1] == ranked[1][1]):
        return None
    return ranked[0][0]


def _example(row: JudgedPair, strength: int, example_id: str) -> PreferenceExample:
    tie = row.choice is Choice.tie
    return PreferenceExample(
        prompt=row.messages,
        chosen=row.text_a if tie else row.chosen,
        rejected=row.text_b if tie else row.rejected,
        strength=1 if tie else min(max(int(strength), 1), 3),
        prompt_key=str(row.prompt_id),
        id=example_id,
        tie=tie,
    )


def labelled_responses(
    db: Session, filters: DataFilters = DataFilters(), heads: Sequence[str] = CLASSIFIER_HEADS
) -> list[LabelledResponse]:
    """The classifier's examples: one per labelled response, each head's label its annotators' majority
    (None where they split evenly, so that head skips the response)."""
    label = (ResponseLabel.id, ResponseLabel.response_id, ResponseLabel.quality, ResponseLabel.safety)
    query = (
        select(*label, Response.text, Response.prompt_id, Prompt.messages)
        .join(Response, Response.id == ResponseLabel.response_id)
        .join(Prompt, Prompt.id == Response.prompt_id)
        .where(~Response.source.startswith(GOLD_SOURCE_PREFIX))  # a gold pair's made-up answer
        .order_by(ResponseLabel.response_id, ResponseLabel.id)
    )
    query = _filtered(query, ResponseLabel.created_at, ResponseLabel.annotator_id, filters)
    grouped: dict[int, list[Any]] = {}
    for row in sorted(_rows(db, query, ResponseLabel.id, filters.ids), key=lambda r: (r.response_id, r.id)):
        grouped.setdefault(row.response_id, []).append(row)
    examples = []
    for response_id, rows in grouped.items():
        labels = {head: majority_label([bool(getattr(row, head)) for row in rows]) for head in heads}
        first = rows[0]
        examples.append(
            LabelledResponse(
                prompt=list(first.messages),
                response=first.text,
                labels=labels,
                prompt_key=str(first.prompt_id),
                id=f"r{response_id}:" + ",".join(str(row.id) for row in rows),
            )
        )
    return examples


def majority_label(votes: Sequence[bool]) -> float | None:
    """1.0 or 0.0 when more than half the votes say so, None on an even split (or no votes)."""
    yes = sum(votes)
    if 2 * yes == len(votes):
        return None
    return 1.0 if 2 * yes > len(votes) else 0.0
