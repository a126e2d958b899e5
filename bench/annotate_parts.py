"""Where the annotation path's CPU goes: one judgement (next + submit) and its parts, one at a time.

``bench/annotate_load.py`` measures the server under load through HTTP; this splits the figure, in one
process with no HTTP server and no concurrency, on a seeded PostgreSQL database (``--pairs`` pending):

* a judgement through the ASGI app (routing, middleware, the one-hop thread trip, sign-in, statements);
* the same two requests' services called directly (two sessions, two token sign-ins, next, submit);
* a session with one trivial statement (checkout, BEGIN, statement, end), and with three;
* one statement executed three ways: as an ORM select (sign-in's), as a Core select of the same columns,
  and through the driver's cursor (psycopg, prepared) — the cost of each layer above the wire.

CPU is this process's (``time.process_time``: user + system, so the socket calls count), per operation,
after a warm-up. PostgreSQL must accept ``--pg`` (trust auth). The last line is one JSON object.

    .venv/bin/python bench/annotate_parts.py [--n 1000] [--pairs 20000]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # runnable without installing

from bench import annotate_load as load

LABELS = load.LABELS


def cpu_ms(operation: Callable[[], object], n: int, warmup: int = 50) -> float:
    """Milliseconds of this process's CPU per call of ``operation``."""
    for _ in range(warmup):
        operation()
    start = time.process_time()
    for _ in range(n):
        operation()
    return round(1000 * (time.process_time() - start) / n, 3)


def asgi_call(app, method: str, path: str, token: str, body: dict | None = None) -> tuple[int, bytes]:
    """One request through the ASGI app, as uvicorn would pass it, without a socket."""
    raw = json.dumps(body).encode() if body is not None else b""
    headers = [(b"host", b"bench"), (b"authorization", f"Bearer {token}".encode())]
    if body is not None:
        headers += [(b"content-type", b"application/json"), (b"content-length", str(len(raw)).encode())]
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": method,
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "headers": headers,
        "scheme": "http",
        "server": ("127.0.0.1", 8000),
        "client": ("127.0.0.1", 50000),
        "root_path": "",
        "state": {},
    }
    messages = [{"type": "http.request", "body": raw, "more_body": False}]
    out: dict = {"body": b""}

    async def receive() -> dict:
        return messages.pop() if messages else {"type": "http.disconnect"}

    async def send(message: dict) -> None:
        if message["type"] == "http.response.start":
            out["status"] = message["status"]
        elif message["type"] == "http.response.body":
            out["body"] += message.get("body", b"")

    asyncio.get_event_loop().run_until_complete(app(scope, receive, send))
    return out["status"], out["body"]


def measure(database_url: str, tokens: list[str], n: int) -> dict:
    from sqlalchemy import bindparam, select, text

    from app.annotation import assignment, submission
    from app.annotation.schemas import JudgementIn
    from app.auth import service as auth_service
    from app.auth.models import ApiToken, User
    from app.auth.secrets_util import token_hash
    from app.config import Settings
    from app.main import create_app

    settings = Settings(database_url=database_url, data_dir=Path(tempfile.mkdtemp(prefix="rlhf-parts-")))
    app = create_app(settings)
    sessions = app.state.sessionmaker
    asyncio.set_event_loop(asyncio.new_event_loop())

    def judge_asgi() -> None:
        status, body = asgi_call(app, "GET", "/api/v1/annotation/next", tokens[0])
        assert status == 200, (status, body)
        verdict = {"assignment_id": json.loads(body)["assignment_id"], "choice": "A", "strength": 2, "labels": LABELS}
        status, body = asgi_call(app, "POST", "/api/v1/annotation/judgements", tokens[0], verdict)
        assert status == 201, (status, body)

    def judge_services() -> None:
        with sessions() as db:
            offer = assignment.next_offer(db, settings, user=auth_service.token_user(db, tokens[1]))
        verdict = JudgementIn(assignment_id=offer.assignment_id, choice="A", strength=2, labels=LABELS)
        with sessions() as db:
            submission.submit(db, user=auth_service.token_user(db, tokens[1]), body=verdict)

    def session_with(statements: int) -> Callable[[], None]:
        def run() -> None:
            with sessions() as db:
                connection = db.connection()
                for _ in range(statements):
                    connection.execute(text("SELECT 1")).first()

        return run

    tokens_table, users_table = ApiToken.__table__, User.__table__
    where = (tokens_table.c.token_hash == bindparam("h"), tokens_table.c.revoked_at.is_(None))
    orm = select(User, ApiToken.id, ApiToken.last_used_at).join(ApiToken, ApiToken.user_id == User.id)
    core = select(users_table.c.id, users_table.c.role, tokens_table.c.id, tokens_table.c.last_used_at).join(
        tokens_table, tokens_table.c.user_id == users_table.c.id
    )
    orm, core = orm.where(*where, User.is_active.is_(True)), core.where(*where, users_table.c.is_active.is_(True))
    values = {"h": token_hash(tokens[2])}
    figures = {"judgement_asgi_ms": cpu_ms(judge_asgi, n), "judgement_services_ms": cpu_ms(judge_services, n)}
    figures["session_1_statement_ms"] = cpu_ms(session_with(1), n)
    figures["session_3_statements_ms"] = cpu_ms(session_with(3), n)
    with sessions() as db:
        connection = db.connection()
        cursor = connection.connection.dbapi_connection.cursor()
        sql = str(core.compile(dialect=connection.dialect))
        figures["statement_orm_ms"] = cpu_ms(lambda: db.execute(orm, values).first(), 3 * n)
        figures["statement_core_ms"] = cpu_ms(lambda: connection.execute(core, values).first(), 3 * n)
        figures["statement_driver_ms"] = cpu_ms(
            lambda: (cursor.execute(sql, values, prepare=True), cursor.fetchone()), 3 * n
        )
    app.state.sessionmaker.kw["bind"].dispose()
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, default=1000, help="operations per figure (statements: three times as many)")
    parser.add_argument("--pairs", type=int, default=20_000, help="pending pairs to seed")
    parser.add_argument("--pg", default=os.environ.get("RLHF_BENCH_PG", "postgresql://postgres@127.0.0.1:5432/test"))
    args = parser.parse_args()
    database_url = load._create_database(args.pg)
    try:
        tokens = load._seed(database_url, 3, pairs=args.pairs)
        load_average = [round(v, 2) for v in os.getloadavg()]
        figures = measure(database_url, tokens, args.n)
    finally:
        load._drop_database(args.pg, database_url)
    for name, value in figures.items():
        print(f"{name:>26}: {value:.3f} ms CPU")
    print(json.dumps({"load_average_before": load_average, "n": args.n, "pairs": args.pairs, **figures}))


if __name__ == "__main__":
    main()
