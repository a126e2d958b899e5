"""Importing files into a set: the report, duplicates, and all-or-nothing on both backends."""

from __future__ import annotations

import io
import time

import pytest
from sqlalchemy import event, select

from app.errors import Invalid
from app.prompts import importing
from app.prompts.importers import TooLarge
from app.prompts.importing import ImportRejected, import_prompts
from app.prompts.models import Prompt, PromptSource
from tests.factories import PromptFactory, PromptSetFactory
from tests.prompts.util import jsonl, prompt_count


def _import(db, prompt_set, data: bytes, fmt: str = "jsonl", **kwargs):
    return import_prompts(db, set_id=prompt_set.id, stream=io.BytesIO(data), fmt=fmt, **kwargs)


def test_report_counts_new_and_duplicate_prompts(db):
    prompt_set = PromptSetFactory()
    PromptFactory(prompt_set=prompt_set, messages=[{"role": "user", "content": "Already here?"}])
    other = PromptSetFactory()
    PromptFactory(prompt_set=other, messages=[{"role": "user", "content": "In another set."}])
    data = jsonl(
        {"prompt": "Already here?"},
        {"prompt": "New one."},
        {"messages": [{"role": "user", "content": "New one."}]},  # the same conversation, written the other way
        {"prompt": "  New one.\r\n"},  # the same after trimming
        {"prompt": "In another set.", "tags": ["x"], "red_team": True},
    )
    report = _import(db, prompt_set, data)
    assert (report.read, report.imported, report.duplicates) == (5, 2, 3)
    assert prompt_count(db, prompt_set.id) == 3
    row = db.scalar(select(Prompt).where(Prompt.prompt_set_id == prompt_set.id, Prompt.red_team.is_(True)))
    assert row.messages == [{"role": "user", "content": "In another set."}] and row.tags == ["x"]
    assert row.source is PromptSource.imported
    again = _import(db, prompt_set, data)
    assert (again.imported, again.duplicates) == (0, 5)


def test_a_bad_line_is_named_and_nothing_is_imported(db):
    prompt_set = PromptSetFactory()
    PromptFactory(prompt_set=prompt_set)
    before = prompt_count(db)
    good = [{"prompt": f"Good {i}"} for i in range(5)]
    bad = {"messages": [{"role": "user", "content": "a"}, {"role": "bot", "content": "b"}]}
    with pytest.raises(ImportRejected) as caught:
        _import(db, prompt_set, jsonl(*good, {"prompt": "Six"}, bad, {"prompt": "after"}))
    assert caught.value.status_code == 422
    assert [str(e) for e in caught.value.errors] == ["line 7: messages[1].role: must be one of system, user, assistant"]
    assert "line 7: messages[1].role: must be one of system, user, assistant" in caught.value.message
    assert prompt_count(db) == before


def test_bad_lines_after_a_full_chunk_still_roll_back(db, monkeypatch):
    monkeypatch.setattr(importing, "CHUNK", 3)
    prompt_set = PromptSetFactory()
    records = [{"prompt": f"q{i}"} for i in range(10)] + ["oops"] + [{"prompt": ""}] * 150
    with pytest.raises(ImportRejected) as caught:
        _import(db, prompt_set, jsonl(*records))
    assert caught.value.total == 151 and len(caught.value.errors) == importing.MAX_LISTED
    assert "and 51 more" in caught.value.message
    assert prompt_count(db, prompt_set.id) == 0


def test_csv_import_and_missing_column(db):
    prompt_set = PromptSetFactory()
    report = _import(db, prompt_set, b'prompt,tags\nHello?,greeting\n"Multi\nline?",\nHello?,\n', "csv")
    assert (report.imported, report.duplicates) == (2, 1)
    before = prompt_count(db)
    with pytest.raises(Invalid, match='has no "prompt" column'):
        _import(db, prompt_set, b"question\nWhy?\n", "csv")
    assert prompt_count(db) == before


def test_non_utf8_file_writes_nothing(db):
    prompt_set = PromptSetFactory()
    with pytest.raises(Invalid, match="line 3 is not UTF-8"):
        _import(db, prompt_set, jsonl({"prompt": "a"}, {"prompt": "b"}) + b'{"prompt": "\xff"}\n')
    assert prompt_count(db, prompt_set.id) == 0


def test_oversize_file_is_413_and_writes_nothing(db):
    prompt_set = PromptSetFactory()
    with pytest.raises(TooLarge) as caught:
        _import(db, prompt_set, jsonl(*({"prompt": f"q{i}"} for i in range(100))), max_bytes=500)
    assert caught.value.status_code == 413
    assert prompt_count(db, prompt_set.id) == 0


def test_ten_thousand_prompts_in_one_transaction(db):
    prompt_set = PromptSetFactory()
    db.commit()
    data = jsonl(*({"prompt": f"Generated prompt number {i}: explain topic {i % 97}."} for i in range(10_000)))
    commits, inserts = [], []
    conn = db.connection()

    def count_insert(_conn, _cursor, statement, _params, _context, _many):
        if statement.lstrip().upper().startswith("INSERT INTO PROMPTS"):
            inserts.append(1)

    event.listen(
        db, "after_commit", lambda session: commits.append("savepoint" if session.in_nested_transaction() else "commit")
    )
    event.listen(conn, "before_cursor_execute", count_insert)
    try:
        started = time.perf_counter()
        report = _import(db, prompt_set, data)
        elapsed = time.perf_counter() - started
    finally:
        event.remove(conn, "before_cursor_execute", count_insert)
    print(f"\n10,000-prompt JSONL imported on {db.get_bind().dialect.name} in {elapsed:.2f} s")
    assert (report.imported, report.duplicates) == (10_000, 0)
    assert prompt_count(db, prompt_set.id) == 10_000
    assert commits.count("commit") == 1  # one transaction (its inserts inside one savepoint)
    assert len(inserts) <= 10_000 // importing.CHUNK  # bulk: one executemany per chunk, not one per row
