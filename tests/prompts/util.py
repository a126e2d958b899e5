"""Helpers for the prompts tests: row counts as the database holds them, and file builders."""

from __future__ import annotations

import json

from sqlalchemy import func, select

from app.prompts.models import Prompt, PromptSet


def prompt_count(db, set_id: int | None = None) -> int:
    query = select(func.count()).select_from(Prompt)
    if set_id is not None:
        query = query.where(Prompt.prompt_set_id == set_id)
    return db.scalar(query)


def set_count(db) -> int:
    return db.scalar(select(func.count()).select_from(PromptSet))


def jsonl(*records: object) -> bytes:
    """One line per record; a str is written as is (for malformed lines)."""
    return "".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in records).encode()
