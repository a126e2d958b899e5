"""Annotation load: C simulated annotators (next pair + submit, no think time) for D seconds.

Runs the shared closed-loop driver of ``../shared/peers/annotate_load.py`` (the same loop that
measures Label Studio) with an adapter for this server, so both are driven identically.

    python bench/annotate_load.py --concurrency 64 --duration 30            # starts rlhf serve on PostgreSQL
    python bench/annotate_load.py --url http://127.0.0.1:8000 --token-file tokens.txt -c 64 -d 30
    python bench/annotate_load.py ... --peer-url http://127.0.0.1:8089 --peer-project-id 2 --peer-tokens-file ls.txt

Without ``--url`` it creates a fresh PostgreSQL database, seeds pairs and one annotator (with an
API token) per simulated annotator, starts ``rlhf serve`` on it, and checks stored == submitted
against the database afterwards. With ``--peer-url`` it also drives a running Label Studio with
the same loop and prints the ratio. The last line of output is one JSON object.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import json
import os
import random
import secrets
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
PEER = ROOT.parent / "shared" / "peers" / "annotate_load.py"
LABELS = {"A": {"quality": "good", "safety": "safe"}, "B": {"quality": "bad", "safety": "safe"}}


def load_peer():
    if not PEER.exists():
        sys.exit(f"the shared load driver is missing: {PEER}")
    spec = importlib.util.spec_from_file_location("peer_annotate_load", PEER)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


peer = load_peer()


class RLHFLoopAdapter(peer.Adapter):
    """This server: GET /api/v1/annotation/next, POST /api/v1/annotation/judgements (Bearer tokens)."""

    name = "rlhf"

    def __init__(self, args: argparse.Namespace) -> None:
        super().__init__(args)
        self.tokens = args.rlhf_tokens
        self.rng = random.Random(7)
        self.database_url = args.rlhf_database_url

    def client_kwargs(self, annotator: int) -> dict:
        return {"headers": {"Authorization": f"Bearer {self.tokens[annotator % len(self.tokens)]}"}}

    async def fetch(self, client: httpx.AsyncClient, annotator: int) -> int:
        r = await client.get("/api/v1/annotation/next")
        if r.status_code == 204:
            raise peer.NoTaskAvailable("pool empty")
        return peer.check(r).json()["assignment_id"]

    async def submit(self, client: httpx.AsyncClient, annotator: int, assignment_id: int) -> None:
        body = {"assignment_id": assignment_id, "choice": self.rng.choice("AB"), "strength": 2, "labels": LABELS}
        peer.check(await client.post("/api/v1/annotation/judgements", json=body), ok=(201,))

    async def stored_count(self, client: httpx.AsyncClient) -> int | None:
        if not self.database_url:
            return None
        from sqlalchemy import create_engine, text

        engine = create_engine(self.database_url)
        with engine.connect() as conn:
            count = conn.scalar(text("SELECT count(*) FROM judgements"))
        engine.dispose()
        return int(count)


peer.ADAPTERS[RLHFLoopAdapter.name] = RLHFLoopAdapter

NOOP_PAIR = json.dumps(
    {
        "assignment_id": 1,
        "pair_id": 1,
        "messages": [{"role": "user", "content": "hi"}],
        "responses": {"A": "a", "B": "b"},
        "lease_expires_at": "2026-01-01T00:00:00+00:00",
    }
).encode()


async def noop_app(scope: dict, receive, send) -> None:
    """Answers next/submit instantly without doing anything: run under the same uvicorn as the real
    server, it measures what the load generator itself can drive on this machine (its ceiling)."""
    if scope["type"] != "http":
        return
    while (await receive()).get("more_body"):
        pass
    submit = scope["method"] == "POST"
    body = b'{"judgement_id": 1, "created": true}' if submit else NOOP_PAIR
    await send(
        {
            "type": "http.response.start",
            "status": 201 if submit else 200,
            "headers": [(b"content-type", b"application/json")],
        }
    )
    await send({"type": "http.response.body", "body": body})


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _create_database(admin_url: str) -> str:
    from sqlalchemy import create_engine, text

    name = f"rlhf_bench_{secrets.token_hex(4)}"
    engine = create_engine(admin_url.replace("postgresql://", "postgresql+psycopg://", 1), isolation_level="AUTOCOMMIT")
    with engine.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    engine.dispose()
    return admin_url.rsplit("/", 1)[0].replace("postgresql://", "postgresql+psycopg://", 1) + "/" + name


def _seed(url: str, annotators: int, pairs: int) -> list[str]:
    """Bulk-insert prompts, responses, pairs, users and tokens (core inserts: seconds, not minutes)."""
    sys.path.insert(0, str(ROOT))
    from sqlalchemy import insert, text

    import app.all_models  # noqa: F401
    from app import migrate
    from app.auth.models import ApiToken, User
    from app.auth.passwords import hash_password
    from app.auth.secrets_util import new_token, token_hash
    from app.db import make_engine
    from app.pool.models import Pair, Response
    from app.prompts.models import Prompt, PromptSet

    engine = make_engine(url)
    migrate.upgrade(engine)
    with engine.begin() as conn:
        set_id = conn.execute(
            insert(PromptSet).values(name="bench", description="", status="active").returning(PromptSet.id)
        ).scalar_one()
        prompts = [
            {
                "prompt_set_id": set_id,
                "messages": [{"role": "user", "content": f"bench prompt {i}"}],
                "content_hash": f"{i:064d}",
                "source": "written",
                "tags": [],
                "red_team": False,
                "retired": False,
            }
            for i in range(pairs)
        ]
        prompt_ids = conn.execute(insert(Prompt).returning(Prompt.id), prompts).scalars().all()
        responses = [
            {
                "prompt_id": pid,
                "text": f"answer {side} to {pid}",
                "source": "bench",
                "generation_params": {},
                "token_count": 4,
            }
            for pid in prompt_ids
            for side in "ab"
        ]
        response_ids = conn.execute(insert(Response).returning(Response.id), responses).scalars().all()
        conn.execute(
            insert(Pair),
            [
                {
                    "prompt_id": pid,
                    "response_a_id": response_ids[2 * i],
                    "response_b_id": response_ids[2 * i + 1],
                    "judgements_needed": 1,
                    "judgement_count": 0,
                    "status": "pending",
                    "cross_version": False,
                }
                for i, pid in enumerate(prompt_ids)
            ],
        )
        password = hash_password(secrets.token_urlsafe(16))
        tokens = []
        for i in range(annotators):
            uid = conn.execute(
                insert(User)
                .values(username=f"bench{i}", password_hash=password, role="annotator", is_active=True)
                .returning(User.id)
            ).scalar_one()
            raw = new_token("rlhf_")
            conn.execute(
                insert(ApiToken).values(user_id=uid, name="bench", token_hash=token_hash(raw), prefix=raw[:11])
            )
            tokens.append(raw)
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.execute(text("ANALYZE"))  # fresh planner statistics after a bulk load, as after any restore
    engine.dispose()
    return tokens


def _start_server(url: str, workers: int) -> tuple[subprocess.Popen, str]:
    env = {**os.environ, "RLHF_DATABASE_URL": url, "RLHF_DATA_DIR": tempfile.mkdtemp(prefix="rlhf-bench-")}
    return _start(
        ["-m", "app.cli", "serve", "--no-worker", "--workers", str(workers), "--log-level", "warning"], env, "/healthz"
    )


def _start_noop_server() -> tuple[subprocess.Popen, str]:
    args = [
        "-m",
        "uvicorn",
        "--app-dir",
        str(ROOT / "bench"),
        "annotate_load:noop_app",
        "--log-level",
        "warning",
        "--no-access-log",
    ]
    return _start(args, dict(os.environ), "/api/v1/annotation/next")


def _start(args: list[str], env: dict[str, str], probe: str) -> tuple[subprocess.Popen, str]:
    port = _free_port()
    process = subprocess.Popen(
        [sys.executable, *args, "--port", str(port)],
        env=env,
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    base = f"http://127.0.0.1:{port}"
    for _ in range(300):
        try:
            if httpx.get(base + probe, timeout=1).status_code == 200:
                return process, base
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    process.kill()
    sys.exit(f"{' '.join(args[:3])} did not start")


def _process_tree(pid: int) -> list[int]:
    """The server and its uvicorn worker processes, whose CPU the driver reports."""
    tree, grew = {pid}, True
    while grew:
        grew = False
        for entry in Path("/proc").iterdir():
            if entry.name.isdigit():
                try:
                    ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
                except (OSError, IndexError, ValueError):
                    continue
                if ppid in tree and int(entry.name) not in tree:
                    tree.add(int(entry.name))
                    grew = True
    return sorted(tree)


def _driver_args(base_url: str, target: str, args: argparse.Namespace, **extra: object) -> argparse.Namespace:
    values = {
        "target": target,
        "base_url": base_url,
        "concurrency": args.concurrency,
        "duration": args.duration,
        "timeout": 60.0,
        "no_keepalive": False,
        "think_time": 0.0,
        "error_backoff": 0.05,
        "login_wait": 1.0,
        "settle": 0.5,
        "watch_pid": [],
        "wait_quiet": 0.0,
        "quiet_threshold": 15.0,
        "label": target,
        "json_out": None,
        "rlhf_tokens": [],
        "rlhf_database_url": None,
        "project_id": None,
        "tokens_file": None,
        "token": None,
        "ls_mode": "next",
    }
    values.update(extra)
    return argparse.Namespace(**values)


def _summary(res: dict) -> dict:
    cpu = res["cpu"]
    return {
        "cpu_load_generator_pct": cpu["loadgen_core_pct"],
        "cpu_server_pct": round(sum(v or 0 for v in cpu["watched_core_pct"].values()), 1),
        "cpu_other_pct": cpu["other_core_pct"],
        "cpu_busy_pct_of_all_cores": cpu["system_busy_pct_of_all_cores"],
        "per_s": res["annotations_per_s"],
        "ok": res["ok_submits"],
        "errors": res["errors_total"],
        "fetch_p50_ms": res["fetch"]["p50_ms"],
        "fetch_p95_ms": res["fetch"]["p95_ms"],
        "fetch_p99_ms": res["fetch"]["p99_ms"],
        "submit_p50_ms": res["submit"]["p50_ms"],
        "submit_p95_ms": res["submit"]["p95_ms"],
        "submit_p99_ms": res["submit"]["p99_ms"],
        "stored_equals_submitted": res["stored_equals_submitted"],
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("-c", "--concurrency", type=int, default=64)
    ap.add_argument("-d", "--duration", type=float, default=30.0)
    ap.add_argument("--url", help="drive a running server instead of starting one")
    ap.add_argument("--token-file", help="with --url: one annotator API token per line")
    ap.add_argument("--workers", type=int, default=2, help="uvicorn processes when the bench starts the server")
    ap.add_argument("--pg", default=os.environ.get("RLHF_BENCH_PG", "postgresql://postgres@127.0.0.1:5432/test"))
    ap.add_argument("--peer-url", help="a running Label Studio to drive with the same loop")
    ap.add_argument("--peer-project-id", type=int)
    ap.add_argument("--peer-tokens-file")
    ap.add_argument("--no-calibrate", action="store_true", help="skip measuring the load generator's own ceiling")
    args = ap.parse_args()

    process = None
    database_url = None
    if args.url:
        if not args.token_file:
            sys.exit("--url needs --token-file")
        with open(args.token_file) as lines:
            tokens = [t.strip() for t in lines if t.strip()]
        base = args.url
    else:
        database_url = _create_database(args.pg)
        tokens = _seed(database_url, args.concurrency, pairs=max(5000, int(args.concurrency * args.duration * 10)))
        process, base = _start_server(database_url, args.workers)
    try:
        watch = _process_tree(process.pid) if process is not None else []
        ours = asyncio.run(
            peer.run(
                _driver_args(base, "rlhf", args, rlhf_tokens=tokens, rlhf_database_url=database_url, watch_pid=watch)
            )
        )
    finally:
        if process is not None:
            process.terminate()
            process.wait(timeout=30)
    report = {"concurrency": args.concurrency, "duration_s": args.duration, "ours": _summary(ours)}
    if not args.no_calibrate:
        # The same loop against an endpoint that does nothing: how far the generator itself goes here.
        noop, noop_base = _start_noop_server()
        try:
            ceiling = asyncio.run(
                peer.run(_driver_args(noop_base, "rlhf", args, rlhf_tokens=tokens, watch_pid=[noop.pid]))
            )
        finally:
            noop.terminate()
            noop.wait(timeout=30)
        report["load_generator_ceiling"] = _summary(ceiling)
        print(
            f"load generator alone (no-op server, same loop, C={args.concurrency}): "
            f"{ceiling['annotations_per_s']:.1f} judgements/s, "
            f"generator at {ceiling['cpu']['loadgen_core_pct']}% of a core"
        )
    print(
        f"rlhf-loop  C={args.concurrency}: {ours['annotations_per_s']:.1f} judgements/s, "
        f"submit p99 {ours['submit']['p99_ms']} ms, fetch p99 {ours['fetch']['p99_ms']} ms, "
        f"errors {ours['errors_total']}, "
        f"stored == submitted: {ours['stored_equals_submitted']}"
    )
    if args.peer_url:
        theirs = asyncio.run(
            peer.run(
                _driver_args(
                    args.peer_url,
                    "labelstudio",
                    args,
                    project_id=args.peer_project_id,
                    tokens_file=args.peer_tokens_file,
                )
            )
        )
        report["peer"] = _summary(theirs)
        report["ratio"] = round(ours["annotations_per_s"] / max(theirs["annotations_per_s"], 1e-9), 2)
        print(f"label-studio C={args.concurrency}: {theirs['annotations_per_s']:.1f}/s; ratio {report['ratio']}")
    report["ours_per_s"] = ours["annotations_per_s"]
    if "load_generator_ceiling" in report:
        report["ceiling_per_s"] = report["load_generator_ceiling"]["per_s"]
    print(json.dumps(report))


if __name__ == "__main__":
    main()
