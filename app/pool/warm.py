"""The warm generation process: loads a policy once and serves generate requests over a Unix socket.

Job processes are short-lived (one per attempt, see ``app.jobs.child``), so a model loaded inside
one would be loaded again for every generate job. This process outlives them: the first generate
job of a worker starts it (``app.pool.warm_client``), later jobs connect to it, and it keeps up to
``--max-models`` backends loaded (the promoted policy, and another version for cross-version
pairs), least recently used out first, so a newly promoted version is loaded by its first request.

Clients speak ``multiprocessing.connection``, whose HMAC challenge authenticates a client before
anything is unpickled; the key comes on stdin. It exits when the process that owns it dies (the worker's job
launcher) or after ``--idle-seconds`` without requests, removing its socket; a client that finds
it gone starts a new one.

Run by the client, never by hand::

    python -m app.pool.warm --socket PATH --owner-pid PID < key
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import os
import sys
import threading
import time
import traceback
from collections import OrderedDict
from collections.abc import Callable
from multiprocessing.connection import Connection, Listener
from pathlib import Path
from typing import Any

from app.processes import pid_alive

log = logging.getLogger("app.pool.warm")

WATCH_SECONDS = 1.0


def model_key(config: dict[str, Any]) -> str:
    """What identifies a loaded backend: its whole serving config (a new path or endpoint is a new model)."""
    return hashlib.sha256(json.dumps(config, sort_keys=True).encode()).hexdigest()[:16]


def resolve_device(config: dict[str, Any]) -> dict[str, Any]:
    """An in-process model goes on the GPU when there is one, unless its config says otherwise."""
    if config.get("backend") != "transformers" or config.get("device"):
        return config
    import torch

    return {**config, "device": "cuda" if torch.cuda.is_available() else "cpu"}


class Backends:
    """The loaded backends, least recently used first; at most ``limit`` of them."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._loaded: OrderedDict[str, Any] = OrderedDict()

    def get(self, config: dict[str, Any]) -> tuple[Any, float]:
        """The backend for ``config`` and how long loading it took (0 when it was warm)."""
        from app.generation import backend_from_config

        key = model_key(config)
        if key in self._loaded:
            self._loaded.move_to_end(key)
            return self._loaded[key], 0.0
        while len(self._loaded) >= self.limit:
            _, old = self._loaded.popitem(last=False)
            old.close()
        start = time.perf_counter()
        backend = backend_from_config(resolve_device(config))
        self._loaded[key] = backend
        return backend, time.perf_counter() - start

    def keys(self) -> list[str]:
        return list(self._loaded)


