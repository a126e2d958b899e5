"""Annotation load: C simulated annotators (next pair + submit, no think time) for D seconds.

Two drivers, one connection per annotator each: ``--driver python`` runs the shared closed-loop driver of
``../shared/peers/annotate_load.py`` (the same loop that measures Label Studio) with an adapter for this
server, so both are driven identically; ``--driver wrk`` runs the compiled ``wrk`` (Debian package ``wrk``)
with the flow ``../shared/peers/wrk/annotate.lua``, whose ceiling is far above the server's on the same
cores, so the figure is the server's and not the driver's.

    python bench/annotate_load.py -c 64 -d 30 --pairs 60000              # starts rlhf serve on PostgreSQL
    python bench/annotate_load.py -c 64 -d 30 --driver wrk
    python bench/annotate_load.py --url http://127.0.0.1:8000 --token-file tokens.txt -c 64 -d 30
    python bench/annotate_load.py ... --peer-url http://127.0.0.1:8089 --peer-project-id 2 --peer-tokens-file ls.txt

Without ``--url`` it creates a fresh PostgreSQL database, seeds ``--pairs`` pending pairs and one
annotator (with an API token) per simulated annotator, starts ``rlhf serve`` on it, and checks
stored == submitted against the database afterwards. It reports the CPU each judgement (next + submit)
costs the server's processes and the database's backends (the pids pg_stat_activity lists for the
bench database, read from /proc: PostgreSQL must run on this machine), and the load average before the
run. With ``--peer-url`` it also drives a running Label Studio with the same loop and prints the ratio.
The last line of output is one JSON object.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import json
import os
import random
import resource
import secrets
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

import httpx
from sqlalchemy.pool import NullPool

ROOT = Path(__file__).resolve().parents[1]
PEER = ROOT.parent / "shared" / "peers" / "annotate_load.py"
WRK_FLOW = ROOT.parent / "shared" / "peers" / "wrk" / "annotate.lua"
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
        return _stored_judgements(self.database_url)


peer.ADAPTERS[RLHFLoopAdapter.name] = RLHFLoopAdapter

NOOP_PAIR = json.dumps(
    {
        "assignment_id": 1,
        "pair_id": 1,
        "messages": [{"role": "user", "content": "hi"}],
        "responses": {"A": "a", "B": "b"},
        "lease_expires_at": "2026-01-01T00:00:00+00:00",
    },
    separators=(",", ":"),  # compact, as the server answers: the wrk flow reads "assignment_id":N
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


def _admin(admin_url: str, statement: str) -> None:
    from sqlalchemy import create_engine, text

    engine = create_engine(admin_url.replace("postgresql://", "postgresql+psycopg://", 1), isolation_level="AUTOCOMMIT")
    with engine.connect() as conn:
        conn.execute(text(statement))
    engine.dispose()


def _create_database(admin_url: str) -> str:
    name = f"rlhf_bench_{secrets.token_hex(4)}"
    _admin(admin_url, f'CREATE DATABASE "{name}"')
    return admin_url.rsplit("/", 1)[0].replace("postgresql://", "postgresql+psycopg://", 1) + "/" + name


def _drop_database(admin_url: str, database_url: str) -> None:
    """A seeded pool is tens of megabytes: a bench that runs again and again should not pile them up."""
    _admin(admin_url, f'DROP DATABASE IF EXISTS "{database_url.rsplit("/", 1)[1]}" WITH (FORCE)')


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
    """The server and its uvicorn worker processes, whose CPU the bench reports."""
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


def _database_backends(database_url: str) -> Callable[[], list[int]]:
    """A function listing the database's backends now (pooled connections come and go), its own excepted."""
    from sqlalchemy import create_engine, text

    engine = create_engine(database_url, poolclass=NullPool)
    query = text("SELECT pid FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()")

    def backends() -> list[int]:
        with engine.connect() as conn:
            return list(conn.scalars(query))

    return backends


