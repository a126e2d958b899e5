"""Talking to the warm generation process (``app.pool.warm``): find it, start it, restart it.

A generate job asks ``WarmClient.generate``; the client connects to the process's Unix socket and,
when nobody answers there, starts one (under a file lock, so two jobs never start two) and waits
until it listens. If the process dies mid-request (a crash, the out-of-memory killer), the request
is sent once more to a fresh one; if it hangs past ``generation_timeout_seconds`` it is killed.

There is one warm process per worker: the socket is named after the data folder, the host and the
*owner* — the job process's parent, i.e. the worker's job launcher, which lives as long as the
worker does. The warm process exits when its owner does, so no model outlives its worker.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import hmac
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from multiprocessing import AuthenticationError
from multiprocessing.connection import Client, Connection
from pathlib import Path
from typing import Any

from app.config import Settings
from app.generation.types import Generation, GenerationError, Messages, SamplingParams

START_TIMEOUT_SECONDS = 60.0
MAX_SOCKET_PATH = 100  # AF_UNIX paths are limited to ~108 bytes


class BackendConfigError(GenerationError):
    """The policy's serving config is unusable, or its server refused it for good (a 4xx, another model
    served): a job should fail with the message, not retry."""


@dataclass(frozen=True)
class Reply:
    generations: list[Generation]
    load_seconds: float  # time spent loading the model for this request (0 when it was warm)
    seconds: float  # time spent generating
    pid: int  # the warm process that answered


def default_socket(settings: Settings, owner_pid: int) -> Path:
    """A short private path (``/tmp/rlhf-gen-<uid>/<digest>.sock``) per data folder, host and owner."""
    ident = f"{socket.gethostname()}|{settings.data_dir.resolve()}|{owner_pid}"
    folder = Path(tempfile.gettempdir()) / f"rlhf-gen-{os.getuid()}"
    folder.mkdir(mode=0o700, exist_ok=True)
    return folder / f"{hashlib.sha256(ident.encode()).hexdigest()[:20]}.sock"


def authkey(settings: Settings) -> bytes:
    """Derived from the app's secret, so every process of this deployment (and only those) knows it."""
    return hmac.new(settings.ensure_secret_key().encode(), b"rlhf warm generation", hashlib.sha256).digest()


