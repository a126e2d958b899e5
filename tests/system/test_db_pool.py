"""The PostgreSQL pool hands out live connections without a ping per checkout: one whose backend went away
(a restart, or pg_terminate_backend) is replaced on checkout, and the caller never sees the error."""

from __future__ import annotations

import time

import pytest
from sqlalchemy import bindparam, select, text
from sqlalchemy.exc import DBAPIError

from app import migrate
from app.auth.models import User
from app.db import make_engine, make_sessionmaker
from app.driver_statement import DriverStatement

pytestmark = pytest.mark.parametrize("backend", ["postgresql"], indirect=True)


def _wait_gone(engine, pid: int) -> None:
    for _ in range(200):
        with engine.connect() as conn:
            if not conn.scalar(text(f"SELECT count(*) FROM pg_stat_activity WHERE pid = {pid}")):
                return
        time.sleep(0.05)
    raise AssertionError(f"backend {pid} did not end")


def test_a_pooled_connection_whose_backend_ended_is_replaced_on_checkout(backend, scratch_db_url):
    engine = make_engine(scratch_db_url, pool_size=1, max_overflow=0)
    admin = make_engine(scratch_db_url, pool_size=1, max_overflow=0)
    try:
        with engine.connect() as conn:
            ended = conn.scalar(text("SELECT pg_backend_pid()"))
        with admin.connect() as conn:
            assert conn.scalar(text(f"SELECT pg_terminate_backend({ended})"))
        _wait_gone(admin, ended)  # it has sent its FATAL message and closed the socket
        with engine.connect() as conn:
            assert conn.scalar(text("SELECT pg_backend_pid()")) != ended
        with engine.connect() as conn:  # and the fresh one stays in the pool
            assert conn.scalar(text("SELECT 1")) == 1
    finally:
        engine.dispose()
        admin.dispose()


def test_a_statement_on_the_driver_invalidates_a_dead_connection_as_sqlalchemy_would(backend, scratch_db_url):
    """app.driver_statement runs past SQLAlchemy's execution: its error handling must still invalidate the
    connection, or the pool would hand the dead one out again."""
    engine = make_engine(scratch_db_url, pool_size=1, max_overflow=0)
    admin = make_engine(scratch_db_url, pool_size=1, max_overflow=0)
    migrate.upgrade(engine)
    sessions = make_sessionmaker(engine)
    statement = DriverStatement(select(User.id).where(User.id == bindparam("user_id")))
    try:
        with sessions() as db:
            pid = db.scalar(text("SELECT pg_backend_pid()"))
            with admin.connect() as conn:
                assert conn.scalar(text(f"SELECT pg_terminate_backend({pid})"))
            _wait_gone(admin, pid)
            with pytest.raises(DBAPIError) as raised:
                statement.first(db.connection(), {"user_id": 1})
            assert raised.value.connection_invalidated
        with sessions() as db:
            assert db.scalar(text("SELECT pg_backend_pid()")) != pid
            assert statement.first(db.connection(), {"user_id": 1}) is None
    finally:
        engine.dispose()
        admin.dispose()
