"""Reading prompt files (JSONL and CSV) one line at a time, so memory stays flat at any size.

Readers yield a ``Row`` for every good record and a ``LineError`` for every bad one; they never
stop at the first bad line, because an admin fixing a file wants the whole list at once.
Problems with the file as a whole (not UTF-8, no ``prompt`` column, too large) raise at once.

JSONL: one object per line, ``{"prompt": "…"}`` or ``{"messages": [{"role", "content"}, …]}``,
optionally ``"tags": [..]`` and ``"red_team": true``; other keys (ids, sources) are ignored.
CSV: a header with a ``prompt`` column; optional ``system``, ``tags`` (comma-separated) and
``red_team`` columns; other columns are ignored.
"""

from __future__ import annotations

import codecs
import csv
import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import PurePath
from typing import Any, BinaryIO

from app.errors import DomainError, Invalid
from app.prompts.validation import Messages, parse_flag, single_turn, validate_messages, validate_tags

FORMATS = ("jsonl", "csv")
SUFFIXES = {".jsonl": "jsonl", ".ndjson": "jsonl", ".csv": "csv"}
MAX_UPLOAD_BYTES = 50 * 1024 * 1024
# The upload routes' body limit: the file plus multipart framing and the other fields. A body past
# it is refused (413) before it is read or spooled to disk; a file past MAX_UPLOAD_BYTES but
# within it gets the clearer message from check_size.
UPLOAD_BODY_LIMIT = MAX_UPLOAD_BYTES + 1024 * 1024


class TooLarge(DomainError, status_code=413, title="Payload too large"):
    """The upload is over the size an import reads."""


@dataclass(frozen=True)
class Row:
    line: int
    messages: Messages
    tags: list[str] = field(default_factory=list)
    red_team: bool = False


@dataclass(frozen=True)
class LineError:
    line: int
    message: str

    def __str__(self) -> str:
        return f"line {self.line}: {self.message}"


Parsed = Row | LineError


def detect_format(filename: str | None, explicit: str | None = None) -> str:
    """The format named by the caller, else by the file's suffix; never guessed from content."""
    if explicit:
        if explicit not in FORMATS:
            raise Invalid("format", f"must be one of {', '.join(FORMATS)}")
        return explicit
    suffix = PurePath(filename or "").suffix.lower()
    if suffix not in SUFFIXES:
        shown = (filename or "the file")[:80]
        raise Invalid("file", f"cannot tell the format of {shown!r}: name it .jsonl or .csv, or give the format")
    return SUFFIXES[suffix]


def describe_size(n: int) -> str:
    return f"{n / (1024 * 1024):g} MB" if n >= 1024 * 1024 else f"{n:,} bytes"


def too_large(max_bytes: int) -> TooLarge:
    return TooLarge(
        f"file: larger than the {describe_size(max_bytes)} limit; split it into smaller files", field="file"
    )


def check_size(size: int | None, max_bytes: int) -> None:
    """Refuse an upload whose size is known before reading a line of it (and inserting rows)."""
    if size is not None and size > max_bytes:
        raise too_large(max_bytes)


def decoded_lines(stream: BinaryIO, *, max_bytes: int | None = MAX_UPLOAD_BYTES) -> Iterator[str]:
    """Lines of a UTF-8 file (a leading BOM dropped), refusing the file once it passes max_bytes."""
    total = 0
    for number, raw in enumerate(iter(stream.readline, b""), 1):
        total += len(raw)
        if max_bytes is not None and total > max_bytes:
            raise too_large(max_bytes)
        if number == 1 and raw.startswith(codecs.BOM_UTF8):
            raw = raw[len(codecs.BOM_UTF8) :]
        try:
            yield raw.decode("utf-8")
        except UnicodeDecodeError:
            raise Invalid("file", f"line {number} is not UTF-8 text; save the file as UTF-8 and try again") from None


def read_rows(stream: BinaryIO, fmt: str, *, max_bytes: int | None = MAX_UPLOAD_BYTES) -> Iterator[Parsed]:
    lines = decoded_lines(stream, max_bytes=max_bytes)
    return read_jsonl(lines) if fmt == "jsonl" else read_csv(lines)


def read_jsonl(lines: Iterator[str]) -> Iterator[Parsed]:
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue  # blank lines (a trailing newline, a separator) carry nothing
        try:
            record = json.loads(line)
        except json.JSONDecodeError as exc:
            yield LineError(number, f"not valid JSON ({exc.msg} at column {exc.colno})")
            continue
        except RecursionError:  # "[[[[…" a million deep: refused, not a crash
            yield LineError(number, "not valid JSON (nested too deeply)")
            continue
        yield _parsed(_jsonl_row, number, record)


def _parsed(build: Any, number: int, *args: Any) -> Parsed:
    """A record's rule violation becomes that line's error instead of ending the read."""
    try:
        return build(number, *args)
    except Invalid as exc:
        return LineError(number, exc.message)


def _jsonl_row(number: int, record: Any) -> Row:
    if not isinstance(record, dict):
        raise Invalid("record", 'must be a JSON object with "prompt" or "messages"')
    if ("prompt" in record) == ("messages" in record):
        raise Invalid("record", 'needs exactly one of "prompt" (a string) or "messages" (a list)')
    if "prompt" in record:
        messages = single_turn(record["prompt"])
    else:
        messages = validate_messages(record["messages"])
    tags = validate_tags(record.get("tags", []))
    red_team = parse_flag(record.get("red_team", False), field="red_team")
    return Row(number, messages, tags, red_team)


def read_csv(lines: Iterator[str]) -> Iterator[Parsed]:
    """CSV records may span lines (quoted newlines); a record is reported by its first line."""
    reader = csv.reader(lines)
    try:
        header = next(reader, None)
    except csv.Error as exc:
        raise Invalid("file", f"line 1 is not valid CSV ({exc})") from None
    if header is None:
        raise Invalid("file", "is empty")
    columns = {name.strip().lower(): i for i, name in reversed(list(enumerate(header)))}
    if "prompt" not in columns:
        found = ", ".join(repr(h.strip()[:40]) for h in header[:10]) or "nothing"
        raise Invalid("file", f'the CSV header (line 1) has no "prompt" column; found {found}')
    yield from _csv_records(reader, columns)


def _csv_records(reader: Any, columns: dict[str, int]) -> Iterator[Parsed]:
    start = reader.line_num + 1
    while True:
        try:
            cells = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            yield LineError(start, f"not valid CSV ({exc}); reading stopped here")
            return
        if any(cell.strip() for cell in cells):
            yield _parsed(_csv_row, start, cells, columns)
        start = reader.line_num + 1


def _csv_row(number: int, cells: list[str], columns: dict[str, int]) -> Row:
    def cell(name: str) -> str:
        index = columns.get(name)
        return cells[index] if index is not None and index < len(cells) else ""

    messages = single_turn(cell("prompt"))
    system = cell("system").strip()
    if system:
        messages = validate_messages([{"role": "system", "content": system}, *messages])
    tags = validate_tags(cell("tags"))
    return Row(number, messages, tags, parse_flag(cell("red_team"), field="red_team"))