class WarmServer:
    """The request loop, plus a watchdog thread that ends the process when it is no longer wanted.

    Each client connection gets a thread, so a job that keeps its connection open between batches
    never locks out another client (a ping, the next job); generation itself is serialised by
    ``_model_lock``, since the model is the one resource they share."""

    def __init__(self, socket_path: Path, *, owner_pid: int, idle_seconds: float, max_models: int) -> None:
        self.socket_path = socket_path
        self.owner_pid = owner_pid
        self.idle_seconds = idle_seconds
        self.backends = Backends(max_models)
        self.requests = 0
        self._model_lock = threading.Lock()
        self._state_lock = threading.Lock()
        self._busy = 0  # requests being answered
        self._last_activity = time.monotonic()

    def serve(self, authkey: bytes) -> None:
        if self.socket_path.exists():
            self.socket_path.unlink()  # left by a killed server; the client checked nobody answers on it
        listener = Listener(str(self.socket_path), family="AF_UNIX", authkey=authkey)
        os.chmod(self.socket_path, 0o600)
        self.socket_path.with_suffix(".pid").write_text(str(os.getpid()))
        threading.Thread(target=self._watch, daemon=True, name="warm-watchdog").start()
        log.info("warm generation process %d listening on %s", os.getpid(), self.socket_path)
        while True:
            try:
                conn = listener.accept()
            except Exception as exc:
                log.warning("refused a connection: %s", exc)
                continue
            threading.Thread(target=self._serve_connection, args=(conn,), daemon=True, name="warm-client").start()

    def _serve_connection(self, conn: Connection) -> None:
        """Answer requests on one client connection until it closes or stays silent too long."""
        with conn:
            while conn.poll(self.idle_seconds):
                try:
                    request = conn.recv()
                except (EOFError, OSError):
                    return
                try:
                    reply = self._answer(request, emit=conn.send if request.get("stream") else None)
                    conn.send(reply)
                except OSError:
                    return
                if request.get("op") == "shutdown":
                    self._exit(0)

    def _answer(self, request: dict[str, Any], emit: Callable[[dict[str, Any]], None] | None = None) -> dict[str, Any]:
        with self._state_lock:
            self._busy += 1
        try:
            return self.handle(request, emit)
        finally:
            with self._state_lock:
                self._busy -= 1
                self._last_activity = time.monotonic()

    def handle(self, request: dict[str, Any], emit: Callable[[dict[str, Any]], None] | None = None) -> dict[str, Any]:
        """One request → one reply; errors are replies too, so the client can tell them from a crash.

        With ``emit`` (a ``stream`` request), a generation also sends ``{"row", "text"}`` messages with each
        output's text so far while it decodes, before the reply."""
        op = request.get("op")
        try:
            if op == "ping":
                return {"ok": True, "pid": os.getpid(), "loaded": self.backends.keys(), "requests": self.requests}
            if op == "shutdown":
                return {"ok": True, "pid": os.getpid()}
            if op == "generate":
                with self._model_lock:
                    return self._generate(request, emit)
            return {"ok": False, "kind": "request", "error": f"unknown op {op!r}"}
        except Exception as exc:
            from app.generation import InvalidBackendConfig, ServingRefused

            kind = "config" if isinstance(exc, (InvalidBackendConfig, ServingRefused)) else "generation"
            log.error("request failed: %s", traceback.format_exc())
            return {"ok": False, "kind": kind, "error": f"{type(exc).__name__}: {exc}"[:2000]}

    def _generate(self, request: dict[str, Any], emit: Callable[[dict[str, Any]], None] | None) -> dict[str, Any]:
        from app.generation import SamplingParams, TransformersBackend

        backend, load_seconds = self.backends.get(request["config"])
        params = SamplingParams(**request["params"])
        start = time.perf_counter()
        if emit is not None and isinstance(backend, TransformersBackend):
            on_text = lambda row, text: emit({"row": row, "text": text})
            generations = backend.generate(request["prompts"], params, on_text=on_text)
        else:  # a backend that cannot stream answers at the end, like the reply
            generations = backend.generate(request["prompts"], params)
        self.requests += 1
        return {
            "ok": True,
            "generations": [(g.text, g.token_count, g.finish_reason, g.model) for g in generations],
            "load_seconds": load_seconds,
            "seconds": time.perf_counter() - start,
            "pid": os.getpid(),
        }

    def _watch(self) -> None:
        while True:
            time.sleep(WATCH_SECONDS)
            if not pid_alive(self.owner_pid):
                log.info("owner %d is gone; exiting", self.owner_pid)
                self._exit(0)
            with self._state_lock:
                idle = not self._busy and time.monotonic() - self._last_activity > self.idle_seconds
            if idle:
                log.info("idle for %.0f s; exiting", self.idle_seconds)
                self._exit(0)

    def _exit(self, code: int) -> None:
        """Remove our socket and pid file, then leave at once (a model may hold threads)."""
        for path in (self.socket_path, self.socket_path.with_suffix(".pid")):
            try:
                if path.suffix != ".pid" or path.read_text().strip() == str(os.getpid()):
                    path.unlink()
            except OSError:
                pass
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="warm generation process (started by app.pool.warm_client)")
    parser.add_argument("--socket", required=True, type=Path)
    parser.add_argument("--owner-pid", required=True, type=int)
    parser.add_argument("--idle-seconds", type=float, default=900.0)
    parser.add_argument("--max-models", type=int, default=2)
    parser.add_argument("--threads", type=int, default=0, help="torch CPU threads; 0: torch's choice")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(process)d %(name)s %(levelname)s %(message)s")
    authkey = bytes.fromhex(sys.stdin.readline().strip())
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    server = WarmServer(
        args.socket, owner_pid=args.owner_pid, idle_seconds=args.idle_seconds, max_models=args.max_models
    )
    server.serve(authkey)


if __name__ == "__main__":
    main()
