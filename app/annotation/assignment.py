"""Which pair an annotator sees next, leased to them for a while, with randomised sides.

A pair is offered to a user who has not judged or skipped it, while it still needs judgements
and fewer than k other people hold a live lease on it. On PostgreSQL the candidate pair row is
locked with SKIP LOCKED, so concurrent annotators never count the same free slot twice; on
SQLite every write transaction is serialised (BEGIN IMMEDIATE) to the same effect.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import cache

from sqlalchemy import Boolean, Integer, Select, bindparam, func, literal, select
from sqlalchemy.orm import Session, aliased

from app.annotation.models import AssignmentStatus, Judgement, PairAssignment
from app.auth.models import User
from app.config import Settings
from app.db import UTCDateTime, upsert_insert, utcnow
from app.errors import Conflict
from app.lookup import get_or_404
from app.pool.models import Pair, PairStatus, Response
from app.prompts.models import Prompt

# A lease on a pair of these statuses stands: pending pairs, gold pairs and the author's own chat turn.
LEASED_STATUSES = (PairStatus.pending, PairStatus.gold, PairStatus.chat)
_DRAW = secrets.SystemRandom()  # whether the next pair is a gold one: unpredictable, so no pattern to learn


@dataclass(frozen=True)
class Shown:
    """A leased pair as the annotator sees it: responses in screen order."""

    assignment: PairAssignment
    pair: Pair
    messages: list[dict[str, str]]
    left: Response  # shown as "A"
    right: Response  # shown as "B"


@dataclass(frozen=True)
class Progress:
    judged_today: int
    judged_total: int
    remaining: int


# The hot path's statements are built once, with bound parameters, and executed with values:
# building a select with aliases and correlated subqueries costs more CPU than running it.
USER_ID = bindparam("user_id", type_=Integer)
NOW = bindparam("now", type_=UTCDateTime())
_RESPONSE_A, _RESPONSE_B = aliased(Response), aliased(Response)

# Inline rather than bound parameters, so that PostgreSQL's generic plan of each prepared statement (psycopg
# prepares a statement on its fifth run on a connection) costs what a custom one does and is kept, instead of
# planning every execution again: with LIMIT $n a generic plan is costed for a tenth of the rows and with
# status = $n for a third of the table, so PostgreSQL chose a fresh custom plan each time. Only a literal
# status also lets the planner prove the predicate of the partial indexes of servable pairs
# (app.annotation.models), in generic plans and in SQLite alike.
_PENDING = literal(PairStatus.pending.value, literal_execute=True)
_ACTIVE = literal(AssignmentStatus.active.value, literal_execute=True)
_ONE = literal(1, literal_execute=True)

_LIVE_LEASES_OF_OTHERS = (
    select(func.count())
    .where(
        PairAssignment.pair_id == Pair.id,
        PairAssignment.status == _ACTIVE,
        PairAssignment.leased_until > NOW,
        PairAssignment.user_id != USER_ID,
    )
    .correlate(Pair)
    .scalar_subquery()
)
# Whether the user judged or skipped the pair, as a scalar subquery (NULL: neither) rather than NOT EXISTS:
# PostgreSQL turns NOT EXISTS into an anti-join, and for ORDER BY id LIMIT 1 it chose a Merge Anti Join that
# read every assignment of every user through the (pair_id, user_id) index to find this user's (the cost grew
# with the table). A scalar subquery stays a per-candidate index probe by pair (one row at most: the pair and
# user are unique together), and the LIMIT stops the scan at the first pair that passes.
_DONE_BY_USER = (
    select(literal(1))
    .where(
        PairAssignment.pair_id == Pair.id,
        PairAssignment.user_id == USER_ID,
        PairAssignment.status.in_((AssignmentStatus.skipped, AssignmentStatus.submitted)),
    )
    .correlate(Pair)
    .scalar_subquery()
)
AVAILABLE = (
    select(Pair)
    .where(
        Pair.status == _PENDING,
        Pair.judgement_count < Pair.judgements_needed,
        _DONE_BY_USER.is_(None),
        Pair.judgement_count + _LIVE_LEASES_OF_OTHERS < Pair.judgements_needed,
    )
    .order_by(Pair.id)
)
"""Pairs the user (``user_id``) may be offered at ``now``, oldest first."""
# The uncertain queue order: the rank_pairs job's priority first (unranked pairs have 0), oldest among equals.
ORDERS = {"oldest": AVAILABLE, "uncertain": AVAILABLE.order_by(None).order_by(Pair.priority.desc(), Pair.id)}


def _with_content(query: Select) -> Select:
    """Add what the annotator is shown: the prompt's messages and both responses."""
    return (
        query.add_columns(Prompt.messages, _RESPONSE_A, _RESPONSE_B)
        .join(Prompt, Prompt.id == Pair.prompt_id)
        .join(_RESPONSE_A, _RESPONSE_A.id == Pair.response_a_id)
        .join(_RESPONSE_B, _RESPONSE_B.id == Pair.response_b_id)
    )


