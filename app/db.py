"""Engine, sessions and the declarative base.

SQLite is the embedded default, so it is tuned for a server and a worker writing at once
(WAL, busy timeout); PostgreSQL is the production database, reached through psycopg 3
with a check on checkout so that a database restart costs one failed checkout, not a dead pool.
"""

from __future__ import annotations

import select
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime

from sqlalchemy import DateTime, Engine, MetaData, create_engine, event
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import DisconnectionError
from sqlalchemy.orm import DeclarativeBase, Session, sessionmaker
from sqlalchemy.types import TypeDecorator

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


def utcnow() -> datetime:
    return datetime.now(UTC)


class UTCDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC datetimes on both backends (SQLite stores no offset)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect) -> datetime | None:  # noqa: ANN001
        if value is not None and value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        return value.astimezone(UTC) if value is not None else None

    def process_result_value(self, value: datetime | None, dialect) -> datetime | None:  # noqa: ANN001
        if value is not None and value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value


def make_engine(url: str, *, pool_size: int = 10, max_overflow: int | None = None) -> Engine:
    """Create an engine with the per-backend settings the app relies on.

    Connections beyond ``pool_size`` (up to ``max_overflow``, default twice the pool) are closed when handed
    back, so a pool smaller than the callers that use it at once opens a new PostgreSQL backend (a process,
    cold caches, every statement planned again) for a share of its checkouts: size it to the concurrency."""
    if url.startswith("sqlite"):
        engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": 30})
        event.listen(engine, "connect", _sqlite_pragmas)
        event.listen(engine, "begin", _sqlite_begin_immediate)
        return engine
    overflow = pool_size * 2 if max_overflow is None else max_overflow
    engine = create_engine(url, pool_size=pool_size, max_overflow=overflow, pool_recycle=1800)
    event.listen(engine, "checkout", _closed_by_server)
    return engine


def _closed_by_server(dbapi_connection, _record, _proxy) -> None:  # noqa: ANN001
    """Pre-ping without the round trip: a pooled connection is idle, so the server has nothing to say on it
    unless it is going away. A restart or a terminated backend sends its FATAL message and closes the socket,
    which then reads as ready; then the pool drops the connection and checks out a fresh one (SQLAlchemy's
    DisconnectionError on checkout), so a restart costs no request its answer. A ping per checkout was a
    round trip per request, as dear on both sides as a statement."""
    if dbapi_connection.closed:
        raise DisconnectionError("the connection was closed")
    if select.select([dbapi_connection.fileno()], [], [], 0)[0]:
        raise DisconnectionError("the server closed the connection (restart, or backend terminated)")


def _sqlite_pragmas(dbapi_connection, _record) -> None:  # noqa: ANN001
    # Let SQLAlchemy, not pysqlite, issue BEGIN, so that BEGIN IMMEDIATE below takes effect.
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.close()


def _sqlite_begin_immediate(conn) -> None:  # noqa: ANN001
    # A deferred transaction that reads then writes can fail with SQLITE_BUSY without waiting;
    # taking the write lock up front makes concurrent writers queue on busy_timeout instead.
    conn.exec_driver_sql("BEGIN IMMEDIATE")


def upsert_insert(dialect: str, table: object):  # noqa: ANN201 - the dialect's Insert construct
    """``INSERT`` with ``on_conflict_do_*`` for a backend (``db.get_bind().dialect.name``): both
    dialects spell it the same way, but SQLAlchemy keeps the construct per dialect."""
    return (postgresql if dialect == "postgresql" else sqlite).insert(table)


def make_sessionmaker(engine: Engine) -> sessionmaker[Session]:
    return sessionmaker(engine, expire_on_commit=False)


@contextmanager
def transaction(factory: sessionmaker[Session]) -> Iterator[Session]:
    """One unit of work: commit on success, roll back on any error."""
    with factory() as session, session.begin():
        yield session
