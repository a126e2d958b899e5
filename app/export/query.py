"""Streaming the rows of an export out of the database, in constant memory.

Rows are read in keyset-paginated chunks (``pair_id > last`` … ``LIMIT``), each chunk its own
short transaction: memory stays flat at any size, no transaction is held open for the length
of a long export (on SQLite a reader holds the write lock), and a progress report can be
written between chunks. Judgements come ordered by pair, so a pair's agreement and majority
verdict need only its own group of rows.

A pair's *agreement* is the share of its (filtered) judgements that agree with its most common
verdict: 1.0 for a single judgement, which nothing contradicts. The *majority* is that verdict
when it is strictly more common than any other; otherwise the pair has none.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta
from itertools import groupby
from typing import Any

from sqlalchemy import ColumnElement, Select, func, or_, select
from sqlalchemy.orm import Session, aliased

import app.all_models  # noqa: F401 - every mapper, for the joins across domains
from app.annotation.models import Choice, Demonstration, Judgement, ResponseLabel
from app.auth.models import User
from app.export.filters import Aggregation, ExportFilters, Keep
from app.pool.models import GOLD_SOURCE_PREFIX, Pair, PairStatus, Response, stopped_at_budget
from app.prompts.models import Prompt

BATCH = 5_000  # rows fetched per chunk (one short transaction each)
ChunkDone = Callable[[int], None]  # called between chunks with the rows read so far


@dataclass(frozen=True, slots=True)
class JudgedRow:
    """One exported verdict on a pair: a judgement, or a pair's majority."""

    pair_id: int
    judgement_ids: tuple[int, ...]  # the one judgement, or every judgement behind a majority
    prompt_set_id: int
    response_a_id: int
    response_b_id: int
    messages: list[dict[str, str]]
    response_a: str
    response_b: str
    policy_a: int | None
    policy_b: int | None
    cut_off_a: bool  # the answer stopped at the length budget, not at EOS (``Response.cut_off``)
    cut_off_b: bool
    choice: str  # a | b | tie | both_bad
    strength: int | None
    annotator: str  # username, or "majority"
    seconds: float | None
    created_at: datetime
    judgements: int  # the pair's judgements that passed the filters
    agreement: float

    @property
    def chosen(self) -> str | None:
        return {"a": self.response_a, "b": self.response_b}.get(self.choice)

    @property
    def rejected(self) -> str | None:
        return {"a": self.response_b, "b": self.response_a}.get(self.choice)


@dataclass
class Tally:
    """What a stream kept and why it dropped the rest (recorded in the export's snapshot)."""

    pairs: int = 0
    dropped_ties: int = 0
    dropped_both_bad: int = 0
    dropped_agreement: int = 0
    dropped_no_majority: int = 0


def _day_start(day: Any) -> datetime:
    return datetime.combine(day, time.min, tzinfo=UTC)


def _date_conditions(column: Any, filters: ExportFilters) -> list[ColumnElement[bool]]:
    conditions = []
    if filters.date_from:
        conditions.append(column >= _day_start(filters.date_from))
    if filters.date_to:
        conditions.append(column < _day_start(filters.date_to + timedelta(days=1)))
    return conditions


def _annotator_conditions(filters: ExportFilters) -> list[ColumnElement[bool]]:
    conditions = []
    if filters.include_annotators:
        conditions.append(User.username.in_(filters.include_annotators))
    if filters.exclude_annotators:
        conditions.append(User.username.not_in(filters.exclude_annotators))
    if not filters.include_quarantined:
        conditions.append(User.quarantined_at.is_(None))  # an outer-joined missing annotator counts
    return conditions


def _filter_conditions(created_at: Any, filters: ExportFilters) -> list[ColumnElement[bool]]:
    """The filters every export source shares: when (``created_at``), who (``User``) and which prompt set
    (``Prompt``, which each source's query joins); the policy filter is the one that differs per source."""
    conditions = [*_date_conditions(created_at, filters), *_annotator_conditions(filters)]
    if filters.prompt_set_id is not None:
        conditions.append(Prompt.prompt_set_id == filters.prompt_set_id)
    return conditions


_RA, _RB = aliased(Response, name="ra"), aliased(Response, name="rb")  # a pair's response A and B


