"""Importing a prompt file into a set: all of it in one transaction, or none of it.

The file is read line by line and inserted in chunks by executemany ``INSERT … ON CONFLICT DO
NOTHING`` (pipelined by psycopg, one prepared statement on SQLite), so memory stays flat and a
10,000-line file takes about a second. The unique constraint on (set, content hash) does the
duplicate detection, against rows already in the set and within the file alike, on PostgreSQL
and SQLite. What was new is the set's row count after minus before, exact because the set's row
is locked for the transaction (SQLite's BEGIN IMMEDIATE serialises writers anyway). ``RETURNING``
would count too, but it turns executemany into huge multi-VALUES statements that are 3-5 times
slower on psycopg. The first bad line stops the inserts (parsing goes on, to list every bad line),
and the savepoint around the inserts is rolled back.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO, TypeVar

from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from app.auth.models import User
from app.db import utcnow
from app.errors import Invalid, NotFound
from app.prompts.importers import MAX_UPLOAD_BYTES, LineError, Row, detect_format, read_rows
from app.prompts.models import Prompt, PromptSet, PromptSource
from app.prompts.service import count_prompts, create_set, find_set, lock_set
from app.prompts.validation import content_hash

CHUNK = 1_000  # rows per INSERT: large enough to amortise round trips, small enough for any driver
MAX_LISTED = 100  # bad lines named in the report; the rest are counted
_INSERTS = {"postgresql": postgresql.insert, "sqlite": sqlite.insert}
T = TypeVar("T")


@dataclass(frozen=True)
class ImportReport:
    prompt_set_id: int
    read: int  # good records in the file
    imported: int  # new prompts written
    duplicates: int  # records skipped: already in the set, or earlier in the file

    def __str__(self) -> str:
        return f"imported {self.imported} prompt(s); skipped {self.duplicates} duplicate(s) of {self.read} read"


class ImportRejected(Invalid):
    """A file with bad lines imports nothing; the message lists them (the first MAX_LISTED)."""

    def __init__(self, errors: list[LineError], total: int) -> None:
        self.errors = errors
        self.total = total
        listed = "; ".join(str(e) for e in errors)
        more = f"; and {total - len(errors)} more" if total > len(errors) else ""
        super().__init__("file", f"{total} bad line(s), nothing imported: {listed}{more}")


def import_prompts(
    db: Session, *, set_id: int,
    stream: BinaryIO, fmt: str, max_bytes: int | None = MAX_UPLOAD_BYTES,  # the upload
    actor: User | None = None, commit: bool = True,
) -> ImportReport:
    """Import a JSONL or CSV stream into the set; raises ImportRejected (nothing written) on bad lines.

    ``commit=False`` leaves the commit to the caller, e.g. the CLI creating the set in the same
    transaction so that a rejected file leaves no empty set behind."""
    lock_set(db, set_id)
    before = count_prompts(db, set_id)
    now = utcnow()

    def flush(rows: list[Row]) -> None:
        insert_new_prompts(db, [_values(set_id, row, actor, now) for row in rows])

    with db.begin_nested():  # a failure rolls back the inserts, and nothing the caller did before
        read = load_in_chunks(read_rows(stream, fmt, max_bytes=max_bytes), flush, chunk=CHUNK)
    imported = count_prompts(db, set_id) - before
    if commit:
        db.commit()
    return ImportReport(set_id, read, imported, read - imported)


def load_in_chunks(items: Iterable[T | LineError], flush: Callable[[list[T]], None], *, chunk: int) -> int:
    """Hand the good rows of a file to ``flush``, ``chunk`` at a time; returns how many good rows were read.

    The first bad line stops the flushing; reading goes on only to list every bad line, and then
    ``ImportRejected`` names them, for the caller's savepoint to roll back what was flushed before."""
    good = bad = 0
    errors: list[LineError] = []
    pending: list[T] = []
    for item in items:
        if isinstance(item, LineError):
            bad += 1
            if len(errors) < MAX_LISTED:
                errors.append(item)
            pending.clear()
            continue
        good += 1
        if bad:
            continue  # the import is lost already; keep reading only to list the bad lines
        pending.append(item)
        if len(pending) >= chunk:
            flush(pending)
            pending = []
    if bad:
        raise ImportRejected(errors, bad)
    if pending:
        flush(pending)
    return good


def insert_new_prompts(db: Session, values: list[dict[str, Any]]) -> None:
    """Insert prompt rows in one executemany; a row whose conversation its set holds already is skipped."""
    dialect = db.get_bind().dialect.name
    insert = _INSERTS.get(dialect)
    if insert is None:
        raise NotImplementedError(f"prompt import supports PostgreSQL and SQLite, not {dialect}")
    statement = insert(Prompt).on_conflict_do_nothing(index_elements=["prompt_set_id", "content_hash"])
    db.execute(statement, values)


def _values(set_id: int, row: Row, actor: User | None, now: Any) -> dict[str, Any]:
    return {
        "prompt_set_id": set_id,
        "messages": row.messages,
        "content_hash": content_hash(row.messages),
        "source": PromptSource.imported,
        "tags": row.tags,
        "red_team": row.red_team,
        "retired": False,
        "created_by_id": actor.id if actor else None,
        "created_at": now,
    }


def import_path(
    db: Session, *, path: Path, set_name: str, create: bool = False, fmt: str | None = None
) -> tuple[PromptSet, ImportReport]:
    """The CLI's import: by set name, optionally creating the set in the same transaction, so
    a rejected file leaves no empty set behind. A local file has no size cap."""
    fmt = detect_format(path.name, fmt)
    prompt_set = find_set(db, set_name)
    if prompt_set is None:
        if not create:
            raise NotFound(f"no prompt set named {set_name.strip()!r}")
        prompt_set = create_set(db, name=set_name, commit=False)
    try:
        with path.open("rb") as stream:
            report = import_prompts(db, set_id=prompt_set.id, stream=stream, fmt=fmt, max_bytes=None, commit=False)
    except OSError as exc:
        raise Invalid("file", f"cannot read {str(path)[:200]}: {exc.strerror}") from None
    db.commit()
    return prompt_set, report
