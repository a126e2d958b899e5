"""Storing a judgement: the choice, both responses' labels and an optional demonstration, in one
transaction, mapped from screen sides to the real responses, exactly once.

Exactly once: the pair row is locked (PostgreSQL ``FOR UPDATE``; SQLite serialises writers) while
its count is checked and raised, and the unique (pair, annotator) constraint turns a concurrent
duplicate into an IntegrityError that is answered like the first submission.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from functools import cache

from sqlalchemy import Connection, bindparam, case, func, insert, literal_column, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from app.annotation.assignment import LEASED_STATUSES, expire_loaded
from app.annotation.models import (
    AssignmentStatus,
    Choice,
    Demonstration,
    DemonstrationKind,
    Judgement,
    PairAssignment,
    ResponseLabel,
)
from app.annotation.schemas import JudgementIn, SideLabels
from app.auth.models import User
from app.db import upsert_insert, utcnow
from app.driver_statement import DriverRow, DriverStatement
from app.errors import Conflict, Invalid, NotFound
from app.pool.models import Pair, PairStatus


@dataclass(frozen=True)
class Stored:
    judgement_id: int
    created: bool  # False when this was a repeat of an earlier identical submission


def real_choice(choice: str, swapped: bool) -> Choice:
    """A choice in screen terms ("A": the left answer) as the stored choice of the real responses."""
    if choice in ("tie", "both_bad"):
        return Choice(choice)
    on_left = choice == "A"
    return Choice.a if on_left != swapped else Choice.b


def validate(body: JudgementIn) -> None:
    """Rules pydantic cannot state alone; each names the field at fault."""
    if set(body.labels) != {"A", "B"}:
        missing = sorted({"A", "B"} - set(body.labels))
        raise Invalid(f"labels.{missing[0]}", "quality and safety are required for both responses")
    check_strength(body.choice, body.strength)


def check_strength(choice: str, strength: int | None) -> None:
    """A or B comes with how much better; a tie or both-bad with none (a submission's rule and an edit's)."""
    if choice in ("A", "B") and strength is None:
        raise Invalid("strength", "say how much better (1 slightly, 2 clearly, 3 much) when A or B is better")
    if choice in ("tie", "both_bad") and strength is not None:
        raise Invalid("strength", f"only given when A or B is better, not with {choice!r}")


def _demonstration_kind(choice: str, labels: dict[str, SideLabels]) -> DemonstrationKind:
    """A written answer replaces unsafe ones → a safe answer; otherwise an ideal answer."""
    unsafe = [side for side, lab in labels.items() if lab.safety == "unsafe"]
    if len(unsafe) == 2 or (choice == "both_bad" and unsafe):
        return DemonstrationKind.safe_answer
    return DemonstrationKind.ideal


_JUDGEMENTS, _PAIRS, _ASSIGNMENTS = Judgement.__table__, Pair.__table__, PairAssignment.__table__
# What a submission reads of the assignment and its pair, as columns rather than ORM objects: nothing here
# changes them through the ORM, and loading two entities (with their relationship loaders) cost more CPU
# than the statement itself. Built once: see assignment.py.
_LOCKED = (
    select(
        _ASSIGNMENTS.c.id,
        _ASSIGNMENTS.c.user_id,
        _ASSIGNMENTS.c.pair_id,
        _ASSIGNMENTS.c.swapped,
        _ASSIGNMENTS.c.status,
        _ASSIGNMENTS.c.assigned_at,
        _ASSIGNMENTS.c.leased_until,
        _PAIRS.c.status.label("pair_status"),
        _PAIRS.c.judgement_count,
        _PAIRS.c.judgements_needed,
        _PAIRS.c.prompt_id,
        _PAIRS.c.response_a_id,
        _PAIRS.c.response_b_id,
    )
    .join(_PAIRS, _PAIRS.c.id == _ASSIGNMENTS.c.pair_id)
    .where(_ASSIGNMENTS.c.id == bindparam("assignment_id"))
)
# Run on the driver (app.driver_statement); on PostgreSQL locked, both rows, so that a concurrent submission
# waits, then sees the fresh count.
_LOCKED_ON_DRIVER = {"postgresql": DriverStatement(_LOCKED.with_for_update()), "sqlite": DriverStatement(_LOCKED)}


def _locked(conn: Connection, *, user: User, assignment_id: int) -> DriverRow:
    """The user's assignment and its pair in one statement, locked on PostgreSQL."""
    row = _LOCKED_ON_DRIVER[conn.dialect.name].first(conn, {"assignment_id": assignment_id})
    if row is None or row.user_id != user.id:
        raise NotFound(f"assignment {assignment_id} is not assigned to you")
    return row


def _same_as(existing: Judgement, choice: Choice, strength: int | None) -> bool:
    return existing.choice is choice and existing.strength == strength


def _repeat(db: Session, *, pair_id: int, user_id: int, choice: Choice, strength: int | None) -> Stored | None:
    existing = db.scalar(select(Judgement).where(Judgement.pair_id == pair_id, Judgement.annotator_id == user_id))
    if existing is None:
        return None
    if not _same_as(existing, choice, strength):
        raise Conflict(f"you already judged this pair (judgement {existing.id}) differently")
    return Stored(judgement_id=existing.id, created=False)