def _judgements(filters: ExportFilters, *columns: Any) -> Select[Any]:
    """``columns`` of every filtered judgement, joined to its pair, prompt, annotator (``User``) and both
    responses (``_RA``, ``_RB``)."""
    query = (
        select(*columns)
        .join(Pair, Pair.id == Judgement.pair_id)  # keyed on pairs.id: the planner then walks pairs by its index
        .join(Prompt, Prompt.id == Pair.prompt_id)
        .join(_RA, _RA.id == Pair.response_a_id)
        .join(_RB, _RB.id == Pair.response_b_id)
        .join(User, User.id == Judgement.annotator_id)
        .where(*_filter_conditions(Judgement.created_at, filters), Pair.status != PairStatus.gold)  # known answers
    )
    if filters.policy_version_id is not None:
        version = filters.policy_version_id
        query = query.where(or_(_RA.policy_version_id == version, _RB.policy_version_id == version))
    return query


def judgements_query(filters: ExportFilters) -> Select[Any]:
    """Every filtered judgement with its pair's prompt and both responses, ordered by pair."""
    return _judgements(
        filters,
        Pair.id.label("pair_id"),
        Judgement.id,
        Judgement.choice,
        Judgement.strength,
        Judgement.seconds,
        Judgement.created_at,
        User.username,
        Prompt.prompt_set_id,
        Prompt.messages,
        Pair.response_a_id,
        Pair.response_b_id,
        _RA.text.label("text_a"),
        _RB.text.label("text_b"),
        _RA.policy_version_id.label("policy_a"),
        _RB.policy_version_id.label("policy_b"),
        _RA.generation_params.label("params_a"),
        _RB.generation_params.label("params_b"),
    )


def games_query(filters: ExportFilters) -> Select[Any]:
    """(judgement id, prompt, response A, response B, choice) of the same judgements: no text, for the
    Elo pass (``export.elo``)."""
    return _judgements(
        filters, Judgement.id, Pair.prompt_id, Pair.response_a_id, Pair.response_b_id, Judgement.choice
    )


def majority(choices: Iterable[str]) -> tuple[str | None, float]:
    """(the strictly most common verdict or None, share of verdicts agreeing with the most common)."""
    counts = Counter(choices).most_common()
    if not counts:
        return None, 0.0
    total = sum(n for _, n in counts)
    top, n_top = counts[0]
    unique = len(counts) == 1 or counts[1][1] < n_top
    return (top if unique else None), n_top / total


def _value(choice: Any) -> str:
    return choice.value if isinstance(choice, Choice) else str(choice)


def _row(group: list[Any], choice: str, annotator: str, agreement: float, *, one: Any | None) -> JudgedRow:
    first = one or group[0]
    return JudgedRow(
        pair_id=first.pair_id,
        judgement_ids=(one.id,) if one is not None else tuple(r.id for r in group),
        prompt_set_id=first.prompt_set_id,
        response_a_id=first.response_a_id,
        response_b_id=first.response_b_id,
        messages=list(first.messages),
        response_a=first.text_a,
        response_b=first.text_b,
        policy_a=first.policy_a,
        policy_b=first.policy_b,
        cut_off_a=stopped_at_budget(first.params_a),
        cut_off_b=stopped_at_budget(first.params_b),
        choice=choice,
        strength=one.strength if one is not None else None,
        annotator=annotator,
        seconds=one.seconds if one is not None else None,
        created_at=one.created_at if one is not None else max(r.created_at for r in group),
        judgements=len(group),
        agreement=agreement,
    )


def _kept(choice: str, filters: ExportFilters, tally: Tally, *, preference: bool) -> bool:
    if choice == "tie" and (preference or filters.ties is Keep.drop):
        tally.dropped_ties += 1
        return False
    if choice == "both_bad" and (preference or filters.both_bad is Keep.drop):
        tally.dropped_both_bad += 1
        return False
    return True


def _group_rows(group: list[Any], filters: ExportFilters, tally: Tally, *, preference: bool) -> Iterator[JudgedRow]:
    choices = [_value(r.choice) for r in group]
    top, agreement = majority(choices)
    if agreement < filters.min_agreement:
        tally.dropped_agreement += len(group)
        return
    if filters.aggregation is Aggregation.majority:
        if top is None:
            tally.dropped_no_majority += 1
        elif _kept(top, filters, tally, preference=preference):
            tally.pairs += 1
            yield _row(group, top, "majority", agreement, one=None)
        return
    kept = [(r, c) for r, c in zip(group, choices, strict=True) if _kept(c, filters, tally, preference=preference)]
    tally.pairs += bool(kept)
    for r, c in kept:
        yield _row(group, c, r.username, agreement, one=r)