# A gold pair (known answer, app.annotation.gold) this user has not judged, drawn at random: gold pairs take
# every annotator once, so there is no room to count and no order to keep.
_NEXT_GOLD = (
    _with_content(select(Pair).where(Pair.status == PairStatus.gold, _DONE_BY_USER.is_(None)))
    .order_by(func.random())
    .limit(_ONE)
)
_NEXT_FREE = {order: _with_content(query).limit(_ONE) for order, query in ORDERS.items()}
_NEXT_FREE_LOCKED = {  # PostgreSQL
    order: query.with_for_update(of=Pair, skip_locked=True) for order, query in _NEXT_FREE.items()
}
_SHOWN = _with_content(select(Pair)).where(Pair.id == bindparam("pair_id", type_=Integer))
_HELD = (
    select(PairAssignment)
    .join(Pair, Pair.id == PairAssignment.pair_id)
    .where(
        PairAssignment.user_id == USER_ID,
        PairAssignment.status == _ACTIVE,
        PairAssignment.leased_until > NOW,
        Pair.status.in_(LEASED_STATUSES),
        Pair.judgement_count < Pair.judgements_needed,
    )
    .order_by(PairAssignment.id)  # ix_pair_assignments_user_status_id yields this order: no sort
    .limit(_ONE)
)


def _current(db: Session, user: User, now: datetime) -> PairAssignment | None:
    """A live lease the user already holds on a pair that still needs judgements (a reload)."""
    return db.scalar(_HELD, {"user_id": user.id, "now": now})


def next_pair(db: Session, settings: Settings, *, user: User) -> Shown | None:
    """Lease the user's next pair (or return the one they hold); None when nothing is left.

    The hot path of annotation, so it is three statements: the held lease, the next free pair
    together with what is shown of it, and the lease upsert.
    """
    now = utcnow()
    held = _current(db, user, now)
    shown = load_shown(db, held) if held is not None else _lease_next(db, settings, user, now)
    db.commit()
    return shown


def _lease_next(db: Session, settings: Settings, user: User, now: datetime) -> Shown | None:
    if settings.gold_share > 0 and _DRAW.random() < settings.gold_share:
        row = db.execute(_NEXT_GOLD, {"user_id": user.id}).first()
        if row is not None:
            pair, messages, a, b = row
            assignment = _lease(db, settings, user, pair.id, now)
            if assignment is not None:
                return _in_screen_order(assignment, pair, messages, a, b)
    statements = _NEXT_FREE_LOCKED if db.get_bind().dialect.name == "postgresql" else _NEXT_FREE
    query = statements[settings.queue_order]
    while True:
        row = db.execute(query, {"user_id": user.id, "now": now}).first()
        if row is None:
            return None
        pair, messages, a, b = row
        assignment = _lease(db, settings, user, pair.id, now)
        if assignment is not None:
            return _in_screen_order(assignment, pair, messages, a, b)
        # Someone leased it between our snapshot and our lock: the next query's snapshot shows it.