def submit(db: Session, *, user: User, body: JudgementIn) -> Stored:
    validate(body)
    db.flush()  # the statements below go to the connection: earlier ORM changes must be there first
    conn = db.connection()
    locked = _locked(conn, user=user, assignment_id=body.assignment_id)
    choice = real_choice(body.choice, locked.swapped)
    try:
        return _store(db, conn, user, locked, body, choice)
    except IntegrityError:
        db.rollback()  # a concurrent identical request won the race; answer as it was answered
        found = _repeat(db, pair_id=locked.pair_id, user_id=user.id, choice=choice, strength=body.strength)
        if found is None:
            raise
        db.commit()
        return found


# The writes of a judgement as Core statements on the tables, built once and run on the session's
# connection: the ORM's unit of work, and even Session.execute, cost several times what these statements
# do, and nothing here needs objects back.
_INSERT_JUDGEMENT = insert(_JUDGEMENTS).returning(_JUDGEMENTS.c.id)
_COUNT_UP = (
    update(_PAIRS)
    .where(_PAIRS.c.id == bindparam("pair_id"))
    .values(
        judgement_count=_PAIRS.c.judgement_count + 1,
        status=case(
            (_PAIRS.c.judgement_count + 1 >= _PAIRS.c.judgements_needed, PairStatus.complete.value),
            else_=_PAIRS.c.status,
        ),
    )
)
_MARK_SUBMITTED = (
    update(_ASSIGNMENTS)
    .where(_ASSIGNMENTS.c.id == bindparam("assignment_id"))
    .values(status=AssignmentStatus.submitted.value)
)


_LIVE_LEASES_OF_OTHERS = select(func.count()).where(
    PairAssignment.pair_id == bindparam("pair_id"),
    PairAssignment.status == AssignmentStatus.active,
    PairAssignment.leased_until > bindparam("now"),
    PairAssignment.user_id != bindparam("user_id"),
)


def _slot_taken_by_others(conn: Connection, *, user: User, locked: DriverRow, now: datetime) -> bool:
    """A lapsed lease still counts while the pair has room for it; once others' live leases fill
    what the pair still needs, its slot went to someone else and this judgement would be one too many."""
    others = conn.scalar(_LIVE_LEASES_OF_OTHERS, {"pair_id": locked.pair_id, "now": now, "user_id": user.id}) or 0
    return locked.judgement_count + others >= locked.judgements_needed


def _store(db: Session, conn: Connection, user: User, locked: DriverRow, body: JudgementIn, choice: Choice) -> Stored:
    if locked.status is not AssignmentStatus.active:  # the happy path needs no look-up of an earlier judgement
        repeat = _repeat(db, pair_id=locked.pair_id, user_id=user.id, choice=choice, strength=body.strength)
        if repeat is not None:
            db.commit()
            return repeat
        if locked.status is AssignmentStatus.skipped:
            raise Conflict("you skipped this pair; ask for the next one")
    if locked.pair_status not in LEASED_STATUSES or locked.judgement_count >= locked.judgements_needed:
        raise Conflict("this pair already has all the judgements it needs; ask for the next one")
    now = utcnow()
    live = locked.status is AssignmentStatus.active and locked.leased_until > now  # assignment.lease_is_live
    if not live and _slot_taken_by_others(conn, user=user, locked=locked, now=now):
        raise Conflict("your lease on this pair expired and the pair was given to someone else; ask for the next one")
    judgement_id = _write(conn, _values(user, locked, body, choice, now))
    if body.demonstration.strip():
        kind = _demonstration_kind(body.choice, body.labels)
        db.add(
            Demonstration(
                prompt_id=locked.prompt_id,
                annotator_id=user.id,
                judgement_id=judgement_id,
                text=body.demonstration.strip(),
                kind=kind,
            )
        )
    db.commit()
    expire_loaded(db, Pair, locked.pair_id)  # changed behind the ORM's back: a loaded copy reloads on next use
    expire_loaded(db, PairAssignment, locked.id)
    return Stored(judgement_id=judgement_id, created=True)


def _values(user: User, locked: DriverRow, body: JudgementIn, choice: Choice, now: datetime) -> dict:
    """What the writes bind: the judgement on the real responses, and a label row per response shown."""
    left, right = (
        (locked.response_b_id, locked.response_a_id) if locked.swapped else (locked.response_a_id, locked.response_b_id)
    )
    values = {
        "pair_id": locked.pair_id,
        "annotator_id": user.id,
        "choice": choice,
        "strength": body.strength,
        "seconds": max(0.0, (now - locked.assigned_at).total_seconds()),
        "note": body.note.strip(),
        "created_at": now,
        "assignment_id": locked.id,
    }
    for side, response_id in (("A", left), ("B", right)):  # one label row per (response, annotator)
        values[f"response_{side}"] = response_id
        values[f"quality_{side}"] = body.labels[side].quality == "good"
        values[f"safety_{side}"] = body.labels[side].safety == "safe"
    return values


