"""Migrations match the models, and go up, down and up again on a database that holds rows."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import func, inspect, select, text

from app import migrate
from app.all_models import metadata
from app.auth.models import User
from app.db import make_engine, make_sessionmaker


def test_no_drift_between_models_and_migrations(engine):
    with engine.connect() as conn:
        context = MigrationContext.configure(conn, opts={"compare_type": True, "compare_server_default": True})
        assert compare_metadata(context, metadata) == []


def test_upgrade_downgrade_upgrade_with_rows(scratch_db_url):
    engine = make_engine(scratch_db_url)
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