def _chunks(
    db: Session, query: Select[Any], keys: tuple[Any, ...], on_chunk: ChunkDone | None, name: str = "id"
) -> Iterator[list[Any]]:
    """Rows of ``query`` by ascending key, a chunk per transaction; a chunk never splits a key.

    ``keys`` are columns equal to each other through the joins (``pairs.id``, ``judgements.pair_id``):
    the bound is put on each, because PostgreSQL's planner does not carry an inequality across a
    join, and a merge join would otherwise scan every earlier row again for each chunk. The rows
    of the chunk's last key may be cut off by the LIMIT, so they are held back and read again,
    whole, at the start of the next chunk (``key >= last``)."""
    floor, inclusive, read = None, False, 0
    while True:
        page = query.order_by(keys[0])
        if floor is not None:
            page = page.where(*[(key >= floor if inclusive else key > floor) for key in keys])
        rows = list(db.execute(page.limit(BATCH)))
        db.commit()  # end the read transaction between chunks
        if len(rows) < BATCH:
            if rows:
                yield rows
            return
        last = rows[-1]._mapping[name]
        whole = [r for r in rows if r._mapping[name] != last]
        if not whole:  # one key fills a chunk: read that key alone, without a limit
            whole = list(db.execute(query.where(*[key == last for key in keys])))
            db.commit()
            floor, inclusive = last, False
        else:
            floor, inclusive = last, True
        read += len(whole)
        yield whole
        if on_chunk is not None:
            on_chunk(read)


def judged_rows(
    db: Session, filters: ExportFilters, tally: Tally, *, preference: bool = False, on_chunk: ChunkDone | None = None
) -> Iterator[JudgedRow]:
    """The export's verdicts, pair by pair, streamed; ``tally`` counts what was kept and dropped."""
    for chunk in _chunks(db, judgements_query(filters), (Pair.id, Judgement.pair_id), on_chunk, name="pair_id"):
        for _, rows in groupby(chunk, key=lambda r: r.pair_id):
            group = sorted(rows, key=lambda r: r.id)
            yield from _group_rows(group, filters, tally, preference=preference)


def demonstrations_query(filters: ExportFilters) -> Select[Any]:
    """(id, prompt messages, text, kind, username) of each filtered demonstration."""
    return (
        select(Demonstration.id, Prompt.messages, Demonstration.text, Demonstration.kind, User.username)
        .join(Prompt, Prompt.id == Demonstration.prompt_id)
        .outerjoin(User, User.id == Demonstration.annotator_id)
        .where(*_filter_conditions(Demonstration.created_at, filters))
    )


def labels_query(filters: ExportFilters) -> Select[Any]:
    """(id, prompt messages, response text, quality, safety, username) of each filtered label."""
    query = (
        select(
            ResponseLabel.id, Prompt.messages, Response.text, ResponseLabel.quality, ResponseLabel.safety, User.username
        )
        .join(Response, Response.id == ResponseLabel.response_id)
        .join(Prompt, Prompt.id == Response.prompt_id)
        .join(User, User.id == ResponseLabel.annotator_id)
        .where(*_filter_conditions(ResponseLabel.created_at, filters), ~Response.source.startswith(GOLD_SOURCE_PREFIX))
    )
    if filters.policy_version_id is not None:
        query = query.where(Response.policy_version_id == filters.policy_version_id)
    return query


def demonstrations(db: Session, filters: ExportFilters) -> Iterator[Any]:
    for chunk in _chunks(db, demonstrations_query(filters), (Demonstration.id,), None):
        yield from chunk


def labels(db: Session, filters: ExportFilters) -> Iterator[Any]:
    for chunk in _chunks(db, labels_query(filters), (ResponseLabel.id,), None):
        yield from chunk


def games(db: Session, filters: ExportFilters) -> Iterator[Any]:
    """The rows of :func:`games_query` in the order the judgements were made (by id), a chunk per transaction."""
    for chunk in _chunks(db, games_query(filters), (Judgement.id,), None):
        yield from chunk


def count_source(db: Session, filters: ExportFilters, source: str) -> int:
    """Rows the source query matches: the scale of an export job's progress bar."""
    build = {"judgements": judgements_query, "demonstrations": demonstrations_query, "labels": labels_query}[source]
    count = db.scalar(select(func.count()).select_from(build(filters).subquery())) or 0
    db.commit()
    return count
