"""A small but real OpenAI-compatible chat-completions server for the tests, on 127.0.0.1.

It speaks the protocol over real sockets (``http.server``, one thread per connection), so the
client's timeouts, retries and connection handling are exercised for real. Each request pops
the next action from ``script`` (default ``"ok"``):

- ``ok``: echo the last user message, seed and temperature; ``finish_reason`` is ``length``
  when the echo is cut at ``max_tokens`` words (one word = one "token");
- ``500``/``503``/``429``/``400``/``401``: that status with a JSON error body;
- ``slow``: sleep ``slow_s`` seconds, then ``ok`` (a client with a shorter timeout gives up);
- ``drop``: close the connection without answering;
- ``not-json``, ``no-choices``, ``null-content``, ``no-usage``, ``bad-finish``: malformed 200s;
- ``other-model``: a well-formed completion from another model than the one asked for.

``POST /v1/load_lora_adapter`` answers as vLLM does with runtime LoRA loading: 200 the first time a name is
loaded (``loaded`` lists them), 400 "already been loaded" after.
"""

from __future__ import annotations

import json
import threading
import time
from collections import deque
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


class ChatServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.script: deque[str] = deque()
        self.requests: list[dict[str, Any]] = []  # {"path", "headers", "body"} per request received
        self.slow_s = 1.0
        self.loaded: list[dict[str, Any]] = []  # bodies of the LoRA adapters loaded

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"

    def handle_error(self, request, client_address) -> None:
        """A client that timed out has gone; writing to it fails, which is expected here."""


class _Handler(BaseHTTPRequestHandler):
    server: ChatServer
    protocol_version = "HTTP/1.1"  # keep-alive, as real servers do

    def log_message(self, *args: object) -> None:  # keep test output clean
        pass

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))) or b"{}")
        self.server.requests.append({"path": self.path, "headers": dict(self.headers), "body": body})
        action = self.server.script.popleft() if self.server.script else "ok"
        if self.path == "/v1/load_lora_adapter" and action == "ok":
            return self._load_adapter(body)
        if self.path != "/v1/chat/completions":
            return self._send(404, {"error": {"message": f"no route {self.path}"}})
        if action == "drop":
            self.close_connection = True
            return None
        if action.isdigit():
            return self._send(int(action), {"error": {"message": f"scripted {action}"}})
        if action == "slow":
            time.sleep(self.server.slow_s)
        if action == "not-json":
            return self._send_raw(200, b"<html>upstream proxy error</html>", "text/html")
        return self._send(200, _completion(body, action))

    def _load_adapter(self, body: dict[str, Any]) -> None:
        if any(done["lora_name"] == body.get("lora_name") for done in self.server.loaded):
            message = f"The lora adapter '{body['lora_name']}' has already been loaded."
            return self._send(400, {"error": {"message": message}})
        self.server.loaded.append(body)
        return self._send_raw(200, b"Success: LoRA adapter loaded", "text/plain")

    def _send(self, status: int, payload: dict[str, Any]) -> None:
        self._send_raw(status, json.dumps(payload).encode(), "application/json")

    def _send_raw(self, status: int, data: bytes, content_type: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


def _completion(request: dict[str, Any], action: str) -> dict[str, Any]:
    """A chat completion echoing the request, broken in the way ``action`` asks."""
    last_user = next(m["content"] for m in reversed(request["messages"]) if m["role"] == "user")
    words = f"echo {last_user} seed={request.get('seed')} temperature={request.get('temperature')}".split()
    kept = words[: request.get("max_tokens", len(words))]
    choice: dict[str, Any] = {
        "index": 0,
        "message": {"role": "assistant", "content": None if action == "null-content" else " ".join(kept)},
        "finish_reason": "length" if len(kept) < len(words) else "stop",
    }
    if action == "bad-finish":
        choice["finish_reason"] = 42
    reply: dict[str, Any] = {
        "id": "chatcmpl-test",
        "object": "chat.completion",
        "model": "someone-else" if action == "other-model" else request.get("model"),
        "choices": [] if action == "no-choices" else [choice],
        "usage": {"prompt_tokens": 7, "completion_tokens": len(kept), "total_tokens": 7 + len(kept)},
    }
    if action == "no-usage":
        del reply["usage"]
    return reply


@contextmanager
def running_chat_server() -> Iterator[ChatServer]:
    """Serve on a free port in a background thread for the duration of the block."""
    server = ChatServer()
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)
