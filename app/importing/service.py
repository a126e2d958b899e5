"""Importing a preference dataset: prompts, responses, pairs and judgements, all or nothing.

Each line becomes a prompt (deduplicated within the prompt set), two responses whose source is
``external:<name>``, a completed pair, and one judgement by the *external annotator*: an
inactive account named ``external:<name>`` that stands for whoever judged the dataset, so a
reward model can be trained before any human has judged here, and the dashboard can tell
imported verdicts from its own annotators'. The chosen reply is response A, judged ``a``.

Rows are inserted in chunks as the file is read (memory stays flat), inside a savepoint: the
first bad line stops the inserts, reading goes on only to list every bad line, and the
savepoint is rolled back, so a rejected file writes nothing.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from typing import Any, BinaryIO

from sqlalchemy import insert, select
from sqlalchemy.orm import Session

import app.all_models  # noqa: F401 - every mapper, for the joins across domains
from app.annotation.models import Choice, Judgement
from app.auth.models import Role, User
from app.db import utcnow
from app.errors import Invalid
from app.importing.parsers import PreferenceRow, read_preferences
from app.pool.models import Pair, PairStatus, Response
from app.prompts.importing import insert_new_prompts, load_in_chunks
from app.prompts.models import Prompt, PromptSet, PromptSource
from app.prompts.service import count_prompts, create_set, find_set, lock_set
from app.prompts.validation import content_hash

CHUNK = 1_000
SOURCE_NAME = re.compile(r"^[a-z0-9][a-z0-9_.-]{0,54}$")  # "external:" + name fits users.username (64)
UNUSABLE_PASSWORD = "!external"  # not an argon2 hash: no password ever verifies against it


@dataclass(frozen=True)
class PreferenceImportReport:
    source: str  # "external:<name>"
    prompt_set_id: int
    pairs: int  # pairs (and judgements) written
    new_prompts: int  # prompts the set did not hold before

    def __str__(self) -> str:
        return f"imported {self.pairs:,} judged pair(s) from {self.source} ({self.new_prompts:,} new prompt(s))"


def source_label(name: str) -> str:
    """'external:<name>', after checking the name is short, lower-case and safe in a username."""
    name = name.strip()
    if not SOURCE_NAME.match(name):
        raise Invalid("name", "must be 1-55 lower-case letters, digits, '.', '_' or '-', e.g. 'hh-rlhf'")
    return f"external:{name}"


def external_annotator(db: Session, source: str) -> User:
    """The inactive account that stands for an external dataset's annotators (made on first use)."""
    user = db.scalar(select(User).where(User.username == source))
    if user is None:
        user = User(username=source, password_hash=UNUSABLE_PASSWORD, role=Role.annotator, is_active=False)
        db.add(user)
        db.flush()
    elif user.is_active:
        raise Invalid("name", f"{source} is a real, active account; choose another name")
    return user


def _target_set(db: Session, set_name: str, actor: User | None) -> PromptSet:
    prompt_set = find_set(db, set_name)
    if prompt_set is None:
        prompt_set = create_set(db, name=set_name, description="Imported preference dataset", actor=actor, commit=False)
    lock_set(db, prompt_set.id)
    return prompt_set


@dataclass(frozen=True)
class _Load:
    """Where the rows go: the prompt set, the external annotator's judgements, the responses' source."""

    set_id: int
    annotator_id: int
    source: str
    now: datetime


def import_preferences(
    db: Session,
    *,
    stream: BinaryIO,
    fmt: str,
    name: str,
    set_name: str | None = None,
    actor: User | None = None,
    max_bytes: int | None = None,
    commit: bool = True,
) -> PreferenceImportReport:
    """Import a TRL or HH JSONL stream (optionally gzipped); ``ImportRejected`` (nothing written) on bad lines."""
    source = source_label(name)
    rows = read_preferences(stream, fmt, max_bytes=max_bytes)
    with db.begin_nested():  # a rejected file rolls back everything below, the set and account included
        prompt_set = _target_set(db, set_name or source, actor)
        annotator = external_annotator(db, source)
        before = count_prompts(db, prompt_set.id)
        load = _Load(prompt_set.id, annotator.id, source, utcnow())
        pairs = load_in_chunks(rows, lambda chunk: _flush(db, load, chunk), chunk=CHUNK)
        new_prompts = count_prompts(db, prompt_set.id) - before
    if commit:
        db.commit()
    return PreferenceImportReport(source, prompt_set.id, pairs, new_prompts)


def _prompt_ids(db: Session, load: _Load, rows: list[PreferenceRow]) -> list[int]:
    """Insert the chunk's new prompts (a conversation the set holds already is reused); their ids in row order."""
    hashes = [content_hash(row.messages) for row in rows]
    values = {
        digest: {
            "prompt_set_id": load.set_id,
            "messages": row.messages,
            "content_hash": digest,
            "source": PromptSource.imported,
            "tags": [],
            "red_team": False,
            "retired": False,
            "created_at": load.now,
        }
        for digest, row in zip(hashes, rows, strict=True)
    }
    insert_new_prompts(db, list(values.values()))
    query = select(Prompt.content_hash, Prompt.id).where(
        Prompt.prompt_set_id == load.set_id, Prompt.content_hash.in_(list(values))
    )
    found = dict(db.execute(query).all())
    return [found[digest] for digest in hashes]


def _inserted_ids(db: Session, model: Any, values: list[dict[str, Any]]) -> list[int]:
    statement = insert(model).returning(model.id, sort_by_parameter_order=True)
    return list(db.scalars(statement, values))


def _flush(db: Session, load: _Load, rows: list[PreferenceRow]) -> None:
    """Write a chunk of rows: prompts, then responses, pairs and judgements, each as one batch."""
    prompt_ids = _prompt_ids(db, load, rows)
    texts = [text for row in rows for text in (row.chosen, row.rejected)]
    response_ids = _inserted_ids(
        db,
        Response,
        [
            {
                "prompt_id": prompt_ids[i // 2],
                "source": load.source,
                "text": text,
                "generation_params": {},
                "token_count": 0,
                "created_at": load.now,
            }
            for i, text in enumerate(texts)
        ],
    )
    pair_ids = _inserted_ids(
        db,
        Pair,
        [
            {
                "prompt_id": prompt_ids[i],
                "response_a_id": response_ids[2 * i],
                "response_b_id": response_ids[2 * i + 1],
                "judgements_needed": 1,
                "judgement_count": 1,
                "status": PairStatus.complete,
                "cross_version": False,
                "created_at": load.now,
            }
            for i in range(len(rows))
        ],
    )
    db.execute(
        insert(Judgement),
        [
            {
                "pair_id": pair_id,
                "annotator_id": load.annotator_id,
                "choice": Choice.a,
                "strength": None,
                "seconds": None,
                "note": "",
                "created_at": load.now,
            }
            for pair_id in pair_ids
        ],
    )
