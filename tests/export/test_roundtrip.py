"""Round trips: an HH (or TRL) export imported back exports the very same pairs. (That the TRL exports
train TRL's own trainers is ``test_trl_trainers``.)"""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import select

from app.export.filters import parse_params
from app.export.service import export_to_folder
from app.importing.service import import_preferences
from app.prompts.models import PromptSet
from tests.export.data import annotators, judged_pair

CONVERSATIONS = [
    [{"role": "user", "content": "How do I boil an egg?"}],
    [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Capital of France?"}],
    [
        {"role": "user", "content": "Name a fruit."},
        {"role": "assistant", "content": "Apple."},
        {"role": "user", "content": "Another one?"},
    ],
    [{"role": "user", "content": 'Ünïcödé & <b>markup</b> "quotes"?'}],
]


def _seed(db) -> list:
    """A preference per conversation, and a tie on each (which no preference format writes); the pairs."""
    users = annotators(2)
    return [
        judged_pair(
            db,
            messages=messages,
            a=f"Good answer {i}.\n\nWith a second paragraph.",
            b=f"Bad answer {i}.",
            verdicts=[(users[0], "a" if i % 2 else "b"), (users[1], "tie")],
        )
        for i, messages in enumerate(CONVERSATIONS)
    ]


def _export(db, folder: Path, fmt: str, **filters: object) -> list[str]:
    result = export_to_folder(db, parse_params({"format": fmt, **filters}), folder)
    return (folder / result["file"]).read_text(encoding="utf-8").splitlines()


@pytest.mark.parametrize("fmt", ["hh", "trl", "trl_conversational"])
def test_export_import_export_gives_identical_pairs(db, tmp_path, fmt):
    _seed(db)
    first = _export(db, tmp_path / "first", fmt)
    assert len(first) == len(CONVERSATIONS)  # one preference each; the ties are not preferences
    source = {"hh": "hh", "trl": "trl", "trl_conversational": "trl"}[fmt]
    with (tmp_path / "first").glob("*.jsonl").__next__().open("rb") as stream:
        report = import_preferences(db, stream=stream, fmt=source, name="roundtrip", set_name="round trip")
    assert report.pairs == len(first)
    set_id = db.scalar(select(PromptSet.id).where(PromptSet.name == "round trip"))
    again = _export(db, tmp_path / "again", fmt, prompt_set_id=set_id)
    assert again == first
