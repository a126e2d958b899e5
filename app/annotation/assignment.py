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

from sqlalchemy import Boolean, Integer, Row, Select, bindparam, func, literal, literal_column, select
from sqlalchemy.orm import Session, aliased
from sqlalchemy.orm.util import identity_key

from app.annotation.models import AssignmentStatus, Judgement, PairAssignment
from app.auth.models import User
from app.config import Settings
from app.db import UTCDateTime, upsert_insert, utcnow
from app.driver_statement import DriverStatement
from app.errors import Conflict
from app.lookup import get_or_404
from app.pool.models import Pair, PairStatus, Response, stopped_at_budget
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
class ShownSide:
    text: str
    cut_off: bool  # stopped at the length budget (Response.cut_off)


@dataclass(frozen=True)
class Offer:
    """A leased pair as the JSON API shows it, read as columns: loading the ORM objects of ``Shown`` (a pair,
    two responses, an assignment, with their relationship loaders) cost more CPU than the statements."""

    assignment_id: int
    pair_id: int
    messages: list[dict[str, str]]
    left: ShownSide  # shown as "A"
    right: ShownSide  # shown as "B"
    leased_until: datetime


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
# (app.annotation.models), in generic plans and in SQLite alike. Written into the statement when it is
# compiled (literal_column), not with literal_execute, which leaves a placeholder that SQLAlchemy renders
# again on every execution (a tenth of a statement's CPU on this path).


def _inline(*values: str) -> list:
    return [literal_column(f"'{value}'") for value in values]  # the app's own constants, never a request's


