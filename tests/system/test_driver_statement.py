"""Statements run on the driver's cursor (app.driver_statement) read and write what SQLAlchemy would: the same
typed values and SQLAlchemy's errors (a dead connection's: tests/system/test_db_pool.py)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from sqlalchemy import bindparam, literal, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from app.auth.models import ApiToken, Role, User
from app.driver_statement import DriverStatement, as_loaded
from app.prompts.models import Prompt
from tests.factories import PromptFactory, UserFactory

USER_ID = bindparam("user_id")
TYPED = (
    select(*User.__table__.c, literal("fixed").label("constant"))
    .where(User.id == USER_ID, User.role == bindparam("role", type_=User.__table__.c.role.type))
    .where(User.created_at <= bindparam("before", type_=User.__table__.c.created_at.type))
)


def test_rows_are_typed_as_sqlalchemy_reads_them(db: Session) -> None:
    user = UserFactory(role=Role.researcher)
    db.flush()
    params = {"user_id": user.id, "role": Role.researcher, "before": datetime.now(UTC)}
    expected = db.connection().execute(TYPED, params).one()
    row = DriverStatement(TYPED).first(db.connection(), params)
    assert tuple(row) == tuple(expected)
    assert row.role is Role.researcher  # the enum, not its stored string
    assert row.created_at.tzinfo is not None and row.created_at == user.created_at
    assert row.is_active is True and row.constant == "fixed"  # a literal compiled into a parameter is sent
    assert DriverStatement(TYPED).first(db.connection(), {**params, "role": Role.admin}) is None


def test_json_columns_come_back_parsed(db: Session) -> None:
    prompt = PromptFactory(messages=[{"role": "user", "content": "ça <b>va</b>?"}])
    db.flush()
    statement = DriverStatement(select(Prompt.id, Prompt.messages).where(Prompt.id == bindparam("id")))
    row = statement.first(db.connection(), {"id": prompt.id})
    assert row.messages == [{"role": "user", "content": "ça <b>va</b>?"}]


def test_a_constraint_violation_is_sqlalchemys_integrity_error(db: Session) -> None:
    user = UserFactory()
    db.flush()
    columns = ("user_id", "name", "token_hash", "prefix", "created_at")
    insert = DriverStatement(
        ApiToken.__table__.insert()
        .values({name: bindparam(name, type_=ApiToken.__table__.c[name].type) for name in columns})
        .returning(ApiToken.__table__.c.id)
    )
    values = {"user_id": user.id, "name": "t", "token_hash": "h" * 64, "prefix": "p", "created_at": datetime.now(UTC)}
    first = insert.first(db.connection(), values)
    assert first.id == db.scalar(select(ApiToken.id).where(ApiToken.token_hash == "h" * 64))
    savepoint = db.begin_nested()
    with pytest.raises(IntegrityError):  # token_hash is unique
        insert.first(db.connection(), values)
    savepoint.rollback()
    assert db.scalar(select(ApiToken.name).where(ApiToken.id == first.id)) == "t"  # the session carries on


def test_a_statement_whose_sql_is_rendered_per_execution_is_refused(db: Session) -> None:
    expanding = DriverStatement(select(User.id).where(User.id.in_(bindparam("ids", expanding=True))))
    with pytest.raises(ValueError, match="rendered at execution"):
        expanding.first(db.connection(), {"ids": [1]})


def test_as_loaded_gives_a_persistent_user_that_behaves_as_a_loaded_one(db: Session) -> None:
    user = UserFactory(username="loaded-one")
    db.flush()
    user_id = user.id
    db.expunge_all()
    row = DriverStatement(select(*User.__table__.c).where(User.id == USER_ID)).first(
        db.connection(), {"user_id": user_id}
    )
    loaded = as_loaded(db, User, row)
    assert loaded.username == "loaded-one" and loaded.role is Role.annotator
    assert loaded in db and not db.dirty and not db.new  # attached, nothing to write
    assert loaded.tokens == []  # a relationship lazy-loads
    loaded.username = "renamed"
    db.flush()
    assert db.scalar(select(User.username).where(User.id == user_id)) == "renamed"
    assert as_loaded(db, User, row) is loaded  # the session's own copy wins, as a query's would
