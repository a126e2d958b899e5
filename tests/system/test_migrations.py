"""Migrations match the models, and go up, down and up again on a database that holds rows."""

from __future__ import annotations

import uuid

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import create_engine, func, inspect, select, text

from app import migrate
from app.all_models import metadata
from app.auth.models import User
from app.db import make_engine, make_sessionmaker
from tests.conftest import PG_ADMIN_URL, _psycopg_url, postgres_unavailable


@pytest.fixture()
def scratch_url(backend, tmp_path):
    """An empty database of its own: downgrading must not disturb the shared test schema."""
    if backend == "sqlite":
        yield f"sqlite:///{tmp_path / 'scratch.sqlite3'}"
        return
    name = f"rlhf_scratch_{uuid.uuid4().hex[:8]}"
    try:
        admin = create_engine(_psycopg_url(PG_ADMIN_URL), isolation_level="AUTOCOMMIT")
        with admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
    except Exception as exc:  # noqa: BLE001
        postgres_unavailable(str(exc).splitlines()[0])
    yield _psycopg_url(PG_ADMIN_URL, name)
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


def test_no_drift_between_models_and_migrations(engine):
    with engine.connect() as conn:
        context = MigrationContext.configure(conn, opts={"compare_type": True, "compare_server_default": True})
        assert compare_metadata(context, metadata) == []


def test_upgrade_downgrade_upgrade_with_rows(scratch_url):
    engine = make_engine(scratch_url)
    migrate.upgrade(engine)
    with make_sessionmaker(engine)() as db:
        db.add(User(username="keeper", password_hash="x"))
        db.commit()
    migrate.downgrade(engine, "base")
    assert set(inspect(engine).get_table_names()) <= {"alembic_version"}
    migrate.upgrade(engine)
    with make_sessionmaker(engine)() as db:
        db.add(User(username="again", password_hash="x"))
        db.commit()
        assert db.scalar(select(func.count()).select_from(User)) == 1
    with engine.connect() as conn:
        assert conn.scalar(text("SELECT version_num FROM alembic_version")) == migrate.current_head()
    engine.dispose()
