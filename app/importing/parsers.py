"""Reading preference datasets line by line: TRL JSONL (standard or conversational) and HH-RLHF.

Each line yields a ``PreferenceRow`` (a prompt conversation, the chosen and the rejected reply)
or a ``LineError`` naming the line; reading never stops at a bad line, so an admin gets the
whole list at once. A gzipped file is recognised by its first bytes, whatever its name.

Formats (``fmt``):
- ``trl``: ``{"prompt": str, "chosen": str, "rejected": str}``, or the conversational variant
  with message lists (``"prompt"`` may be left out: the longest common prefix of the two
  conversations is the prompt, as TRL's implicit-prompt datasets do).
- ``hh``: ``{"chosen": transcript, "rejected": transcript}`` with '\\n\\nHuman: …\\n\\nAssistant: …'
  turns. The prompt is the turns the two transcripts share, up to and including the last shared
  Human turn; each reply is the rest of its transcript after that turn's Assistant cue (it may
  span several turns when a transcript goes on, which a handful of HH lines do).
"""

from __future__ import annotations

import gzip
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, BinaryIO

from app.errors import Invalid
from app.prompts.importers import LineError, decoded_lines
from app.prompts.validation import Messages, single_turn, validate_messages
from app.text import storable_text

FORMATS = ("trl", "hh")
MAX_REPLY = 100_000  # characters in one reply
HH_TURN = re.compile(r"\n\n(Human|Assistant|System): ")
HH_ROLE = {"Human": "user", "Assistant": "assistant", "System": "system"}
ASSISTANT_CUE = "\n\nAssistant: "
GZIP_MAGIC = b"\x1f\x8b"


@dataclass(frozen=True)
class PreferenceRow:
    line: int
    messages: Messages  # the prompt: a conversation ending with the user's turn
    chosen: str
    rejected: str


Parsed = PreferenceRow | LineError


def open_maybe_gzip(stream: BinaryIO) -> BinaryIO:
    """The stream itself, or a decompressing view of it when it starts with the gzip magic."""
    head = stream.peek(2)[:2] if hasattr(stream, "peek") else b""
    if not head:
        head = stream.read(2)
        stream.seek(0)
    return gzip.GzipFile(fileobj=stream) if head == GZIP_MAGIC else stream  # type: ignore[return-value]