(_PENDING,) = _inline(PairStatus.pending.value)
(_ACTIVE,) = _inline(AssignmentStatus.active.value)
_ONE = literal_column("1")

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
    select(_ONE)
    .where(
        PairAssignment.pair_id == Pair.id,
        PairAssignment.user_id == USER_ID,
        PairAssignment.status.in_(_inline(AssignmentStatus.skipped, AssignmentStatus.submitted)),
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


# What Offer reads of a pair with its content, in place of the entities _with_content adds.
_CONTENT_COLUMNS = (
    Pair.id,
    Prompt.messages,
    _RESPONSE_A.text,
    _RESPONSE_A.generation_params,
    _RESPONSE_B.text,
    _RESPONSE_B.generation_params,
)
_LEASE_COLUMNS = (PairAssignment.id, PairAssignment.pair_id, PairAssignment.swapped, PairAssignment.leased_until)


# A gold pair (known answer, app.annotation.gold) this user has not judged, drawn at random: gold pairs take
# every annotator once, so there is no room to count and no order to keep.
_NEXT_GOLD = (
    _with_content(select(Pair).where(Pair.status == PairStatus.gold, _DONE_BY_USER.is_(None)))
    .order_by(func.random())
    .limit(_ONE)
)
_NEXT_FREE = {order: _with_content(query).limit(_ONE) for order, query in ORDERS.items()}
_SHOWN = _with_content(select(Pair)).where(Pair.id == bindparam("pair_id", type_=Integer))
_HELD = (
    select(PairAssignment)
    .join(Pair, Pair.id == PairAssignment.pair_id)
    .where(
        PairAssignment.user_id == USER_ID,
        PairAssignment.status == _ACTIVE,
        PairAssignment.leased_until > NOW,
        Pair.status.in_(_inline(*LEASED_STATUSES)),
        Pair.judgement_count < Pair.judgements_needed,
    )
    .order_by(PairAssignment.id)  # ix_pair_assignments_user_status_id yields this order: no sort
    .limit(_ONE)
)


class _Reader:
    """How next_pair reads the lease and the pair it shows: as ORM objects (``Shown``, for pages and services
    that go on to use them) or as columns (``Offer``, for the JSON API). The statements are the same but for
    what they select; the columns are run on the driver's cursor of the session's connection
    (``DriverStatement``), past SQLAlchemy's per-execution work."""

    def __init__(self, *, columns: bool) -> None:
        self.columns = columns
        content = (lambda query: query.with_only_columns(*_CONTENT_COLUMNS)) if columns else (lambda query: query)
        run = DriverStatement if columns else (lambda query: query)
        free = {order: content(query) for order, query in _NEXT_FREE.items()}
        self.gold = run(content(_NEXT_GOLD))
        self.free = {order: run(query) for order, query in free.items()}
        self.free_locked = {  # PostgreSQL
            order: run(query.with_for_update(of=Pair, skip_locked=True)) for order, query in free.items()
        }
        self.shown = run(content(_SHOWN))
        self.held = run(_HELD.with_only_columns(*_LEASE_COLUMNS)) if columns else _HELD

    def row(self, db: Session, statement: Select | DriverStatement, values: dict) -> Row | None:
        if isinstance(statement, DriverStatement):
            return statement.first(db.connection(), values)
        return db.execute(statement, values).first()

    def held_lease(self, db: Session, values: dict) -> object | None:
        row = self.row(db, self.held, values)
        if row is None or self.columns:
            return row
        return row[0]

    def lease(self, db: Session, dialect: str, values: dict) -> object | None:
        if self.columns:
            row = _lease_upsert_on_driver(dialect).first(db.connection(), values)
            if row is not None:
                expire_loaded(db, PairAssignment, row.id)  # written behind the ORM's back
            return row
        leased = db.scalars(_lease_objects(dialect), values, execution_options={"populate_existing": True})
        return leased.one_or_none()

    def shown_for(self, lease: object, row: Row) -> Shown | Offer:
        if not self.columns:
            pair, messages, a, b = row
            return _in_screen_order(lease, pair, messages, a, b)
        pair_id, messages, a_text, a_params, b_text, b_params = row
        a = ShownSide(a_text, stopped_at_budget(a_params))
        b = ShownSide(b_text, stopped_at_budget(b_params))
        left, right = (b, a) if lease.swapped else (a, b)
        return Offer(lease.id, pair_id, list(messages), left, right, lease.leased_until)


_OBJECTS, _COLUMNS = _Reader(columns=False), _Reader(columns=True)


def next_pair(db: Session, settings: Settings, *, user: User) -> Shown | None:
    """Lease the user's next pair (or return the one they hold); None when nothing is left.

    The hot path of annotation, so it is three statements: the held lease, the next free pair
    together with what is shown of it, and the lease upsert.
    """
    return _next(db, settings, user, _OBJECTS)


def next_offer(db: Session, settings: Settings, *, user: User) -> Offer | None:
    """``next_pair`` as the JSON API shows it: the same statements, read as columns."""
    return _next(db, settings, user, _COLUMNS)


def _next(db: Session, settings: Settings, user: User, reader: _Reader) -> Shown | Offer | None:
    now = utcnow()
    held = reader.held_lease(db, {"user_id": user.id, "now": now})
    if held is not None:
        shown = reader.shown_for(held, reader.row(db, reader.shown, {"pair_id": held.pair_id}))
    else:
        shown = _lease_next(db, settings, user, now, reader)
    db.commit()
    return shown


def _lease_next(db: Session, settings: Settings, user: User, now: datetime, reader: _Reader) -> Shown | Offer | None:
    dialect = db.get_bind().dialect.name
    if settings.gold_share > 0 and _DRAW.random() < settings.gold_share:
        row = reader.row(db, reader.gold, {"user_id": user.id})
        if row is not None:
            lease = reader.lease(db, dialect, _lease_values(settings, user, row[0], now))
            if lease is not None:
                return reader.shown_for(lease, row)
    statements = reader.free_locked if dialect == "postgresql" else reader.free
    query = statements[settings.queue_order]
    while True:
        row = reader.row(db, query, {"user_id": user.id, "now": now})
        if row is None:
            return None
        lease = reader.lease(db, dialect, _lease_values(settings, user, row[0], now))
        if lease is not None:
            return reader.shown_for(lease, row)
        # Someone leased it between our snapshot and our lock: the next query's snapshot shows it.


def _lease_values(settings: Settings, user: User, pair: Pair | int, now: datetime) -> dict:
    """What the lease upsert binds: a first lease draws the sides, a lapsed one is renewed with the same sides.

    The upsert's guard re-counts the live leases in its own snapshot. The candidate query's snapshot may
    predate a lease that another annotator committed just before we locked the pair (on PostgreSQL, READ
    COMMITTED); with the pair locked, this count is final. No row back: no room left."""
    return {
        "pair_id": pair if isinstance(pair, int) else pair.id,
        "user_id": user.id,
        "swapped": secrets.randbelow(2) == 1,
        "until": now + timedelta(minutes=settings.assignment_lease_minutes),
        "now": now,
    }


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
    return statement.on_conflict_do_update(index_elements=["pair_id", "user_id"], set_=renewed).returning(*table.c)


@cache
def _lease_upsert_on_driver(dialect: str) -> DriverStatement:
    return DriverStatement(_lease_upsert(dialect))


@cache
def _lease_objects(dialect: str):  # noqa: ANN202 - the upsert, read as the PairAssignment it returns
    return select(PairAssignment).from_statement(_lease_upsert(dialect))


def expire_loaded(db: Session, model: type, pk: int) -> None:
    """A row changed by a Core statement, behind the ORM's back: a copy the session holds reloads on next use."""
    loaded = db.identity_map.get(identity_key(model, pk))
    if loaded is not None:
        db.expire(loaded)


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


__all__ = [
    "Offer",
    "Progress",
    "Shown",
    "ShownSide",
    "expire_loaded",
    "get_assignment",
    "lease_is_live",
    "load_shown",
    "next_offer",
    "next_pair",
    "progress",
    "skip",
]
