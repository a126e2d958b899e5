"""Acceptance check of issue 18 against the real server: an anonymous 200 MB body, streamed, is
answered 413 and leaves the server's memory where it was."""

from __future__ import annotations

import re
import select
import socket
import time
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest

from tests.server import running_server

TOTAL = 200 * 1024 * 1024
BLOCK = 256 * 1024
MAX_GROWTH_KB = 20 * 1024


def _memory_kb(pid: int) -> dict[str, int]:
    status = Path(f"/proc/{pid}/status").read_text()
    return {key: int(re.search(rf"^{key}:\s+(\d+) kB", status, re.M).group(1)) for key in ("VmRSS", "VmHWM")}


def _stream(url: str, path: str, *, chunked: bool) -> tuple[bytes, int]:
    """POST all TOTAL bytes as fast as the server takes them, then the answer and the bytes sent. The
    answer comes before the body is sent (the server discards the rest), so reads and writes interleave."""
    parts = urlsplit(url)
    sock = socket.create_connection((parts.hostname, parts.port), timeout=60)
    framing = "Transfer-Encoding: chunked" if chunked else f"Content-Length: {TOTAL}"
    head = f"POST {path} HTTP/1.1\r\nHost: {parts.netloc}\r\nContent-Type: application/json\r\n{framing}\r\n\r\n"
    block = b"x" * BLOCK
    if chunked:
        block = f"{BLOCK:x}\r\n".encode() + block + b"\r\n"
    pending = memoryview(head.encode())
    blocks_left = TOTAL // BLOCK
    answer = b""
    sent = -len(pending)
    sock.setblocking(False)
    deadline = time.monotonic() + 120
    try:
        while time.monotonic() < deadline:
            if not pending and blocks_left > 0:
                pending, blocks_left = memoryview(block), blocks_left - 1
            elif not pending and blocks_left == 0 and chunked:
                pending, blocks_left = memoryview(b"0\r\n\r\n"), -1
            sending = [sock] if pending else []
            readable, writable, _ = select.select([sock], sending, [], 5)
            if readable:
                data = sock.recv(65536)
                if not data:
                    break
                answer += data
                if b"\r\n\r\n" in answer and not pending and blocks_left <= 0:
                    break
            if writable:
                try:
                    written = sock.send(pending)
                    sent, pending = sent + written, pending[written:]
                except (BrokenPipeError, ConnectionResetError):
                    break
            if not readable and not writable:
                break
        return answer, sent
    finally:
        sock.close()


@pytest.mark.parametrize("chunked", [False, True], ids=["content-length", "chunked"])
def test_an_anonymous_200_mb_body_is_413_and_costs_no_memory(tmp_path, chunked):
    with running_server(tmp_path / "var", args=("--no-worker", "--log-level", "warning")) as server:
        pid = server.process.pid  # one uvicorn process: `rlhf serve` runs the app in-process
        for _ in range(3):  # warm up: imports and the first requests' allocations are not the body's
            response = httpx.post(server.url + "/api/v1/annotation/judgements", json={"pair_id": 1, "choice": "a"})
            assert response.status_code == 401
        before = _memory_kb(pid)
        answer, sent = _stream(server.url, "/api/v1/annotation/judgements", chunked=chunked)
        after = _memory_kb(pid)
        assert httpx.get(server.url + "/healthz").status_code == 200  # still serving
    assert after["VmRSS"] - before["VmRSS"] < MAX_GROWTH_KB, (before, after)
    assert after["VmHWM"] - before["VmHWM"] < MAX_GROWTH_KB, (before, after)  # no transient peak either
    assert answer.startswith(b"HTTP/1.1 413 "), answer[:300]
    assert sent >= TOTAL  # the whole body went out: the server read past it without keeping it
    assert b"application/problem+json" in answer
