"""What every process of a launched training run executes: ``python -m app.training.core.rank RUN_DIR``.

A job that trains on several processes (:mod:`app.training.core.launcher`) starts this module under
``torchrun`` or ``accelerate launch``. Each process reads the run's spec (``RUN_DIR/spec.pkl``: the
trainer's import path and its arguments), builds what each process must build for itself
(:class:`OnEachRank`: a scorer on this process's device, which a pickle could not carry), and calls the
trainer, which shards the data and all-reduces the gradients through accelerate as it always does.

Rank 0 speaks for the run, as the trainers' main process always does. Its reporter (:class:`EventReporter`)
appends progress, metrics and log lines to ``RUN_DIR/events.jsonl`` for the job process to relay into the
jobs tables, and at each flush (the trainers flush before every checkpoint) it waits until the job process
says it has written them, so the curves up to a checkpoint survive a crash right after it, as in one
process. It pickles the result, without the in-memory model, into ``RUN_DIR/result.pkl``. A process whose
trainer raises pickles the exception and its traceback into ``RUN_DIR/error-rank<N>.pkl``: the job then ends
as it would in one process (a refused setting fails, anything else is a crash that is retried), with the
failing rank's traceback in its log.

Every process exits the moment the job process or its own launcher does (:func:`die_with`): torchrun starts
each rank in a session of its own, so a signal to the launcher's process group does not reach them, and a
rank must never train on unsupervised. Each writes its pid to ``RUN_DIR/pid-rank<N>`` so the job process can
make sure they are gone.

``RLHF_RANK_SETUP=package.module:function`` names a function every process calls before the trainer (a
profiler, a debugger, the tests' parameter probe). Framework-free like the trainers: no FastAPI, no ORM, and
torch is imported only when a process runs.
"""

from __future__ import annotations

import dataclasses
import importlib
import json
import os
import pickle
import select
import sys
import threading
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from app.processes import pid_alive

SPEC, EVENTS, FLUSHED, RESULT = "spec.pkl", "events.jsonl", "flushed", "result.pkl"
JOB_PID_ENV = "RLHF_JOB_PID"  # the job process's pid: every rank dies with it
SETUP_ENV = "RLHF_RANK_SETUP"  # "package.module:function" called on every rank before the trainer
FLUSH_WAIT_SECONDS = 60.0  # a flush waits this long for the job process, which may be retrying a lost database
EXIT_ORPHANED = 70  # the job process or the launcher died: nobody supervises this rank any more


@dataclass(frozen=True)
class OnEachRank:
    """A trainer argument every process builds for itself: ``factory(*args)``, the factory by import path
    (``"package.module:name"``). A loaded scorer cannot travel in a pickle and must sit on its own
    process's device; a job in one process builds it there with :meth:`build`."""

    factory: str
    args: tuple[Any, ...] = ()

    def build(self) -> Any:
        return import_path(self.factory)(*self.args)


@dataclass(frozen=True)
class LaunchSpec:
    """What every rank runs: ``trainer(*args, reporter=…, **kwargs)``, the trainer by import path, each
    :class:`OnEachRank` among the keyword arguments built on the rank."""

    trainer: str
    args: tuple[Any, ...]
    kwargs: dict[str, Any] = field(default_factory=dict)


def import_path(path: str) -> Any:
    """The object named ``"package.module:attribute"`` (the attribute may be dotted)."""
    module, _, name = path.partition(":")
    found: Any = importlib.import_module(module)
    for part in name.split("."):
        found = getattr(found, part)
    return found


def path_of(function: Any) -> str:
    """The import path of a module-level function or class, as :func:`import_path` reads it."""
    return f"{function.__module__}:{function.__qualname__}"


def error_file(run_dir: Path, rank: int) -> Path:
    return run_dir / f"error-rank{rank}.pkl"


def pid_file(run_dir: Path, rank: int) -> Path:
    return run_dir / f"pid-rank{rank}"


def write_atomically(path: Path, data: bytes) -> None:
    """Write ``data`` aside and rename it into place: a reader never sees half of it."""
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)


def flushed_count(run_dir: Path) -> int:
    """How many of rank 0's flushes the job process has written (0 before the first)."""
    try:
        return int((run_dir / FLUSHED).read_text() or 0)
    except (FileNotFoundError, ValueError):
        return 0


