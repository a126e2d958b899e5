"""Annotation quality from the database: agreement per question and a table per annotator.

The per-annotator table is what spots careless or malicious annotators: one who is much faster
than the rest, ties or rejects both far more often, rarely agrees with the others, picks one side
of the screen, or marks everything unsafe stands out in one column or another, and the fitted
reliability (``annotation.reliability``) ranks them. Quarantined annotators' work is left out of
the agreement figures (``auth.quarantine``).
"""

from __future__ import annotations

import statistics
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field
from itertools import groupby
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from app.annotation import reliability
from app.annotation.models import Choice, Judgement, PairAssignment, ResponseLabel
from app.annotation.reliability import Reliability, Vote
from app.auth.models import User
from app.auth.quarantine import counted
from app.dashboard.agreement import Agreement, agreement, leave_one_out_majority
from app.pool.models import GOLD_SOURCE_PREFIX, Pair, PairStatus, Response

CHOICES = tuple(c.value for c in Choice)
BINARY = (False, True)


@dataclass(frozen=True)
class AgreementReport:
    choice: Agreement
    quality: Agreement
    safety: Agreement


@dataclass
class AnnotatorStats:
    """One annotator's row; rates are None where the annotator has nothing to rate."""

    user_id: int
    username: str
    active: bool
    judgements: int = 0
    median_seconds: float | None = None
    tie_rate: float | None = None
    both_bad_rate: float | None = None
    majority_agreement: float | None = None  # share agreeing with the others' majority
    majority_compared: int = 0  # judgements that had a majority of others to compare with
    labels: int = 0
    unsafe_share: float | None = None  # share of the responses they labelled marked unsafe
    quarantined: bool = False
    reliability: Reliability | None = None  # fitted accuracy, position and speed signals, flags, score
    _agreed: int = field(default=0, repr=False)


def _value(choice: Any) -> str:
    return choice.value if isinstance(choice, Choice) else str(choice)


def _multi_judged_pairs() -> Any:
    """Pairs two or more counted annotators judged; gold pairs have a known answer, not an agreement to measure."""
    return (
        select(Judgement.pair_id)
        .join(Pair, Pair.id == Judgement.pair_id)
        .where(counted(Judgement.annotator_id), Pair.status != PairStatus.gold)
        .group_by(Judgement.pair_id)
        .having(func.count() >= 2)
    )


def _choice_groups(db: Session) -> Iterator[list[tuple[int, str]]]:
    """(annotator, choice) of every judgement on a pair judged two or more times, pair by pair."""
    query = (
        select(Judgement.pair_id, Judgement.annotator_id, Judgement.choice)
        .where(Judgement.pair_id.in_(_multi_judged_pairs()), counted(Judgement.annotator_id))
        .order_by(Judgement.pair_id, Judgement.id)
    )
    for _, rows in groupby(db.execute(query), key=lambda r: r.pair_id):
        yield [(r.annotator_id, _value(r.choice)) for r in rows]


def _label_units(db: Session) -> tuple[list[list[bool]], list[list[bool]]]:
    multi = (
        select(ResponseLabel.response_id)
        .join(Response, Response.id == ResponseLabel.response_id)
        .where(counted(ResponseLabel.annotator_id), ~Response.source.startswith(GOLD_SOURCE_PREFIX))
        .group_by(ResponseLabel.response_id)
        .having(func.count() >= 2)
    )
    query = (
        select(ResponseLabel.response_id, ResponseLabel.quality, ResponseLabel.safety)
        .where(ResponseLabel.response_id.in_(multi), counted(ResponseLabel.annotator_id))
        .order_by(ResponseLabel.response_id, ResponseLabel.id)
    )
    quality, safety = [], []
    for _, rows in groupby(db.execute(query), key=lambda r: r.response_id):
        group = list(rows)
        quality.append([bool(r.quality) for r in group])
        safety.append([bool(r.safety) for r in group])
    return quality, safety


def agreement_report(db: Session) -> AgreementReport:
    """Agreement on the choice (pairs judged two or more times) and on each binary label."""
    choice_units = [[choice for _, choice in group] for group in _choice_groups(db)]
    quality, safety = _label_units(db)
    return AgreementReport(
        choice=agreement(choice_units, CHOICES),
        quality=agreement(quality, BINARY),
        safety=agreement(safety, BINARY),
    )


