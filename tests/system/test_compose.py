"""docker-compose.yml stays consistent with the code (Docker itself cannot run on our machines)."""

from __future__ import annotations

from pathlib import Path

import yaml

from app.cli import build_parser
from app.config import Settings

ROOT = Path(__file__).resolve().parents[2]


def _compose() -> dict:
    return yaml.safe_load((ROOT / "docker-compose.yml").read_text())


def test_services_exist():
    services = _compose()["services"]
    assert {"postgres", "app", "worker"} <= set(services)
    assert (ROOT / "Dockerfile").is_file()
    for name in ("app", "worker"):
        assert services[name]["build"] == "."
        assert "postgres" in services[name]["depends_on"] or "app" in services[name]["depends_on"]


def test_commands_are_real_cli_commands():
    parser = build_parser()
    for name in ("app", "worker"):
        command = _compose()["services"][name]["command"]
        assert command[0] == "rlhf"
        args = parser.parse_args(command[1:])  # raises SystemExit on an unknown sub-command or flag
        assert callable(args.func)


def test_environment_names_are_settings_and_database_points_at_postgres():
    services = _compose()["services"]
    fields = {f"RLHF_{name.upper()}" for name in Settings.model_fields}
    for name in ("app", "worker"):
        env = services[name]["environment"]
        unknown = [key for key in env if key.startswith("RLHF_") and key not in fields]
        assert unknown == []
        url = env["RLHF_DATABASE_URL"]
        pg = services["postgres"]["environment"]
        assert url == f"postgresql://{pg['POSTGRES_USER']}:{pg['POSTGRES_PASSWORD']}@postgres:5432/{pg['POSTGRES_DB']}"
    healthcheck = " ".join(services["app"]["healthcheck"]["test"])
    assert "/healthz" in healthcheck
