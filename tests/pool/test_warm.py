"""The warm generation process's life: authenticated clients only, and it goes away by itself when
its owner dies or nobody asks for a while (no model is loaded here: pings never import torch)."""

from __future__ import annotations

import subprocess
import time
import uuid
from multiprocessing import AuthenticationError
from multiprocessing.connection import Client
from pathlib import Path

import pytest

from app.config import Settings
from app.generation.types import GenerationError
from app.pool.warm_client import WarmClient


def _settings(tmp_path: Path, **overrides) -> Settings:
    return Settings(
        data_dir=tmp_path / "var",
        secret_key="warm-" + uuid.uuid4().hex,
        generation_socket=tmp_path / "w.sock",
        **overrides,
    )


def _gone(pid: int, timeout: float = 15.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not Path(f"/proc/{pid}").exists() or "zombie" in Path(f"/proc/{pid}/status").read_text().lower():
            return True
        time.sleep(0.1)
    return False


def test_strangers_are_refused_and_errors_are_replies(tmp_path):
    client = WarmClient(_settings(tmp_path))
    try:
        pid = client.ping()["pid"]
        with pytest.raises(AuthenticationError):
            Client(str(client.socket_path), family="AF_UNIX", authkey=b"not the key")
        with pytest.raises(GenerationError, match="unknown op"):
            client.call({"op": "format-disk"})
        assert client.ping()["pid"] == pid  # still the same process
    finally:
        client.kill_server()


def test_it_exits_when_idle_and_when_its_owner_dies(tmp_path):
    idle = WarmClient(_settings(tmp_path / "a", generation_idle_seconds=1))
    pid = idle.ping()["pid"]
    idle.close()
    assert _gone(pid) and not idle.socket_path.exists()

    owner = subprocess.Popen(["sleep", "60"])
    owned = WarmClient(_settings(tmp_path / "b"), owner_pid=owner.pid)
    try:
        pid = owned.ping()["pid"]
        owned.close()
        owner.kill()
        owner.wait()
        assert _gone(pid) and not owned.socket_path.exists()
    finally:
        owned.kill_server()