def read_preferences(stream: BinaryIO, fmt: str, *, max_bytes: int | None = None) -> Iterator[Parsed]:
    """Parse every line of a (possibly gzipped) JSONL stream; ``max_bytes`` bounds the decompressed size."""
    if fmt not in FORMATS:
        raise Invalid("format", f"must be one of {', '.join(FORMATS)}")
    build = _trl_row if fmt == "trl" else _hh_row
    lines = decoded_lines(open_maybe_gzip(stream), max_bytes=max_bytes)
    for number, line in enumerate(_gzip_errors(lines), 1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
            if not isinstance(record, dict):
                raise Invalid("record", "must be a JSON object")
            yield build(number, record)
        except json.JSONDecodeError as exc:
            yield LineError(number, f"not valid JSON ({exc.msg} at column {exc.colno})")
        except RecursionError:
            yield LineError(number, "not valid JSON (nested too deeply)")
        except Invalid as exc:
            yield LineError(number, exc.message)


def _gzip_errors(lines: Iterator[str]) -> Iterator[str]:
    try:
        yield from lines
    except (OSError, EOFError) as exc:  # a truncated or corrupt .gz
        raise Invalid("file", f"cannot decompress the file: {exc}") from None


def reply_text(field: str, value: Any) -> str:
    """A reply as stored: text without NUL or lone surrogates, trimmed, bounded. It may be empty:
    a model that said nothing gave a (bad) reply, and public datasets hold such pairs."""
    if not isinstance(value, str):
        raise Invalid(field, "must be a string")
    text = storable_text(field, value.replace("\r\n", "\n").strip())
    if len(text) > MAX_REPLY:
        raise Invalid(field, f"must be at most {MAX_REPLY:,} characters")
    return text


def _trl_row(number: int, record: dict[str, Any]) -> PreferenceRow:
    missing = [key for key in ("chosen", "rejected") if key not in record]
    if missing:
        raise Invalid(missing[0], 'is missing; a TRL preference record has "prompt", "chosen" and "rejected"')
    chosen, rejected, prompt = record["chosen"], record["rejected"], record.get("prompt")
    if isinstance(chosen, list) or isinstance(rejected, list):
        return _conversational(number, prompt, chosen, rejected)
    if prompt is None:
        raise Invalid("prompt", "is missing (only the conversational format may leave it implicit)")
    if not isinstance(prompt, str):
        raise Invalid("prompt", "must be a string when chosen and rejected are strings")
    return PreferenceRow(
        number, _prompt_messages(prompt), reply_text("chosen", chosen), reply_text("rejected", rejected)
    )


def _prompt_messages(prompt: str) -> Messages:
    """A plain prompt; a transcript ending with the Assistant cue (how multi-turn prompts are exported) is split
    into turns."""
    stripped = prompt.rstrip()
    if prompt.startswith(("\n\nHuman: ", "\n\nSystem: ")) and stripped.endswith("\n\nAssistant:"):
        turns = _turns(stripped.removesuffix("\n\nAssistant:"))
        return validate_messages([{"role": HH_ROLE[role], "content": text} for role, text in turns if text.strip()])
    return single_turn(prompt)


def _conversational(number: int, prompt: Any, chosen: Any, rejected: Any) -> PreferenceRow:
    if not isinstance(chosen, list) or not isinstance(rejected, list):
        raise Invalid("chosen", "and rejected must both be message lists, or both strings")
    if prompt is None:  # implicit prompt: the shared beginning of the two conversations
        shared = 0
        while shared < min(len(chosen), len(rejected)) and chosen[shared] == rejected[shared]:
            shared += 1
        prompt, chosen, rejected = chosen[:shared], chosen[shared:], rejected[shared:]
    if not isinstance(prompt, list):
        raise Invalid("prompt", "must be a message list when chosen and rejected are message lists")
    return PreferenceRow(
        number, validate_messages(prompt), _completion("chosen", chosen), _completion("rejected", rejected)
    )


def _completion(field: str, messages: list[Any]) -> str:
    if len(messages) != 1 or not isinstance(messages[0], dict) or messages[0].get("role") != "assistant":
        raise Invalid(field, 'must be one assistant message [{"role": "assistant", "content": …}]')
    return reply_text(f"{field}[0].content", messages[0].get("content"))


def _turns(transcript: str) -> list[tuple[str, str]]:
    """(speaker, text) turns of an HH transcript, which must start with '\\n\\nHuman: ' (or System)."""
    parts = HH_TURN.split(transcript)
    if parts[0] != "" or len(parts) < 3:
        raise Invalid("transcript", "must start with '\\n\\nHuman: '")
    return list(zip(parts[1::2], parts[2::2], strict=True))


def _hh_row(number: int, record: dict[str, Any]) -> PreferenceRow:
    for key in ("chosen", "rejected"):
        if not isinstance(record.get(key), str):
            raise Invalid(key, "must be a transcript string '\\n\\nHuman: …\\n\\nAssistant: …'")
    chosen, rejected = record["chosen"], record["rejected"]
    ours, theirs = _turns(chosen), _turns(rejected)
    shared = 0
    while shared < min(len(ours), len(theirs)) and ours[shared] == theirs[shared]:
        shared += 1
    while shared and ours[shared - 1][0] != "Human":
        shared -= 1
    if not shared:
        raise Invalid("chosen", "and rejected share no Human turn to use as the prompt")
    # An empty turn carries nothing, and a prompt never holds an empty message: it is left out.
    prompt = [{"role": HH_ROLE[role], "content": text} for role, text in ours[:shared] if text.strip()]
    prefix = "".join(f"\n\n{role}: {text}" for role, text in ours[:shared]) + ASSISTANT_CUE
    replies = []
    for key, transcript in (("chosen", chosen), ("rejected", rejected)):
        if not transcript.startswith(prefix):
            raise Invalid(key, "has no Assistant reply after the shared prompt")
        replies.append(reply_text(key, transcript[len(prefix) :]))
    return PreferenceRow(number, validate_messages(prompt), replies[0], replies[1])
