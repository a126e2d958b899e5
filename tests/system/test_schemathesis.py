"""Issue 18: schemathesis over the JSON API of a real server, as an annotator, a researcher and an admin.

``rlhf serve`` (no worker: a queued training job stays queued) runs on the test's own database, SQLite
or PostgreSQL, and schemathesis generates requests from ``/api/v1/openapi.json``: valid ones, ones that
break the schema (a string for a number, a missing field, 2**70 for an id), and sequences that follow one
answer's ids into the next request. Every answer is checked: never a 5xx (``not_a_server_error``), a
4xx for every request that breaks the schema (``negative_data_rejection``), the body, content type and
status code the schema documents (a problem body for any 4xx: ``app.openapi``).

The example count per operation (``RLHF_FUZZ_EXAMPLES``, default 20) bounds the run to a few minutes on
two cores for both backends; the seed (``RLHF_FUZZ_SEED``) makes a failure reproducible. The hooks in
``schemathesis_hooks`` keep the admin from revoking its own token or resetting the fuzzer's accounts.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import httpx

from app.auth import service as auth_service
from app.db import make_engine, make_sessionmaker
from app.users import service as users
from tests.server import running_server

HOOKS = Path(__file__).resolve().with_name("schemathesis_hooks.py")
EXAMPLES = int(os.environ.get("RLHF_FUZZ_EXAMPLES", "20"))
SEED = os.environ.get("RLHF_FUZZ_SEED", "18")
CHECKS = ",".join(
    [
        "not_a_server_error",
        "negative_data_rejection",
        "response_schema_conformance",
        "content_type_conformance",
        "status_code_conformance",
    ]
)
ROLES = ("annotator", "researcher", "admin")  # the admin last: what it changes cannot hurt the others' runs


def _accounts(database_url: str) -> tuple[dict[str, str], dict[str, list[int]]]:
    """One account and API token per role, written straight into the server's database: (tokens, their ids)."""
    engine = make_engine(database_url)
    try:
        with make_sessionmaker(engine)() as db:
            tokens, protected = {}, {"users": [], "tokens": []}
            for role in ROLES:
                user = users.create_user(db, username=f"fuzz-{role}", password="fuzz-password-1", role=role)
                token, raw = auth_service.create_token(db, user=user, name="schemathesis")
                tokens[role] = raw
                protected["users"].append(user.id)
                protected["tokens"].append(token.id)
            db.commit()
    finally:
        engine.dispose()
    return tokens, protected


def _fuzz(url: str, token: str, protected: dict[str, list[int]], report: Path) -> tuple[dict, str]:
    command = [
        *(sys.executable, "-m", "schemathesis.cli", "--no-color", "run", f"{url}/api/v1/openapi.json"),
        *("--header", f"Authorization: Bearer {token}"),
        *("--include-path-regex", r"^/(api/|healthz$)"),
        *("--checks", CHECKS),
        *("--mode", "all", "--max-examples", str(EXAMPLES), "--seed", SEED, "--workers", "1"),
        *("--generation-database", "none", "--request-timeout", "30"),
        *("--report", "json", "--report-json-path", str(report)),
    ]
    env = {
        **os.environ,
        "SCHEMATHESIS_HOOKS": str(HOOKS),  # a file: it runs in the test's folder, leaving nothing in the repo
        "FUZZ_PROTECTED": json.dumps(protected),
    }
    run = subprocess.run(command, cwd=report.parent, env=env, capture_output=True, text=True, timeout=600)
    output = run.stdout + run.stderr
    assert report.is_file(), output[-6000:]
    return json.loads(report.read_text()), output


def test_schemathesis_finds_no_5xx_no_accepted_invalid_input_and_no_schema_mismatch(
    tmp_path, scratch_db_url, backend, capsys
):
    env = {"RLHF_DATABASE_URL": scratch_db_url}
    with running_server(tmp_path / "var", extra_env=env, args=("--no-worker", "--log-level", "warning")) as server:
        tokens, protected = _accounts(scratch_db_url)
        results = {}
        for role in ROLES:
            summary, output = _fuzz(server.url, tokens[role], protected, tmp_path / f"{role}.json")
            results[role] = summary["test_cases"]["generated"]
            assert summary["exit_code"] == 0 and not summary["failures"] and not summary["errors"], (
                f"{role} on {backend}:\n{output[-12000:]}"
            )
            assert summary["operations"]["tested"] >= 30, output[-3000:]
        for role, raw in tokens.items():  # the accounts survived the run, so every case was sent signed in
            me = httpx.get(f"{server.url}/api/v1/me", headers={"Authorization": f"Bearer {raw}"}, timeout=30)
            assert me.status_code == 200 and me.json()["role"] == role and me.json()["is_active"], me.text
        server_log = "".join(server.output)
    assert "unhandled error" not in server_log, server_log[-6000:]
    with capsys.disabled():
        total = sum(results.values())
        print(f"\nschemathesis on {backend}: {total} cases ({', '.join(f'{r} {n}' for r, n in results.items())})")
    assert all(n > 100 for n in results.values()), results
