"""Settings refuse known secrets and generate one on first start."""

from __future__ import annotations

import stat

import pytest
from pydantic import ValidationError

from app.config import Settings, normalise_database_url


@pytest.mark.parametrize("bad", ["changeme", "secret", "short"])
def test_placeholder_secret_is_refused(tmp_path, bad):
    with pytest.raises(ValidationError, match="RLHF_SECRET_KEY"):
        Settings(data_dir=tmp_path, secret_key=bad)


def test_secret_is_generated_once_with_private_permissions(tmp_path):
    first = Settings(data_dir=tmp_path).ensure_secret_key()
    second = Settings(data_dir=tmp_path).ensure_secret_key()
    assert first == second and len(first) >= 40
    assert stat.S_IMODE((tmp_path / "secret_key").stat().st_mode) == 0o600


def test_default_database_is_sqlite_in_data_dir(tmp_path):
    url = Settings(data_dir=tmp_path).resolved_database_url
    assert url.startswith("sqlite:///") and url.endswith("rlhf.sqlite3") and str(tmp_path.resolve()) in url


def test_postgres_urls_use_psycopg3():
    assert normalise_database_url("postgresql://u@h/db") == "postgresql+psycopg://u@h/db"
    assert normalise_database_url("sqlite:///x") == "sqlite:///x"


def test_environment_prefix(monkeypatch, tmp_path):
    monkeypatch.setenv("RLHF_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("RLHF_POOL_TARGET", "7")
    settings = Settings()
    assert settings.data_dir == tmp_path and settings.pool_target == 7
