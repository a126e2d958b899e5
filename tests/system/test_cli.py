"""The ``rlhf`` command: migrate, create-user, and clear errors for bad input."""

from __future__ import annotations

import os
import subprocess
import sys

from sqlalchemy import select

from app.auth.models import Role, User
from app.config import Settings
from app.db import make_engine, make_sessionmaker


def _rlhf(tmp_path, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    full_env = {**os.environ, "RLHF_DATA_DIR": str(tmp_path), **(env or {})}
    full_env.pop("RLHF_DATABASE_URL", None)
    return subprocess.run(
        [sys.executable, "-m", "app.cli", *args], env=full_env, capture_output=True, text=True, timeout=120
    )


def test_migrate_then_create_user(tmp_path):
    assert _rlhf(tmp_path, "migrate").returncode == 0
    done = _rlhf(tmp_path, "create-user", "rita", "--role", "researcher", "--password", "longenough1")
    assert done.returncode == 0 and "created researcher 'rita'" in done.stdout
    engine = make_engine(Settings(data_dir=tmp_path).resolved_database_url)
    with make_sessionmaker(engine)() as db:
        assert db.scalar(select(User).where(User.username == "rita")).role is Role.researcher
    engine.dispose()


def test_create_user_errors_are_one_clear_line(tmp_path):
    _rlhf(tmp_path, "migrate")
    short = _rlhf(tmp_path, "create-user", "sam", "--password", "short")
    assert (
        short.returncode == 2
        and "password: must be at least 8 characters" in short.stderr
        and "Traceback" not in short.stderr
    )
    _rlhf(tmp_path, "create-user", "sam", "--password", "longenough1")
    dup = _rlhf(tmp_path, "create-user", "sam", "--password", "longenough1")
    assert dup.returncode == 2 and "is taken" in dup.stderr
    role = _rlhf(tmp_path, "create-user", "tim", "--role", "emperor")
    assert role.returncode == 2 and "invalid choice" in role.stderr


def test_generated_password_is_printed(tmp_path):
    _rlhf(tmp_path, "migrate")
    done = _rlhf(tmp_path, "create-user", "una")
    assert done.returncode == 0 and "with password: " in done.stdout


def test_placeholder_secret_refused_at_start(tmp_path):
    done = _rlhf(tmp_path, "migrate", env={"RLHF_SECRET_KEY": "changeme"})
    assert done.returncode == 2 and "RLHF_SECRET_KEY" in done.stderr


def test_first_admin_from_environment(tmp_path):
    from app.users.service import ensure_first_admin

    engine = make_engine(Settings(data_dir=tmp_path).resolved_database_url)
    from app import migrate

    migrate.upgrade(engine)
    with make_sessionmaker(engine)() as db:
        assert ensure_first_admin(db, password="from-env-password") == "from-env-password"
        assert ensure_first_admin(db, password="other-password") is None  # only on an empty database
        admin = db.scalar(select(User).where(User.username == "admin"))
        assert admin.role is Role.admin
    engine.dispose()
