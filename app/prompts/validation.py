"""The rules a prompt obeys wherever it comes from: a form, the API, a JSONL or CSV file.

One set of rules, raising ``Invalid(field, message)`` with a field path such as
``messages[1].role``, so a file importer, a page and the API all name the same field the
same way. The canonical form computed here is also what the duplicate check hashes.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from app.choices import parse_choice
from app.errors import Invalid
from app.prompts.models import PromptSetStatus
from app.text import storable_text

ROLES = ("system", "user", "assistant")
MAX_MESSAGES = 50
MAX_CONTENT = 20_000  # characters per message
MAX_TAGS = 20
MAX_TAG = 50
MAX_SET_NAME = 200
MAX_DESCRIPTION = 2_000
MAX_K = 20  # judgements per pair; more is a typo, not a policy

Messages = list[dict[str, str]]


def _content(field: str, value: Any) -> str:
    """Content is stored trimmed and with Unix newlines, so that the same prompt typed in a
    browser (CRLF, trailing newline) and read from a file hashes the same."""
    if not isinstance(value, str):
        raise Invalid(field, "must be a string")
    text = storable_text(field, value.replace("\r\n", "\n").strip())
    if not text:
        raise Invalid(field, "must not be empty")
    if len(text) > MAX_CONTENT:
        raise Invalid(field, f"must be at most {MAX_CONTENT:,} characters (got {len(text):,})")
    return text


def _message(index: int, value: Any) -> dict[str, str]:
    where = f"messages[{index}]"
    if not isinstance(value, dict):
        raise Invalid(where, 'must be an object {"role": …, "content": …}')
    unknown = sorted(set(value) - {"role", "content"})
    if unknown:
        raise Invalid(where, f"unexpected key {str(unknown[0])[:40]!r}; a message has only role and content")
    role = value.get("role")
    if role not in ROLES:
        raise Invalid(f"{where}.role", f"must be one of {', '.join(ROLES)}")
    if role == "system" and index != 0:
        raise Invalid(f"{where}.role", "a system message may only come first")
    return {"role": role, "content": _content(f"{where}.content", value.get("content"))}


def validate_messages(value: Any) -> Messages:
    """Check a conversation and return its canonical form (only role and content, trimmed)."""
    if not isinstance(value, list):
        raise Invalid("messages", "must be a list of {role, content} objects")
    if not value:
        raise Invalid("messages", "must not be empty")
    if len(value) > MAX_MESSAGES:
        raise Invalid("messages", f"must hold at most {MAX_MESSAGES} messages (got {len(value)})")
    messages = [_message(i, item) for i, item in enumerate(value)]
    if messages[-1]["role"] != "user":
        raise Invalid(f"messages[{len(messages) - 1}].role", "the last message must be the user's")
    return messages


def single_turn(text: Any, *, field: str = "prompt") -> Messages:
    """A plain prompt string is a one-message conversation from the user."""
    return [{"role": "user", "content": _content(field, text)}]


def content_hash(messages: Messages) -> str:
    """sha256 of the canonical JSON of the messages: equal conversations, equal hash.

    The same serialisation as the test factories, so rows made either way dedupe together."""
    return hashlib.sha256(json.dumps(messages, sort_keys=True).encode()).hexdigest()


def validate_tags(value: Any, *, field: str = "tags") -> list[str]:
    """Tags are short labels, kept in order without repeats; commas split them in forms and CSV."""
    if isinstance(value, str):
        value = value.split(",")
    if not isinstance(value, list):
        raise Invalid(field, "must be a list of strings")
    tags: list[str] = []
    for item in value:
        if not isinstance(item, str):
            raise Invalid(field, "must be a list of strings")
        tag = storable_text(field, item.strip())
        if "," in tag:
            raise Invalid(field, f"tag {tag[:40]!r} must not contain a comma")
        if len(tag) > MAX_TAG:
            raise Invalid(field, f"each tag must be at most {MAX_TAG} characters")
        if tag and tag not in tags:
            tags.append(tag)
    if len(tags) > MAX_TAGS:
        raise Invalid(field, f"at most {MAX_TAGS} tags")
    return tags


def parse_flag(value: Any, *, field: str) -> bool:
    """Booleans from JSON, forms and CSV cells alike ("1", "true", "yes", "" …)."""
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in ("1", "true", "yes", "on"):
        return True
    if value is None or (isinstance(value, str) and value.strip().lower() in ("", "0", "false", "no", "off")):
        return False
    raise Invalid(field, "must be true or false")


def validate_set_name(value: str) -> str:
    name = storable_text("name", value.strip())
    if not name:
        raise Invalid("name", "must not be empty")
    if len(name) > MAX_SET_NAME:
        raise Invalid("name", f"must be at most {MAX_SET_NAME} characters")
    return name


def validate_description(value: str) -> str:
    if len(value) > MAX_DESCRIPTION:
        raise Invalid("description", f"must be at most {MAX_DESCRIPTION:,} characters")
    return storable_text("description", value.strip())


def validate_k(value: int | str | None) -> int | None:
    """k, the judgements each pair of the set needs; None (or blank) means the global setting."""
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    try:
        k = int(value)
    except (TypeError, ValueError):
        raise Invalid("judgements_per_pair", "must be a whole number") from None
    if not 1 <= k <= MAX_K:
        raise Invalid("judgements_per_pair", f"must be between 1 and {MAX_K}")
    return k


def parse_status(value: str | PromptSetStatus) -> PromptSetStatus:
    return parse_choice(PromptSetStatus, value, "status")
