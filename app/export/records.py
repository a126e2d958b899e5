"""Turning exported rows into the records each format writes.

The formats are what the ecosystem reads: TRL's preference datasets (standard and
conversational), Anthropic's HH-RLHF transcripts, chat-style SFT data, and flat tables. The HH
transcript is rendered here and parsed back by ``app.importing.parsers``; the two are inverses
on what this app stores, which the round-trip test pins.
"""

from __future__ import annotations

import json
import unicodedata
from collections.abc import Sequence
from typing import Any

from app.export.elo import ResponseElo
from app.export.filters import ExportFormat
from app.export.query import JudgedRow

HH_ROLES = {"user": "Human", "assistant": "Assistant", "system": "System"}
# A spreadsheet runs a cell starting with one of these as a formula (CSV injection): such a cell
# gets a leading apostrophe, which spreadsheets show as text and do not evaluate. Spreadsheets also
# skip leading whitespace and read full-width forms (＝ ＋ － ＠) as these, so both are looked through.
FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
TABLE_COLUMNS = (
    "pair_id",
    "judgement_ids",
    "prompt_set_id",
    "prompt",
    "response_a",
    "response_b",
    "cut_off_a",
    "cut_off_b",
    "choice",
    "chosen",
    "rejected",
    "strength",
    "annotator",
    "seconds",
    "created_at",
    "policy_version_a",
    "policy_version_b",
    "judgements",
    "agreement",
    "elo_a",
    "elo_b",
    "elo_reward_a",
    "elo_reward_b",
)


def transcript(messages: Sequence[dict[str, str]]) -> str:
    """'\\n\\nHuman: …\\n\\nAssistant: …', the HH-RLHF rendering of a conversation."""
    return "".join(f"\n\n{HH_ROLES.get(m['role'], 'Human')}: {m['content']}" for m in messages)


def prompt_text(messages: Sequence[dict[str, str]]) -> str:
    """A prompt as one string: the question itself when it is a single user turn, else the
    transcript of the conversation so far ending with the assistant's cue, so the context survives."""
    if len(messages) == 1 and messages[0]["role"] == "user":
        return messages[0]["content"]
    return transcript(messages) + "\n\nAssistant:"


def _reply(text: str) -> list[dict[str, str]]:
    return [{"role": "assistant", "content": text}]


def preference_record(fmt: ExportFormat, row: JudgedRow) -> dict[str, Any]:
    """The chosen/rejected record of one verdict (the row's choice is a or b)."""
    chosen, rejected = row.chosen, row.rejected
    assert chosen is not None and rejected is not None, "ties and both-bad are filtered out before this"
    if fmt is ExportFormat.trl_conversational:
        return {"prompt": row.messages, "chosen": _reply(chosen), "rejected": _reply(rejected)}
    if fmt is ExportFormat.hh:
        context = transcript(row.messages) + "\n\nAssistant: "
        return {"chosen": context + chosen, "rejected": context + rejected}
    return {"prompt": prompt_text(row.messages), "chosen": chosen, "rejected": rejected}


def _rounded(value: float | None) -> float | None:
    return None if value is None else round(value, 6)


def table_record(row: JudgedRow, elo: ResponseElo) -> dict[str, Any]:
    """Every column of a verdict, for CSV and Parquet (typed; CSV stringifies); ``elo`` rates both answers
    among their prompt's (``export.elo``)."""
    (elo_a, reward_a), (elo_b, reward_b) = elo.of(row.response_a_id), elo.of(row.response_b_id)
    return {
        "pair_id": row.pair_id,
        "judgement_ids": " ".join(str(i) for i in row.judgement_ids),
        "prompt_set_id": row.prompt_set_id,
        "prompt": prompt_text(row.messages),
        "response_a": row.response_a,
        "response_b": row.response_b,
        "cut_off_a": row.cut_off_a,
        "cut_off_b": row.cut_off_b,
        "choice": row.choice,
        "chosen": row.chosen,
        "rejected": row.rejected,
        "strength": row.strength,
        "annotator": row.annotator,
        "seconds": row.seconds,
        "created_at": row.created_at.isoformat(),
        "policy_version_a": row.policy_a,
        "policy_version_b": row.policy_b,
        "judgements": row.judgements,
        "agreement": round(row.agreement, 6),
        "elo_a": _rounded(elo_a),
        "elo_b": _rounded(elo_b),
        "elo_reward_a": _rounded(reward_a),
        "elo_reward_b": _rounded(reward_b),
    }


def sft_record(row: Any) -> dict[str, Any]:
    """A demonstration as a chat example: the prompt's messages, then the written answer."""
    return {
        "messages": [*row.messages, *_reply(row.text)],
        "kind": getattr(row.kind, "value", row.kind),
        "annotator": row.username,
    }


def label_record(row: Any) -> dict[str, Any]:
    return {
        "prompt": prompt_text(row.messages),
        "response": row.text,
        "quality": int(bool(row.quality)),
        "safety": int(bool(row.safety)),
        "annotator": row.username,
    }


def json_line(record: dict[str, Any]) -> str:
    """One JSONL line; non-ASCII kept as is (UTF-8), no NaN (not JSON)."""
    return json.dumps(record, ensure_ascii=False, allow_nan=False) + "\n"


def csv_cell(value: Any) -> str:
    """A CSV cell that a spreadsheet shows as text and never evaluates."""
    if value is None:
        return ""
    text = str(value)
    return "'" + text if _looks_like_formula(text) else text


def _looks_like_formula(text: str) -> bool:
    if text.startswith(FORMULA_START):
        return True
    stripped = text.lstrip()  # spaces, newlines, no-break and ideographic spaces
    return bool(stripped) and unicodedata.normalize("NFKC", stripped[0]).startswith(FORMULA_START)