class WarmClient:
    """A connection to this worker's warm generation process; use one per job (``close`` at the end)."""

    def __init__(self, settings: Settings, *, owner_pid: int | None = None) -> None:
        self.settings = settings
        self.owner_pid = owner_pid if owner_pid is not None else os.getppid()
        self.socket_path = settings.generation_socket or default_socket(settings, self.owner_pid)
        if len(str(self.socket_path)) > MAX_SOCKET_PATH:
            raise GenerationError(f"generation socket path is too long for a Unix socket: {self.socket_path}")
        self._key = authkey(settings)
        self._conn: Connection | None = None

    def generate(
        self,
        config: dict[str, Any],
        prompts: list[Messages],
        params: SamplingParams,
        *,
        on_text: Callable[[int, str], None] | None = None,
    ) -> Reply:
        """``params.n`` generations per prompt from the model ``config`` describes, prompt-major.

        ``on_text(index, text so far)`` is called while the model writes (chat streams its replies); a request
        that is sent again after the warm process died starts its texts over."""
        # The sampling parameters travel as their fields; the warm process rebuilds them with SamplingParams(**…).
        request = {"op": "generate", "config": config, "prompts": prompts, "params": asdict(params)}
        if on_text is not None:
            request["stream"] = True
        reply = self.call(request, on_text=on_text)
        generations = [Generation(*fields) for fields in reply["generations"]]
        return Reply(generations, float(reply["load_seconds"]), float(reply["seconds"]), int(reply["pid"]))

    def ping(self) -> dict[str, Any]:
        return self.call({"op": "ping"})

    def call(self, request: dict[str, Any], *, on_text: Callable[[int, str], None] | None = None) -> dict[str, Any]:
        """Send one request; a process that died under it is replaced and asked once more. Messages with a
        ``row`` that come before the reply (a stream) go to ``on_text``."""
        for attempt in (1, 2):
            conn = self._connection()
            try:
                conn.send(request)
                reply = self._receive(conn)
                while "row" in reply and on_text is not None:
                    on_text(int(reply["row"]), str(reply["text"]))
                    reply = self._receive(conn)
            except (EOFError, OSError) as exc:
                self._drop()
                if attempt == 2:
                    raise GenerationError(f"the warm generation process died twice during a request ({exc!r})") from exc
                continue
            return _checked(reply)
        raise AssertionError("unreachable")

    def _receive(self, conn: Connection) -> dict[str, Any]:
        if not conn.poll(self.settings.generation_timeout_seconds):
            self.kill_server()
            raise GenerationError(
                "no answer from the warm generation process in "
                f"{self.settings.generation_timeout_seconds:.0f} s; killed it"
            )
        return conn.recv()

    def close(self) -> None:
        self._drop()

    def __enter__(self) -> WarmClient:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def server_pid(self) -> int | None:
        """The pid the running warm process wrote, if any."""
        try:
            return int(self.socket_path.with_suffix(".pid").read_text().strip())
        except (OSError, ValueError):
            return None

    def kill_server(self) -> None:
        """Stop the warm process at once (hung, or a test cleaning up); the next request starts another."""
        self._drop()
        pid = self.server_pid()
        if pid is not None:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, signal.SIGKILL)
        with contextlib.suppress(OSError):
            self.socket_path.unlink()

    def _drop(self) -> None:
        if self._conn is not None:
            with contextlib.suppress(OSError):
                self._conn.close()
            self._conn = None

    def _connection(self) -> Connection:
        if self._conn is None:
            self._conn = self._try_connect() or self._start()
        return self._conn

    def _try_connect(self) -> Connection | None:
        if not self.socket_path.exists():
            return None
        try:
            return Client(str(self.socket_path), family="AF_UNIX", authkey=self._key)
        except (OSError, EOFError):
            return None
        except AuthenticationError:  # started under another secret key: ours to replace
            self.kill_server()
            return None

    def _start(self) -> Connection:
        """Start a warm process (unless another job just did) and connect to it."""
        with self._spawn_lock():
            conn = self._try_connect()
            if conn is not None:
                return conn
            with contextlib.suppress(FileNotFoundError):
                self.socket_path.unlink()  # nobody answers on it: left by a killed process
            process = self._spawn()
            deadline = time.monotonic() + START_TIMEOUT_SECONDS
            while time.monotonic() < deadline:
                conn = self._try_connect()
                if conn is not None:
                    return conn
                if process.poll() is not None:
                    raise GenerationError(
                        f"the warm generation process exited with {process.returncode}; see {self._log_path()}"
                    )
                time.sleep(0.05)
            process.kill()
            raise GenerationError(f"the warm generation process did not listen within {START_TIMEOUT_SECONDS:.0f} s")

    def _spawn(self) -> subprocess.Popen[bytes]:
        command = [
            sys.executable, "-m", "app.pool.warm", "--socket", str(self.socket_path),
            "--owner-pid", str(self.owner_pid),
            "--idle-seconds", str(self.settings.generation_idle_seconds),
            "--max-models", str(self.settings.generation_max_models),
            "--threads", str(self.settings.generation_threads or 0),
        ]  # fmt: skip
        # OpenMP threads that spin-wait while other processes hold the cores slow decoding 5-10x on a
        # shared machine (see bench/generation.py); waiting passively costs little when idle cores abound.
        env = {**os.environ, "OMP_WAIT_POLICY": os.environ.get("OMP_WAIT_POLICY", "PASSIVE")}
        with open(self._log_path(), "ab") as log:
            # A session of its own: a job process killed by its worker does not take it along.
            process = subprocess.Popen(
                command, stdin=subprocess.PIPE, stdout=log, stderr=subprocess.STDOUT, start_new_session=True, env=env
            )
        assert process.stdin is not None
        process.stdin.write(self._key.hex().encode() + b"\n")
        process.stdin.close()
        return process

    def _log_path(self) -> Path:
        return self.socket_path.with_suffix(".log")

    @contextlib.contextmanager
    def _spawn_lock(self) -> Iterator[None]:
        self.socket_path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        with open(self.socket_path.with_suffix(".lock"), "w") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            yield


def _checked(reply: dict[str, Any]) -> dict[str, Any]:
    if reply.get("ok"):
        return reply
    if reply.get("kind") == "config":
        raise BackendConfigError(reply.get("error", "invalid backend config"))
    raise GenerationError(reply.get("error", "generation failed"))
