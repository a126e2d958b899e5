"""A statement built once with SQLAlchemy and run on the database driver's cursor, for the hot paths.

Running a cached, compiled statement through SQLAlchemy still costs, on every call, an execution context,
the parameters' processing, a result object and its row processing: on the annotation path (eight short
statements per judgement, each a few tens of microseconds in PostgreSQL) that cost more server CPU than the
driver's round trip (``bench/annotate_parts.py``: 0.17 ms a Core select against 0.08 ms on the cursor). Here
the statement is compiled once per dialect, its bind and result processors (the column types' own: enums,
aware datetimes, JSON) are looked up once, and each call is the driver's ``execute`` with those applied.

What SQLAlchemy would do around a failing statement is kept: the driver's error becomes SQLAlchemy's
(``IntegrityError`` stays an ``IntegrityError``), and a connection the error shows to be gone is invalidated
so the pool never hands it out again. The statement runs on the connection of the caller's session, inside
its transaction (SQLite's ``BEGIN IMMEDIATE`` included: the session's ``connection()`` begins it). What it
gives up: SQLAlchemy's cursor events and ``echo`` do not see these statements (PostgreSQL's own logging does).
"""

from __future__ import annotations

from collections import namedtuple
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

from sqlalchemy import Connection
from sqlalchemy.engine import Dialect
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session, make_transient_to_detached
from sqlalchemy.orm.util import identity_key
from sqlalchemy.sql.expression import Executable

Processor = Callable[[Any], Any] | None
M = TypeVar("M")
DriverRow = Any  # a named tuple of the statement's columns, built per statement


@dataclass(frozen=True)
class _Compiled:
    sql: str
    defaults: dict[str, Any]  # literal values compiled into parameters (``literal(...)``)
    binds: tuple[tuple[str, str, Processor], ...]  # (the caller's key, the name in the SQL, its processor)
    positional: bool
    row: type  # a named tuple of the result's columns
    results: tuple[Processor, ...]


class DriverStatement:
    """``statement`` (a select, or an insert / update / CTE statement with RETURNING) run on the driver."""

    def __init__(self, statement: Executable) -> None:
        self.statement = statement
        self._by_dialect: dict[str, _Compiled] = {}

    def first(self, conn: Connection, params: Mapping[str, Any]) -> DriverRow | None:
        """The first row (a named tuple, column types applied), or None."""
        compiled = self._compiled(conn.dialect)
        cursor = self._execute(conn, compiled, params)
        raw = cursor.fetchone()
        cursor.close()
        if raw is None:
            return None
        processed = (value if p is None else p(value) for p, value in zip(compiled.results, raw, strict=True))
        return compiled.row._make(processed)

    def _execute(self, conn: Connection, compiled: _Compiled, params: Mapping[str, Any]) -> Any:
        values = []
        for key, name, processor in compiled.binds:
            value = params[key] if key in params else compiled.defaults[key]
            values.append((name, value if processor is None or value is None else processor(value)))
        bound = tuple(value for _, value in values) if compiled.positional else dict(values)
        cursor = conn.connection.driver_connection.cursor()
        try:
            cursor.execute(compiled.sql, bound)
        except conn.dialect.loaded_dbapi.Error as error:
            cursor.close()
            gone = conn.dialect.is_disconnect(error, conn.connection.dbapi_connection, cursor)
            if gone:
                conn.invalidate(error)
            raise DBAPIError.instance(
                compiled.sql,
                bound,
                error,
                conn.dialect.loaded_dbapi.Error,
                connection_invalidated=gone,
                dialect=conn.dialect,
            ) from error
        return cursor

    def _compiled(self, dialect: Dialect) -> _Compiled:
        found = self._by_dialect.get(dialect.name)
        if found is None:
            found = self._by_dialect[dialect.name] = _compile(self.statement, dialect)
        return found


def columns_of(model: type, prefix: str = "") -> list:
    """Every column of ``model``'s table, labelled ``prefix`` + its key: what :func:`as_loaded` reads back."""
    return [column.label(prefix + column.key) if prefix else column for column in model.__table__.c]


def as_loaded(db: Session, model: type[M], row: DriverRow, prefix: str = "") -> M:
    """``row`` (holding every column of ``model``'s table as :func:`columns_of` selects them) as the instance a
    query would have loaded into ``db``: the one ``db`` already holds with that primary key, else a new one,
    filled without the attribute events and attached as persistent, so that it lazy-loads, changes and flushes
    like any other."""
    mapper = model.__mapper__
    held = db.identity_map.get(identity_key(model, getattr(row, prefix + mapper.primary_key[0].key)))
    if held is not None:
        return held
    instance = mapper.class_manager.new_instance()
    instance.__dict__.update({attr.key: getattr(row, prefix + attr.columns[0].key) for attr in mapper.column_attrs})
    make_transient_to_detached(instance)  # what is in __dict__ now counts as loaded, with no history
    db.add(instance)
    return instance


def _compile(statement: Executable, dialect: Dialect) -> _Compiled:
    compiled = statement.compile(dialect=dialect)
    if compiled.literal_execute_params or compiled.post_compile_params:
        raise ValueError("a statement whose parameters are rendered at execution (expanding IN, literal_execute)")
    positional = bool(compiled.positional)
    by_name = {name: bind for bind, name in compiled.bind_names.items()}
    order = compiled.positiontup if positional else list(by_name)
    binds = []
    for name in order:
        bind = by_name[name]
        sql_name = name if positional else compiled.escaped_bind_names.get(name, name)
        binds.append((bind.key, sql_name, bind.type.dialect_impl(dialect).bind_processor(dialect)))
    defaults = {bind.key: bind.effective_value for bind in by_name.values() if bind.value is not None or bind.callable}
    columns = list(statement.exported_columns)
    row = namedtuple("Row", [column.key for column in columns], rename=True)
    results = tuple(column.type.dialect_impl(dialect).result_processor(dialect, None) for column in columns)
    return _Compiled(compiled.string, defaults, tuple(binds), positional, row, results)