def _lease(db: Session, settings: Settings, user: User, pair_id: int, now: datetime) -> PairAssignment | None:
    """One guarded upsert: a first lease draws the sides, a lapsed one is renewed with the same sides.

    The guard re-counts the live leases in this statement's own snapshot. The candidate query's
    snapshot may predate a lease that another annotator committed just before we locked the pair
    (on PostgreSQL, READ COMMITTED); with the pair locked, this count is final. None: no room left.
    """
    values = {
        "pair_id": pair_id,
        "user_id": user.id,
        "swapped": secrets.randbelow(2) == 1,
        "until": now + timedelta(minutes=settings.assignment_lease_minutes),
        "now": now,
    }
    leased = db.scalars(
        _lease_upsert(db.get_bind().dialect.name), values, execution_options={"populate_existing": True}
    )
    return leased.one_or_none()


@cache
def _lease_upsert(dialect: str):  # noqa: ANN202 - the dialect's Insert, built once per backend
    room = select(
        Pair.id,
        USER_ID,
        bindparam("swapped", type_=Boolean),
        literal(AssignmentStatus.active.value),
        NOW,
        bindparam("until", type_=UTCDateTime()),
    ).where(
        Pair.id == bindparam("pair_id", type_=Integer),
        Pair.judgement_count + _LIVE_LEASES_OF_OTHERS < Pair.judgements_needed,
    )
    table = PairAssignment.__table__  # a Core insert: the ORM's bulk insert does not take INSERT … SELECT
    statement = upsert_insert(dialect, table).from_select(
        ["pair_id", "user_id", "swapped", "status", "assigned_at", "leased_until"], room
    )
    renewed = {name: getattr(statement.excluded, name) for name in ("status", "assigned_at", "leased_until")}
    upsert = statement.on_conflict_do_update(index_elements=["pair_id", "user_id"], set_=renewed).returning(*table.c)
    return select(PairAssignment).from_statement(upsert)


def load_shown(db: Session, assignment: PairAssignment) -> Shown:
    """The pair, its prompt and both responses in one round trip."""
    pair, messages, a, b = db.execute(_SHOWN, {"pair_id": assignment.pair_id}).one()
    return _in_screen_order(assignment, pair, messages, a, b)


def _in_screen_order(assignment: PairAssignment, pair: Pair, messages: list, a: Response, b: Response) -> Shown:
    left, right = (b, a) if assignment.swapped else (a, b)
    return Shown(assignment=assignment, pair=pair, messages=list(messages), left=left, right=right)


def get_assignment(db: Session, *, user: User, assignment_id: int) -> PairAssignment:
    return get_or_404(
        db,
        PairAssignment,
        assignment_id,
        where=lambda a: a.user_id == user.id,
        message=f"assignment {assignment_id} is not assigned to you",
    )


def skip(db: Session, *, user: User, assignment_id: int) -> None:
    assignment = get_assignment(db, user=user, assignment_id=assignment_id)
    if assignment.status is AssignmentStatus.submitted:
        raise Conflict("this pair is already judged; it cannot be skipped")
    assignment.status = AssignmentStatus.skipped
    db.commit()


def progress(db: Session, *, user: User) -> Progress:
    now = utcnow()
    midnight = datetime(now.year, now.month, now.day, tzinfo=UTC)
    by_user = select(func.count()).select_from(Judgement).where(Judgement.annotator_id == user.id)
    today = db.scalar(by_user.where(Judgement.created_at >= midnight)) or 0
    total = db.scalar(by_user) or 0
    available = select(func.count()).select_from(AVAILABLE.order_by(None).subquery())
    remaining = db.scalar(available, {"user_id": user.id, "now": now}) or 0
    return Progress(judged_today=today, judged_total=total, remaining=remaining)


def lease_is_live(assignment: PairAssignment) -> bool:
    return assignment.status is AssignmentStatus.active and assignment.leased_until > utcnow()


__all__ = ["Progress", "Shown", "get_assignment", "lease_is_live", "load_shown", "next_pair", "progress", "skip"]