def _judgement_counts(db: Session, table: dict[int, AnnotatorStats]) -> None:
    query = select(Judgement.annotator_id, Judgement.choice, func.count()).group_by(
        Judgement.annotator_id, Judgement.choice
    )
    by_choice: dict[int, dict[str, int]] = defaultdict(dict)
    for annotator_id, choice, n in db.execute(query):
        by_choice[annotator_id][_value(choice)] = n
    for annotator_id, counts in by_choice.items():
        row = table[annotator_id]
        row.judgements = sum(counts.values())
        row.tie_rate = counts.get("tie", 0) / row.judgements
        row.both_bad_rate = counts.get("both_bad", 0) / row.judgements


def _median_seconds(db: Session, table: dict[int, AnnotatorStats]) -> None:
    query = (
        select(Judgement.annotator_id, Judgement.seconds)
        .where(Judgement.seconds.is_not(None))
        .order_by(Judgement.annotator_id)
        .execution_options(yield_per=10_000)
    )
    for annotator_id, rows in groupby(db.execute(query), key=lambda r: r.annotator_id):
        table[annotator_id].median_seconds = statistics.median(r.seconds for r in rows)


def _majority_agreement(db: Session, table: dict[int, AnnotatorStats]) -> None:
    for group in _choice_groups(db):
        values = [choice for _, choice in group]
        for position, (annotator_id, choice) in enumerate(group):
            majority = leave_one_out_majority(values, position)
            if majority is not None:
                row = table[annotator_id]
                row.majority_compared += 1
                row._agreed += int(majority == choice)
    for row in table.values():
        if row.majority_compared:
            row.majority_agreement = row._agreed / row.majority_compared


def _label_counts(db: Session, table: dict[int, AnnotatorStats]) -> None:
    query = select(ResponseLabel.annotator_id, ResponseLabel.safety, func.count()).group_by(
        ResponseLabel.annotator_id, ResponseLabel.safety
    )
    unsafe: dict[int, int] = defaultdict(int)
    for annotator_id, safe, n in db.execute(query):
        table[annotator_id].labels += n
        if not safe:
            unsafe[annotator_id] += n
    for row in table.values():
        if row.labels:
            row.unsafe_share = unsafe[row.user_id] / row.labels


def reliability_votes(db: Session) -> list[Vote]:
    """Every judgement as the reliability model reads it: the side shown on the left comes from the
    assignment it was made through (none for imported judgements)."""
    query = (
        select(
            Judgement.pair_id,
            Judgement.annotator_id,
            Judgement.choice,
            Judgement.seconds,
            PairAssignment.swapped,
            Pair.gold_answer,
        )
        .join(Pair, Pair.id == Judgement.pair_id)
        .outerjoin(
            PairAssignment,
            (PairAssignment.pair_id == Judgement.pair_id) & (PairAssignment.user_id == Judgement.annotator_id),
        )
        .execution_options(yield_per=10_000)
    )
    votes = []
    for pair_id, annotator_id, choice, seconds, swapped, gold in db.execute(query):
        value = _value(choice)
        on_left = None if swapped is None or value not in ("a", "b") else (value == "a") != swapped
        votes.append(Vote(pair_id, annotator_id, value, on_left, seconds, gold))
    return votes


def annotator_table(db: Session) -> list[AnnotatorStats]:
    """Every account that has judged or labelled anything, most judgements first."""
    judged = select(Judgement.annotator_id).distinct()
    labelled = select(ResponseLabel.annotator_id).distinct()
    users = db.execute(
        select(User.id, User.username, User.is_active, User.quarantined_at).where(User.id.in_(judged.union(labelled)))
    )
    table = {
        uid: AnnotatorStats(user_id=uid, username=name, active=active, quarantined=held is not None)
        for uid, name, active, held in users
    }
    _judgement_counts(db, table)
    _median_seconds(db, table)
    _majority_agreement(db, table)
    _label_counts(db, table)
    for annotator_id, row in reliability.fit(reliability_votes(db)).items():
        table[annotator_id].reliability = row
    return sorted(table.values(), key=lambda row: (-row.judgements, row.username))