def _write(conn: Connection, values: dict) -> int:
    """The judgement, both labels, the pair's count and the assignment's status; the judgement's id.

    On PostgreSQL one statement whose data-modifying CTEs all run (to completion, in one snapshot): one
    round trip and one statement's overhead on both sides instead of four; a duplicate judgement fails the
    whole statement. SQLite has no data-modifying CTEs: there, the same writes one by one.

    Each statement gets only the values it names: SQLAlchemy turns any other key that matches a column of
    an INSERT's or UPDATE's table into one more column to set (an UPDATE of pair_assignments given
    ``pair_id`` would set it), which is also why the single statement's parameters are all ``new_*``."""
    if conn.dialect.name == "postgresql":
        return _write_in_one_statement().first(conn, {f"new_{key}": value for key, value in values.items()})[0]
    judgement_id = conn.execute(_INSERT_JUDGEMENT, {key: values[key] for key in _JUDGEMENT_COLUMNS}).scalar_one()
    labels = {key: values[key] for key in _LABEL_KEYS if key != "judgement_id"}
    conn.execute(_labels_upsert(conn.dialect.name), {**labels, "judgement_id": judgement_id})
    conn.execute(_COUNT_UP, {"pair_id": values["pair_id"]})
    conn.execute(_MARK_SUBMITTED, {"assignment_id": values["assignment_id"]})
    return judgement_id


_JUDGEMENT_COLUMNS = ("pair_id", "annotator_id", "choice", "strength", "seconds", "note", "created_at")
_SHARED_LABEL_COLUMNS = ("annotator_id", "judgement_id", "created_at")
_SIDE_COLUMNS = {"response_id": "response", "quality": "quality", "safety": "safety"}  # bound as response_A, …
_LABEL_KEYS = (*_SHARED_LABEL_COLUMNS, *(f"{key}_{side}" for side in "AB" for key in _SIDE_COLUMNS.values()))


def _label_binds(prefix: str, side: str) -> dict:
    """The labels table's columns for one side, as bound parameters named ``{prefix}{response|quality|…}``."""
    table = ResponseLabel.__table__
    shared = {name: bindparam(f"{prefix}{name}", type_=table.c[name].type) for name in _SHARED_LABEL_COLUMNS}
    own = {name: bindparam(f"{prefix}{key}_{side}", type_=table.c[name].type) for name, key in _SIDE_COLUMNS.items()}
    return {**shared, **own}


def _label_upsert_set(statement) -> dict:  # noqa: ANN001 - the dialect's Insert
    return {name: getattr(statement.excluded, name) for name in ("quality", "safety", "judgement_id")}


@cache
def _labels_upsert(dialect: str):  # noqa: ANN202 - built once per backend; executed with both sides' values
    """Both label rows in one statement (a two-row VALUES), not an executemany of two."""
    table = ResponseLabel.__table__  # the table, not the class: an ORM insert takes the bulk-persistence path
    statement = upsert_insert(dialect, table).values([_label_binds("", side) for side in "AB"])
    return statement.on_conflict_do_update(
        index_elements=["response_id", "annotator_id"], set_=_label_upsert_set(statement)
    )


@cache
def _write_in_one_statement() -> DriverStatement:
    """PostgreSQL's select of the judgement's id with its writes, run on the driver."""
    judgement = (
        insert(_JUDGEMENTS)
        .values({name: bindparam(f"new_{name}", type_=_JUDGEMENTS.c[name].type) for name in _JUDGEMENT_COLUMNS})
        .returning(_JUDGEMENTS.c.id)
        .cte("judgement")
    )
    sides = []
    for side in "AB":
        binds = {**_label_binds("new_", side), "judgement_id": judgement.c.id}
        sides.append(select(*binds.values()).select_from(judgement))
    table = ResponseLabel.__table__
    labels = upsert_insert("postgresql", table).from_select(list(_label_binds("", "A")), sides[0].union_all(sides[1]))
    labels = labels.on_conflict_do_update(
        index_elements=["response_id", "annotator_id"], set_=_label_upsert_set(labels)
    )
    # The updates' constants are written inline (they never come from a request), so the only parameters are new_*.
    one, complete = literal_column("1"), literal_column(f"'{PairStatus.complete.value}'")
    count_up = (
        update(_PAIRS)
        .where(_PAIRS.c.id == bindparam("new_pair_id"))
        .values(
            judgement_count=_PAIRS.c.judgement_count + one,
            status=case(
                (_PAIRS.c.judgement_count + one >= _PAIRS.c.judgements_needed, complete), else_=_PAIRS.c.status
            ),
        )
    )
    submitted = (
        update(_ASSIGNMENTS)
        .where(_ASSIGNMENTS.c.id == bindparam("new_assignment_id"))
        .values(status=literal_column(f"'{AssignmentStatus.submitted.value}'"))
    )
    writes = (labels.cte("labels"), count_up.cte("count_up"), submitted.cte("submitted"))
    return DriverStatement(select(judgement.c.id).add_cte(*writes))
