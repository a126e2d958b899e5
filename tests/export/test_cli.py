"""``rlhf import`` and ``rlhf export``: a dataset in, the same pairs out, with a snapshot beside the file."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest


def _rlhf(data_dir: Path, db_url: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "RLHF_DATA_DIR": str(data_dir), "RLHF_DATABASE_URL": db_url}
    return subprocess.run(
        [sys.executable, "-m", "app.cli", *args], env=env, capture_output=True, text=True, timeout=300
    )


@pytest.fixture()
def cli(scratch_db_url: str, tmp_path: Path):
    data_dir = tmp_path / "var"
    assert _rlhf(data_dir, scratch_db_url, "migrate").returncode == 0
    return lambda *args: _rlhf(data_dir, scratch_db_url, *args)


def test_import_then_export_from_the_command_line(cli, tmp_path):
    records = [{"prompt": f"Question {i}?", "chosen": f"Right {i}.", "rejected": f"Wrong {i}."} for i in range(3)]
    source = tmp_path / "prefs.jsonl"
    source.write_text("".join(json.dumps(r) + "\n" for r in records))
    done = cli("import", str(source), "--format", "trl", "--name", "cli-test")
    assert done.returncode == 0, done.stderr
    assert "imported 3 judged pair(s) from external:cli-test" in done.stdout

    out = tmp_path / "out" / "prefs.jsonl"
    done = cli("export", "--format", "trl", "--out", str(out), "--annotators", "external:cli-test")
    assert done.returncode == 0, done.stderr
    assert [json.loads(line) for line in out.read_text().splitlines()] == records
    snapshot = json.loads((tmp_path / "out" / "prefs.jsonl.snapshot.json").read_text())
    assert snapshot["counts"]["rows"] == 3 and len(snapshot["sha256"]) == 64
    assert len((tmp_path / "out" / "prefs.jsonl.ids.txt").read_text().split()) == 3


def test_bad_input_exits_2_with_the_line_and_writes_nothing(cli, tmp_path):
    source = tmp_path / "bad.jsonl"
    source.write_text('{"prompt": "ok", "chosen": "a", "rejected": "b"}\n{"prompt": "x"}\n')
    done = cli("import", str(source), "--format", "trl", "--name", "bad")
    assert done.returncode == 2 and "line 2: chosen" in done.stderr and "nothing imported" in done.stderr
    done = cli("export", "--format", "trl", "--out", str(tmp_path / "x.jsonl"), "--min-agreement", "3")
    assert done.returncode == 2 and "min_agreement" in done.stderr
