"""The one definition of text that is not storable everywhere (NUL, which PostgreSQL refuses; lone
surrogates, which UTF-8 cannot encode): refused by name where a person typed it, replaced where a model
wrote it. Pure Python, so generation backends and trainers use it without the ORM."""

from __future__ import annotations

import re
from typing import Any

from app.errors import Invalid

UNSTORABLE = re.compile("[\x00\ud800-\udfff]")  # NUL, and surrogates (never valid alone in a str)


def storable(text: str) -> str:
    """``text`` with what a database cannot store (NUL, lone surrogates) replaced by U+FFFD: for text
    nobody can be asked to fix, such as model output."""
    return UNSTORABLE.sub("\ufffd", text)


def unstorable(text: str) -> str | None:
    """Why a database cannot store ``text`` (None when it can): PostgreSQL rejects NUL in text and
    JSONB, and a lone surrogate (legal as a JSON escape) cannot be encoded as UTF-8 on either backend."""
    if "\x00" in text:
        return "must not contain NUL characters"
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return "must be valid Unicode text (no lone surrogates)"
    return None


def storable_text(field: str, text: str) -> str:
    """``text`` itself, or ``Invalid`` naming ``field`` and what a database could not store: for text a
    person typed, which is refused rather than altered."""
    problem = unstorable(text)
    if problem is not None:
        raise Invalid(field, problem)
    return text


def first_unstorable(value: Any, where: str = "") -> tuple[str, str] | None:
    """(dotted path, problem) of the first string inside a JSON-like value a database cannot store."""
    if isinstance(value, str):
        problem = unstorable(value)
        return (where, problem) if problem else None
    items = value.items() if isinstance(value, dict) else enumerate(value) if isinstance(value, list) else ()
    for key, item in items:
        found = first_unstorable(item, f"{where}.{key}" if where else str(key))
        if found:
            return found
    return None