class CpuMeter:
    """CPU seconds a changing set of processes uses between ``start`` and ``stop``.

    Sampled in a thread every ``interval`` seconds so that processes which appear during the run (a
    database backend for a new pooled connection) count from birth; one that exits between two samples
    loses at most an interval of its CPU. A process PostgreSQL runs on another machine is not in /proc:
    then ``stop`` returns None rather than a wrong zero."""

    def __init__(self, pids: Callable[[], list[int]], interval: float = 0.5) -> None:
        self.pids, self.interval = pids, interval
        self.first: dict[int, float] = {}
        self.last: dict[int, float] = {}
        self.done = threading.Event()
        self.thread = threading.Thread(target=self._loop, daemon=True)

    def _sample(self, *, at_start: bool) -> None:
        for pid in self.pids():
            cpu = peer.proc_cpu_seconds(pid)
            if cpu is not None:
                self.first.setdefault(pid, cpu if at_start else 0.0)
                self.last[pid] = cpu

    def _loop(self) -> None:
        while not self.done.wait(self.interval):
            self._sample(at_start=False)

    def start(self) -> CpuMeter:
        self._sample(at_start=True)
        self.thread.start()
        return self

    def stop(self) -> float | None:
        self.done.set()
        self.thread.join()
        self._sample(at_start=False)
        if not self.last:
            return None
        return sum(self.last[pid] - self.first[pid] for pid in self.last)


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
    """The python driver's result in the report's terms."""
    cpu = res["cpu"]
    return {
        "cpu_load_generator_pct": cpu["loadgen_core_pct"],
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


def _drive_python(base: str, tokens: list[str], args: argparse.Namespace, database_url: str | None) -> dict:
    res = asyncio.run(peer.run(_driver_args(base, "rlhf", args, rlhf_tokens=tokens, rlhf_database_url=database_url)))
    return _summary(res)


def _stored_judgements(database_url: str | None) -> int | None:
    if not database_url:
        return None
    from sqlalchemy import create_engine, text

    engine = create_engine(database_url, poolclass=NullPool)
    with engine.connect() as conn:
        count = conn.scalar(text("SELECT count(*) FROM judgements"))
    engine.dispose()
    return int(count)


def _drive_wrk(base: str, tokens: list[str], args: argparse.Namespace, database_url: str | None) -> dict:
    """wrk with one thread and one connection per annotator, each alternating next and submit (WRK_FLOW)."""
    if shutil.which("wrk") is None:
        sys.exit("--driver wrk needs wrk on the PATH (apt-get install -y wrk)")
    if not WRK_FLOW.exists():
        sys.exit(f"the shared wrk flow is missing: {WRK_FLOW}")
    if len(tokens) < args.concurrency:
        sys.exit(f"--driver wrk needs a token per annotator: {len(tokens)} for -c {args.concurrency}")
    stored_before = _stored_judgements(database_url)
    with tempfile.NamedTemporaryFile("w", suffix=".tokens") as token_file:
        token_file.write("\n".join(tokens[: args.concurrency]) + "\n")
        token_file.flush()
        c, seconds = str(args.concurrency), f"{max(1, round(args.duration))}s"
        command = ["wrk", "-t", c, "-c", c, "-d", seconds, "--timeout", "60s", "-s", str(WRK_FLOW), base]
        children0 = resource.getrusage(resource.RUSAGE_CHILDREN)
        done = subprocess.run(
            command, env={**os.environ, "TOKENS_FILE": token_file.name}, capture_output=True, text=True, check=True
        )
        children1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    res = json.loads([line for line in done.stdout.splitlines() if line.startswith("{")][-1])
    time.sleep(0.5)  # wrk stops at its deadline without waiting for the requests in flight: let them land
    stored_after = _stored_judgements(database_url)
    wrk_cpu = (children1.ru_utime - children0.ru_utime) + (children1.ru_stime - children0.ru_stime)
    stored = None if stored_before is None else stored_after - stored_before
    # Each connection has at most one submit in flight when wrk stops, stored but never counted by wrk.
    in_flight = None if stored is None else stored - res["judgements"]
    return {
        "cpu_load_generator_pct": round(100.0 * wrk_cpu / res["duration_s"], 1),
        "per_s": res["judgements_per_s"],
        "ok": res["judgements"],
        "errors": res["errors"],
        "empty": res["empty"],
        "request_p50_ms": res["p50_ms"],  # wrk's latency is over every request, next and submit alike
        "request_p99_ms": res["p99_ms"],
        "request_max_ms": res["max_ms"],
        "stored": stored,
        "stored_equals_submitted": None if in_flight is None else 0 <= in_flight <= args.concurrency,
    }


DRIVERS = {"python": _drive_python, "wrk": _drive_wrk}


def _measured(
    driver: str,
    base: str,
    tokens: list[str],
    args: argparse.Namespace,
    *,
    server_pid: int | None,
    database_url: str | None,
) -> dict:
    """One driver's run, with the CPU per judgement of the server's processes and of the database's backends."""
    server = CpuMeter(lambda: _process_tree(server_pid)).start() if server_pid else None
    database = CpuMeter(_database_backends(database_url)).start() if database_url else None
    result = DRIVERS[driver](base, tokens, args, database_url)
    server_s, database_s = (meter.stop() if meter else None for meter in (server, database))
    judgements = max(result["ok"], 1)
    per_judgement = {
        "server_cpu_ms_per_judgement": None if server_s is None else round(1000 * server_s / judgements, 2),
        "db_cpu_ms_per_judgement": None if database_s is None else round(1000 * database_s / judgements, 2),
    }
    return {"driver": driver, **per_judgement, **result}


def _p99(summary: dict) -> float | None:
    return summary.get("request_p99_ms") or max(summary.get("fetch_p99_ms") or 0, summary.get("submit_p99_ms") or 0)


def _calibrate(driver: str, tokens: list[str], args: argparse.Namespace) -> dict:
    """The same driver against an endpoint that does nothing: how far the generator itself goes here."""
    noop, noop_base = _start_noop_server()
    try:
        ceiling = _measured(driver, noop_base, tokens, args, server_pid=noop.pid, database_url=None)
    finally:
        noop.terminate()
        noop.wait(timeout=30)
    print(
        f"load generator alone ({driver}, no-op server, C={args.concurrency}): {ceiling['per_s']:.1f} judgements/s, "
        f"generator at {ceiling['cpu_load_generator_pct']}% of a core"
    )
    return ceiling


def _drive_peer(args: argparse.Namespace) -> dict:
    res = asyncio.run(
        peer.run(
            _driver_args(
                args.peer_url, "labelstudio", args, project_id=args.peer_project_id, tokens_file=args.peer_tokens_file
            )
        )
    )
    return _summary(res)


def _arguments() -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("-c", "--concurrency", type=int, default=64)
    ap.add_argument("-d", "--duration", type=float, default=30.0)
    ap.add_argument("--driver", choices=sorted(DRIVERS), default="python")
    ap.add_argument("--pairs", type=int, default=60_000, help="pending pairs to seed (the pool the queries face)")
    ap.add_argument("--url", help="drive a running server instead of starting one")
    ap.add_argument("--token-file", help="with --url: one annotator API token per line")
    ap.add_argument("--server-pid", type=int, help="with --url: the server's pid, to report its CPU")
    ap.add_argument("--database-url", help="with --url: its database, to report its CPU and check stored counts")
    ap.add_argument("--keep-db", action="store_true", help="keep the seeded database (to EXPLAIN on it)")
    ap.add_argument("--workers", type=int, default=2, help="uvicorn processes when the bench starts the server")
    ap.add_argument("--pg", default=os.environ.get("RLHF_BENCH_PG", "postgresql://postgres@127.0.0.1:5432/test"))
    ap.add_argument("--peer-url", help="a running Label Studio to drive with the same loop")
    ap.add_argument("--peer-project-id", type=int)
    ap.add_argument("--peer-tokens-file")
    ap.add_argument("--no-calibrate", action="store_true", help="skip measuring the load generator's own ceiling")
    return ap.parse_args()


def main() -> None:
    args = _arguments()
    process = None
    if args.url:
        if not args.token_file:
            sys.exit("--url needs --token-file")
        with open(args.token_file) as lines:
            tokens = [t.strip() for t in lines if t.strip()]
        base, server_pid = args.url, args.server_pid
        database_url = args.database_url and args.database_url.replace("postgresql://", "postgresql+psycopg://", 1)
    else:
        database_url = _create_database(args.pg)
        tokens = _seed(database_url, args.concurrency, pairs=args.pairs)
        process, base = _start_server(database_url, args.workers)
        server_pid = process.pid
    load_average = [round(v, 2) for v in os.getloadavg()]
    try:
        ours = _measured(args.driver, base, tokens, args, server_pid=server_pid, database_url=database_url)
    finally:
        if process is not None:
            process.terminate()
            process.wait(timeout=30)
            if not args.keep_db:
                _drop_database(args.pg, database_url)
    report = {
        "driver": args.driver,
        "concurrency": args.concurrency,
        "duration_s": args.duration,
        "pairs": None if args.url else args.pairs,
        "load_average_before": load_average,
        "ours": ours,
    }
    if not args.no_calibrate:
        report["load_generator_ceiling"] = _calibrate(args.driver, tokens, args)
    print(
        f"rlhf-loop  {args.driver} C={args.concurrency}: {ours['per_s']:.1f} judgements/s, p99 {_p99(ours)} ms, "
        f"server {ours['server_cpu_ms_per_judgement']} ms CPU/judgement, "
        f"database {ours['db_cpu_ms_per_judgement']} ms CPU/judgement, errors {ours['errors']}, "
        f"stored == submitted: {ours['stored_equals_submitted']}, load average before {load_average}"
    )
    if args.peer_url:
        theirs = _drive_peer(args)
        report["peer"] = theirs
        report["ratio"] = round(ours["per_s"] / max(theirs["per_s"], 1e-9), 2)
        print(f"label-studio C={args.concurrency}: {theirs['per_s']:.1f}/s; ratio {report['ratio']}")
    report["ours_per_s"] = ours["per_s"]
    if "load_generator_ceiling" in report:
        report["ceiling_per_s"] = report["load_generator_ceiling"]["per_s"]
    print(json.dumps(report))


if __name__ == "__main__":
    main()
