"""Alembic environment: runs on a connection handed in by ``app.migrate`` (tests, the CLI,
``rlhf serve``) or, from the plain ``alembic`` command, on ``RLHF_DATABASE_URL``."""

from __future__ import annotations

from alembic import context
from sqlalchemy import Connection

from app.all_models import metadata
from app.config import Settings
from app.db import make_engine

config = context.config


def _configure(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=metadata,
        render_as_batch=connection.dialect.name == "sqlite",  # SQLite alters tables by copying them
        compare_type=True,
        compare_server_default=True,
    )
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:
        _configure(connection)
        return
    engine = make_engine(Settings().resolved_database_url)
    with engine.connect() as conn:
        _configure(conn)
    engine.dispose()


if context.is_offline_mode():
    raise SystemExit("offline (--sql) migrations are not supported; run against a database")
run_migrations_online()
