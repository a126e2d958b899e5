"""A real OpenAI-compatible server for the tests: ``transformers serve`` in its own process, on 127.0.0.1.

Started without a model on its command line, it loads whichever local folder a request names as its model,
as a vLLM or SGLang deployment would hold a fixed one: the ``by_path`` way of serving (app.registry.serving).
It runs on the CPU with one thread and the hub offline, so it only ever loads the test's folders.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx

from tests.server import stop

START_SECONDS = 180.0  # imports and uvicorn on a busy two-core machine


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextmanager
def transformers_serve(log: Path) -> Iterator[str]:
    """The server's OpenAI API root (``http://127.0.0.1:<port>/v1``) while the block runs; its output in ``log``."""
    port = free_port()
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1", "TOKENIZERS_PARALLELISM": "false"}
    command = [str(Path(sys.executable).with_name("transformers")), "serve", "--host", "127.0.0.1"]
    command += ["--port", str(port), "--device", "cpu", "--log-level", "warning"]
    with log.open("wb") as out:
        process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, env=env, start_new_session=True)
    url = f"http://127.0.0.1:{port}/v1"
    try:
        _wait_until_listening(process, url, log)
        yield url
    finally:
        stop(process, timeout=20)


def _wait_until_listening(process: subprocess.Popen[bytes], url: str, log: Path) -> None:
    deadline = time.monotonic() + START_SECONDS
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"transformers serve exited with {process.returncode}: {log.read_text()[-2000:]}")
        try:
            if httpx.get(f"{url}/models", timeout=2.0).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.5)
    raise RuntimeError(f"transformers serve did not answer within {START_SECONDS:.0f} s: {log.read_text()[-2000:]}")
