"""Reading JSONL and CSV files: every bad line named, file-level problems refused at once."""

from __future__ import annotations

import io

import pytest

from app.errors import Invalid
from app.prompts.importers import LineError, Row, TooLarge, detect_format, read_rows
from tests.prompts.util import jsonl


def _read(data: bytes, fmt: str, **kwargs) -> list:
    return list(read_rows(io.BytesIO(data), fmt, **kwargs))


def test_jsonl_rows_and_every_bad_line():
    data = jsonl(
        {"prompt": "What is RLHF?", "tags": ["intro"], "red_team": True, "id": 17},
        "",
        {"messages": [{"role": "system", "content": "Be terse."}, {"role": "user", "content": "Why?"}]},
        {"messages": [{"role": "user", "content": "a"}, {"role": "bot", "content": "b"}]},
        "{not json",
        "[1, 2]",
        {"prompt": "x", "messages": []},
        {"prompt": ""},
    )
    rows = _read(data, "jsonl")
    assert rows[0] == Row(1, [{"role": "user", "content": "What is RLHF?"}], ["intro"], True)
    assert isinstance(rows[1], Row) and rows[1].line == 3 and len(rows[1].messages) == 2
    errors = [str(r) for r in rows if isinstance(r, LineError)]
    assert errors == [
        "line 4: messages[1].role: must be one of system, user, assistant",
        "line 5: not valid JSON (Expecting property name enclosed in double quotes at column 2)",
        'line 6: record: must be a JSON object with "prompt" or "messages"',
        'line 7: record: needs exactly one of "prompt" (a string) or "messages" (a list)',
        "line 8: prompt: must not be empty",
    ]


def test_csv_rows_quoted_newlines_and_optional_columns():
    data = b'id,Prompt,tags,system,red_team\n1,"two\nlines",a,,\n2,,x,,\n\n3,hello,"t1,t2",Be kind.,yes\n'
    rows = _read(data, "csv")
    assert rows[0] == Row(2, [{"role": "user", "content": "two\nlines"}], ["a"], False)
    assert str(rows[1]) == "line 4: prompt: must not be empty"
    assert rows[2] == Row(
        6, [{"role": "system", "content": "Be kind."}, {"role": "user", "content": "hello"}], ["t1", "t2"], True
    )


def test_csv_without_prompt_column_names_it():
    with pytest.raises(Invalid, match="has no \"prompt\" column; found 'text', 'id'"):
        _read(b"text,id\nhello,1\n", "csv")
    with pytest.raises(Invalid, match="file: is empty"):
        _read(b"", "csv")


def test_non_utf8_is_refused_naming_the_line():
    with pytest.raises(Invalid, match="line 2 is not UTF-8"):
        _read(jsonl({"prompt": "ok"}) + '{"prompt": "caf\xe9"}\n'.encode("latin-1"), "jsonl")
    with pytest.raises(Invalid, match="line 1 is not UTF-8"):
        _read("prompt\ncaf\xe9\n".encode("utf-16"), "csv")


def test_utf8_bom_is_dropped():
    rows = _read(b"\xef\xbb\xbfprompt\nhello\n", "csv")
    assert rows == [Row(2, [{"role": "user", "content": "hello"}])]


def test_size_cap_counts_bytes_read():
    data = jsonl(*({"prompt": f"q{i}"} for i in range(100)))
    with pytest.raises(TooLarge) as caught:
        _read(data, "jsonl", max_bytes=200)
    assert caught.value.status_code == 413 and "larger than the 200 bytes limit" in caught.value.message
    assert len(_read(data, "jsonl", max_bytes=None)) == 100


def test_format_from_name_or_explicit():
    assert (
        detect_format("p.JSONL") == "jsonl" and detect_format("p.ndjson") == "jsonl" and detect_format("p.csv") == "csv"
    )
    assert detect_format("p.txt", "csv") == "csv"
    with pytest.raises(Invalid, match="cannot tell the format of 'p.txt'"):
        detect_format("p.txt")
    with pytest.raises(Invalid, match="format: must be one of jsonl, csv"):
        detect_format("p.csv", "xml")


def test_deeply_nested_json_is_a_bad_line_not_a_crash():
    rows = _read(jsonl({"prompt": "ok"}, "[" * 100_000), "jsonl")
    assert str(rows[1]) == "line 2: not valid JSON (nested too deeply)"
