"""Start the real ``rlhf serve`` in a subprocess for end-to-end and browser tests."""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx

PASSWORD_RE = re.compile(r"password: (\S+)")


@dataclass
class Server:
    url: str
    admin_password: str
    process: subprocess.Popen[str]
    output: list[str]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def running_server(
    data_dir: Path, *, extra_env: dict[str, str] | None = None, args: tuple[str, ...] = ()
) -> Iterator[Server]:
    port = free_port()
    env = {**os.environ, "RLHF_DATA_DIR": str(data_dir)}
    env.pop("RLHF_DATABASE_URL", None)
    env.update(extra_env or {})
    command = [sys.executable, "-m", "app.cli", "serve", "--port", str(port), *args]
    process = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, bufsize=1)
    output: list[str] = []
    password = ""
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            line = process.stdout.readline()
            if not line and process.poll() is not None:
                raise RuntimeError("server exited:\n" + "".join(output))
            output.append(line)
            if (m := PASSWORD_RE.search(line)) and not password:
                password = m.group(1)
            if line.startswith("RLHF Loop on http"):  # printed by `rlhf serve` after set-up, before uvicorn starts
                break
        _wait_healthy(url)
        _drain_in_background(process, output)
        yield Server(url=url, admin_password=password, process=process, output=output)
    finally:
        stop(process, timeout=30)


def stop(process: subprocess.Popen, *, timeout: float) -> None:
    """Terminate, and kill what does not exit within ``timeout`` seconds."""
    process.terminate()
    try:
        process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def _wait_healthy(url: str) -> None:
    for _ in range(100):
        try:
            if httpx.get(url + "/healthz", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise RuntimeError("server did not become healthy")


def _drain_in_background(process: subprocess.Popen[str], output: list[str]) -> None:
    import threading

    def drain() -> None:
        for line in process.stdout:
            output.append(line)

    threading.Thread(target=drain, daemon=True).start()


def create_user_cli(data_dir: Path, username: str, password: str, role: str = "annotator") -> None:
    env = {**os.environ, "RLHF_DATA_DIR": str(data_dir)}
    command = [sys.executable, "-m", "app.cli", "create-user", username, "--role", role, "--password", password]
    subprocess.run(command, env=env, check=True, capture_output=True, timeout=60)
