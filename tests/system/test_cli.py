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


def _policy_version(tmp_path, name: str) -> None:
    """A policy version row whose folder holds a config, as the registry would have it."""
    import app.all_models  # noqa: F401 - every mapper, so the version's foreign keys resolve
    from app.registry.models import ModelKind, ModelVersion

    folder = tmp_path / "models" / name
    folder.mkdir(parents=True)
    (folder / "config.json").write_text("{}")
    engine = make_engine(Settings(data_dir=tmp_path).resolved_database_url)
    with make_sessionmaker(engine)() as db:
        db.add(ModelVersion(name=name, kind=ModelKind.policy, path=str(folder), config={"backend": "transformers"}))
        db.commit()
    engine.dispose()


def test_models_serve_points_a_policy_at_a_server_and_back(tmp_path):
    _rlhf(tmp_path, "migrate")
    _policy_version(tmp_path, "p0")

    served = _rlhf(tmp_path, "models", "serve", "p0", "--base-url", "http://gpu-box:8000/v1", "--load", "by_path")
    assert served.returncode == 0, served.stderr
    assert f"p0 is served by http://gpu-box:8000/v1 as '{tmp_path / 'models' / 'p0'}' (by_path)" in served.stdout
    listed = _rlhf(tmp_path, "models", "list")
    assert "openai" in listed.stdout.splitlines()[1]
    back = _rlhf(tmp_path, "models", "serve", "p0", "--in-process")
    assert back.returncode == 0 and "p0 is served in process" in back.stdout

    for args, message in [
        (("nope", "--base-url", "http://x/v1"), "no policy named 'nope'"),
        (("p0",), "--base-url: required"),
        (("p0", "--base-url", "gopher://x", "--model", "m"), "base_url: 'gopher://x' is not an http(s) URL"),
        (("p0", "--base-url", "http://x/v1"), "model: required"),
    ]:
        refused = _rlhf(tmp_path, "models", "serve", *args)
        assert refused.returncode == 2 and message in refused.stderr and "Traceback" not in refused.stderr


def test_models_push_refuses_clearly_without_reaching_the_hub(tmp_path):
    _rlhf(tmp_path, "migrate")
    _policy_version(tmp_path, "p0")
    for args, env, message in [
        (("nope", "--repo", "me/p0"), {}, "no version named 'nope'"),
        (("p0", "--repo", "not a repo id!"), {}, "repo: "),
        (("p0", "--repo", "me/p0"), {"HF_HUB_OFFLINE": "1"}, "HF_HUB_OFFLINE is set"),
        (("p0", "--repo", "me/p0", "--token-env", "RLHF_TEST_NO_SUCH_TOKEN"), {}, "is not set"),
    ]:
        refused = _rlhf(tmp_path, "models", "push", *args, env=env)
        assert refused.returncode == 2 and message in refused.stderr and "Traceback" not in refused.stderr, refused
