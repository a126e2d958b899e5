"""``rlhf import-prompts``: the report on success; the bad lines, exit status 2 and nothing written otherwise."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from sqlalchemy import func, select

from app.config import Settings
from app.db import make_engine, make_sessionmaker
from app.prompts.models import Prompt, PromptSet
from tests.prompts.util import jsonl


def _rlhf(tmp_path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "RLHF_DATA_DIR": str(tmp_path / "var")}
    env.pop("RLHF_DATABASE_URL", None)
    return subprocess.run(
        [sys.executable, "-m", "app.cli", *args], env=env, capture_output=True, text=True, timeout=120
    )


def _counts(tmp_path) -> tuple[int, int]:
    """(prompt sets, prompts) in the data folder's database."""
    engine = make_engine(Settings(data_dir=tmp_path / "var").resolved_database_url)
    with make_sessionmaker(engine)() as db:
        counts = (
            db.scalar(select(func.count()).select_from(PromptSet)),
            db.scalar(select(func.count()).select_from(Prompt)),
        )
    engine.dispose()
    return counts


@pytest.fixture(scope="module")
def migrated(tmp_path_factory):
    """One migrated data folder for the module (each ``rlhf`` call is a new Python process)."""
    tmp_path = tmp_path_factory.mktemp("cli")
    assert _rlhf(tmp_path, "migrate").returncode == 0
    return tmp_path


def test_import_creates_the_set_and_reports(migrated):
    before = _counts(migrated)
    good = migrated / "prompts.jsonl"
    good.write_bytes(jsonl({"prompt": "One?"}, {"messages": [{"role": "user", "content": "Two?"}]}, {"prompt": "One?"}))
    done = _rlhf(migrated, "import-prompts", str(good), "--set", "cli set", "--create")
    assert done.returncode == 0, done.stderr
    assert "imported 2 prompt(s); skipped 1 duplicate(s) of 3 read into prompt set 'cli set'" in done.stdout
    csv = migrated / "more.csv"
    csv.write_text("prompt,tags\nThree?,cli\nOne?,\n", encoding="utf-8")
    again = _rlhf(migrated, "import-prompts", str(csv), "--set", "cli set")
    assert again.returncode == 0 and "imported 1 prompt(s); skipped 1 duplicate(s)" in again.stdout
    assert _counts(migrated) == (before[0] + 1, before[1] + 3)


def test_bad_lines_exit_2_and_write_nothing_not_even_the_set(migrated):
    before = _counts(migrated)
    bad = migrated / "bad.jsonl"
    bad.write_bytes(
        jsonl(
            {"prompt": "fine"},
            {"prompt": ""},
            {"messages": [{"role": "user", "content": "a"}, {"role": "bot", "content": "b"}]},
        )
    )
    done = _rlhf(migrated, "import-prompts", str(bad), "--set", "new", "--create")
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert "line 2: prompt: must not be empty" in done.stderr
    assert "line 3: messages[1].role: must be one of system, user, assistant" in done.stderr
    assert "2 bad line(s)" in done.stderr and "nothing imported" in done.stderr
    assert _counts(migrated) == before


@pytest.mark.parametrize(
    ("name", "content", "args", "needle"),
    [
        ("p.jsonl", b'{"prompt": "x"}\n', ["--set", "missing"], "no prompt set named 'missing'; pass --create"),
        ("p.csv", b"question\nWhy?\n", ["--set", "s", "--create"], 'has no "prompt" column'),
        ("p.jsonl", b'{"prompt": "caf\xe9"}\n', ["--set", "s", "--create"], "line 1 is not UTF-8"),
        ("p.txt", b"hello\n", ["--set", "s", "--create"], "cannot tell the format"),
    ],
)
def test_input_errors_are_one_clear_line(migrated, name, content, args, needle):
    before = _counts(migrated)
    path = migrated / name
    path.write_bytes(content)
    done = _rlhf(migrated, "import-prompts", str(path), *args)
    assert done.returncode == 2 and needle in done.stderr and "Traceback" not in done.stderr
    assert _counts(migrated) == before


def test_missing_file(migrated):
    done = _rlhf(migrated, "import-prompts", str(migrated / "nope.jsonl"), "--set", "s", "--create")
    assert done.returncode == 2 and "no such file" in done.stderr