class EventReporter:
    """Rank 0's reporter (the trainers' ``Reporter`` protocol): one JSON line per call, relayed by the job
    process. It never asks to stop: a cancelled job's process stops the whole run itself."""

    def __init__(self, run_dir: Path) -> None:
        self._run_dir = run_dir
        self._file = (run_dir / EVENTS).open("a", encoding="utf-8")
        self._flushes = 0

    def _write(self, event: dict[str, Any]) -> None:
        self._file.write(json.dumps(event) + "\n")
        self._file.flush()

    def progress(self, frac: float, msg: str) -> None:
        self._write({"progress": [frac, msg]})

    def metric(self, step: int, name: str, value: float) -> None:
        self._write({"metric": [step, name, float(value)]})

    def log(self, line: str) -> None:
        self._write({"log": str(line)})

    def should_stop(self) -> bool:
        return False

    def flush(self) -> None:
        """Wait until the job process has written everything reported so far (or give up after a minute)."""
        self._flushes += 1
        self._write({"flush": self._flushes})
        deadline = time.monotonic() + FLUSH_WAIT_SECONDS
        while flushed_count(self._run_dir) < self._flushes and time.monotonic() < deadline:
            time.sleep(0.01)


def die_with(pids: list[int]) -> None:
    """Exit (code :data:`EXIT_ORPHANED`) the moment any of ``pids`` does: a pidfd per process (Linux 5.3+)
    becomes readable when it exits; elsewhere they are polled."""

    def watch() -> None:
        try:
            handles = [os.pidfd_open(pid) for pid in pids]
            select.select(handles, [], [])
        except ProcessLookupError:
            pass  # already gone
        except (AttributeError, OSError):
            while all(pid_alive(pid) for pid in pids):
                time.sleep(0.5)
        os._exit(EXIT_ORPHANED)

    threading.Thread(target=watch, daemon=True, name="supervisor-watch").start()


def _use_local_device() -> None:
    """Make this process's GPU the current one before anything is loaded: a scorer built for "cuda" then
    lands beside the model this process trains, not on GPU 0 with everyone else's."""
    import torch

    if torch.cuda.is_available() and "LOCAL_RANK" in os.environ:
        torch.cuda.set_device(int(os.environ["LOCAL_RANK"]))


def run(run_dir: Path, rank: int) -> Any:
    """Call the spec's trainer on this rank; rank 0 reports through an :class:`EventReporter`."""
    spec: LaunchSpec = pickle.loads((run_dir / SPEC).read_bytes())
    _use_local_device()
    setup = os.environ.get(SETUP_ENV)
    if setup:
        import_path(setup)()
    kwargs = {key: value.build() if isinstance(value, OnEachRank) else value for key, value in spec.kwargs.items()}
    reporter = EventReporter(run_dir) if rank == 0 else None
    return import_path(spec.trainer)(*spec.args, reporter=reporter, **kwargs)


def end_process_group() -> None:
    """Destroy the default process group, if this process joined one, before the interpreter shuts down.

    Left to interpreter finalisation, gloo's worker threads may still hold work whose tensors reference Python
    objects, and freeing them then aborts the process (SIGABRT) after a run that succeeded. Called only after
    the trainer returned on this rank: during a failure the other ranks may still be inside a collective, and a
    destroy would wait on them."""
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def _without_model(result: Any) -> Any:
    """The result as the job process needs it: the model is in the saved folder, not in the pickle."""
    if dataclasses.is_dataclass(result) and not isinstance(result, type) and hasattr(result, "model"):
        return dataclasses.replace(result, model=None)
    return result


def _record_error(run_dir: Path, rank: int, exc: BaseException) -> None:
    """The exception (or, when it does not pickle, a RuntimeError saying what it was) and its traceback."""
    text = traceback.format_exc()
    try:
        data = pickle.dumps((exc, text))
        pickle.loads(data)
    except Exception:
        data = pickle.dumps((RuntimeError(f"{type(exc).__name__}: {exc}"), text))
    write_atomically(error_file(run_dir, rank), data)


def main(argv: list[str]) -> int:
    """One rank: watch the supervisors, run the trainer, leave its result or its error in the run folder."""
    run_dir = Path(argv[1])
    rank = int(os.environ.get("RANK", "0"))
    supervisors = [os.getppid()] + ([int(os.environ[JOB_PID_ENV])] if os.environ.get(JOB_PID_ENV) else [])
    die_with(supervisors)
    pid_file(run_dir, rank).write_text(str(os.getpid()))
    try:
        result = run(run_dir, rank)
    except Exception as exc:
        _record_error(run_dir, rank, exc)
        return 1
    if rank == 0:
        write_atomically(run_dir / RESULT, pickle.dumps(_without_model(result)))
    end_process_group()
    return 0


if __name__ == "__main__":
    # Run as the importable module, not as __main__: the spec's pickled classes (OnEachRank) must be the
    # ones this code checks against.
    from app.training.core.rank import main as rank_main

    sys.exit(rank_main(sys.argv))
