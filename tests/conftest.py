"""Test fixtures: a migrated database on SQLite and on PostgreSQL, each test rolled back.

Every test that takes ``db`` (or anything built on it) runs twice, once per backend. With
``CI=true`` an unreachable PostgreSQL fails the run instead of skipping it.
"""

from __future__ import annotations

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine, create_engine, text
from sqlalchemy.orm import Session, sessionmaker

from app import migrate
from app.config import Settings
from app.db import make_engine

PG_ADMIN_URL = os.environ.get("RLHF_TEST_PG_URL", "postgresql://postgres@127.0.0.1:5432/test")
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")
BACKENDS = ("sqlite", "postgresql")


def _psycopg_url(url: str, database: str | None = None) -> str:
    base = url.replace("postgresql://", "postgresql+psycopg://", 1)
    if database is None:
        return base
    return base.rsplit("/", 1)[0] + "/" + database


def postgres_unavailable(reason: str) -> None:
    message = f"PostgreSQL at {PG_ADMIN_URL} is unreachable: {reason}"
    if IN_CI:
        pytest.fail(message + " (CI=true: a missing service is a failure)", pytrace=False)
    pytest.skip(message)


@pytest.fixture(scope="session")
def pg_database() -> Iterator[str]:
    """A fresh PostgreSQL database for this test run, dropped at the end."""
    name = f"rlhf_test_{uuid.uuid4().hex[:10]}"
    try:
        admin = create_engine(_psycopg_url(PG_ADMIN_URL), isolation_level="AUTOCOMMIT")
        with admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
    except Exception as exc:
        postgres_unavailable(str(exc).splitlines()[0])
    yield _psycopg_url(PG_ADMIN_URL, name)
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


def database_url(backend: str, request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> str:
    if backend == "postgresql":
        return request.getfixturevalue("pg_database")
    return f"sqlite:///{tmp_path_factory.mktemp('sqlite') / 'test.sqlite3'}"


@pytest.fixture(scope="session", params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    return request.param


@pytest.fixture(scope="session")
def db_url(backend: str, request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> str:
    return database_url(backend, request, tmp_path_factory)


@pytest.fixture()
def scratch_db_url(backend: str, tmp_path: Path) -> Iterator[str]:
    """An empty database of the test's own, for tests that commit, downgrade or run servers."""
    if backend == "sqlite":
        yield f"sqlite:///{tmp_path / 'scratch.sqlite3'}"
        return
    name = f"rlhf_scratch_{uuid.uuid4().hex[:8]}"
    try:
        admin = create_engine(_psycopg_url(PG_ADMIN_URL), isolation_level="AUTOCOMMIT")
        with admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
    except Exception as exc:
        postgres_unavailable(str(exc).splitlines()[0])
    yield _psycopg_url(PG_ADMIN_URL, name)
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


@pytest.fixture(scope="session")
def engine(db_url: str) -> Iterator[Engine]:
    """The migrated schema, once per backend per run."""
    eng = make_engine(db_url)
    migrate.upgrade(eng)
    yield eng
    eng.dispose()


@pytest.fixture()
def connection(engine: Engine) -> Iterator:
    conn = engine.connect()
    outer = conn.begin()
    yield conn
    outer.rollback()
    conn.close()


@pytest.fixture()
def session_factory(connection) -> sessionmaker[Session]:
    """Sessions whose commits are savepoints inside the test's transaction, which is rolled back."""
    return sessionmaker(bind=connection, join_transaction_mode="create_savepoint", expire_on_commit=False)


@pytest.fixture()
def db(session_factory: sessionmaker[Session]) -> Iterator[Session]:
    from tests import factories

    with session_factory() as session:
        factories.bind(session)
        yield session


@pytest.fixture()
def settings(tmp_path: Path) -> Settings:
    return Settings(data_dir=tmp_path / "var", secret_key="test-secret-key-" + uuid.uuid4().hex)


@pytest.fixture()
def app(settings: Settings, session_factory: sessionmaker[Session], db: Session):
    from app.main import create_app

    return create_app(settings, session_factory=session_factory)


@pytest.fixture()
def client(app) -> Iterator:
    from fastapi.testclient import TestClient

    with TestClient(app, base_url="http://testserver") as test_client:
        yield test_client


def pytest_terminal_summary(terminalreporter, exitstatus, config) -> None:
    """Show how many database tests ran on each backend, so the report proves both ran."""
    counts = {b: {"passed": 0, "failed": 0, "skipped": 0} for b in BACKENDS}
    for outcome in ("passed", "failed", "skipped", "error"):
        for report in terminalreporter.stats.get(outcome, []):
            if getattr(report, "when", "call") not in ("call", "setup") or (
                outcome == "passed" and report.when != "call"
            ):
                continue
            for b in BACKENDS:
                if f"[{b}" in report.nodeid or f"-{b}]" in report.nodeid or f"-{b}-" in report.nodeid:
                    counts[b]["failed" if outcome == "error" else outcome] += 1
    terminalreporter.write_sep("-", "database tests by backend")
    for b, c in counts.items():
        terminalreporter.write_line(f"{b:>10}: {c['passed']} passed, {c['failed']} failed, {c['skipped']} skipped")


# Browser fixtures (one Chromium per run, shared by every folder's browser tests).
from tests.browser_support import artifacts, browser, page  # noqa: E402, F401
