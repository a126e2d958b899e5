"""The process that runs one attempt of one job, started by the worker (see ``worker``).

A process per attempt keeps the worker safe from the handler: a segfault, an out-of-memory
kill or a leaked CUDA context ends this process only, and its memory goes back to the system
when it exits. It opens its own engine from the database URL, imports the handler's
module, runs it, and records the outcome itself (fenced, so a late write after a take-over is
ignored). It dies with its worker: a job must not run on, unsupervised, after the worker is gone.
"""

from __future__ import annotations

import contextlib
import importlib
import json
import logging
import os
import select as io_select
import signal
import sys
import threading
import time
import traceback
from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

import app.all_models  # noqa: F401 - complete metadata so the ORM resolves every foreign key
from app.config import Settings
from app.db import make_engine, make_sessionmaker, transaction
from app.errors import DomainError
from app.jobs import registry
from app.jobs.context import JobContext
from app.jobs.dbretry import with_retry
from app.jobs.exceptions import JobCancelled, JobFailed, JobLost
from app.jobs.lifecycle import TRACEBACK_MARK, Claim, Outcome, end_attempt
from app.jobs.models import Job
from app.jobs.reporter import Reporter
from app.processes import pid_alive

EXIT_ORPHANED = 70  # the worker died: nobody supervises this job any more
TRACEBACK_LINES = 40


@dataclass(frozen=True)
class ChildSpec:
    """What the worker passes to the child process (pickled)."""

    claim: Claim
    module: str  # the handler's module, imported so the kind is registered in this process
    database_url: str
    settings: Settings
    worker_pid: int
    flush_seconds: float = 1.0


def child_main(spec: ChildSpec) -> None:
    """Entry point of the child process: run the attempt, exit 0 once its outcome is recorded.

    It exits at once after that, without waiting for threads a library may have left running:
    a finished job must not hold its memory (or a GPU) because of a stray thread."""
    _die_with_worker(spec.worker_pid)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C in a terminal is the worker's to handle
    engine = make_engine(spec.database_url, pool_size=2)
    try:
        run_attempt(make_sessionmaker(engine), spec)
    finally:
        engine.dispose()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)


def warm_up() -> None:
    """A job process that does nothing: started once so the fork server has loaded before a claim."""


def _die_with_worker(worker_pid: int) -> None:
    """Exit the moment the worker process does; a job must not run on unsupervised.

    The worker is not necessarily our parent (the fork server is), so parent-death signals do
    not help; a pidfd (Linux 5.3+) becomes readable when the worker exits, elsewhere we poll."""
    try:
        handle: int | None = os.pidfd_open(worker_pid)
    except ProcessLookupError:
        os._exit(EXIT_ORPHANED)
    except (AttributeError, OSError):
        handle = None
    threading.Thread(target=_await_exit, args=(worker_pid, handle), daemon=True, name="worker-watch").start()


def _await_exit(worker_pid: int, handle: int | None) -> None:
    try:
        if handle is not None:
            io_select.select([handle], [], [])
            os._exit(EXIT_ORPHANED)
    except OSError:
        pass  # fall back to polling
    while pid_alive(worker_pid):
        time.sleep(0.5)
    os._exit(EXIT_ORPHANED)


def run_attempt(sessions: sessionmaker[Session], spec: ChildSpec) -> Outcome | None:
    """Run the handler for ``spec.claim`` and record how it ended; None if the claim was lost."""
    claim = spec.claim
    retry = float(max(spec.settings.job_lease_seconds * 2, 60))
    reporter = Reporter(sessions, claim, flush_seconds=spec.flush_seconds, retry_seconds=retry)
    forward = _LogForwarder(reporter)
    logging.getLogger().addHandler(forward)
    try:
        outcome, error, result = _call_handler(sessions, spec, reporter)
    finally:
        logging.getLogger().removeHandler(forward)
    if outcome is None:
        return None
    if outcome in (Outcome.crashed, Outcome.failed):
        _flush_quietly(reporter)  # keep the curves and the traceback up to the crash
    lines = reporter.take_lines() if outcome is not Outcome.cancelled else []

    def record() -> None:
        with transaction(sessions) as db:
            end_attempt(db, claim, outcome, error=error, result=result, log_lines=lines)

    with_retry(record, what=f"job {claim.job_id} outcome", deadline_seconds=retry)
    return outcome


def _call_handler(
    sessions: sessionmaker[Session], spec: ChildSpec, reporter: Reporter
) -> tuple[Outcome | None, str | None, dict[str, Any] | None]:
    """Run the handler; translate how it ended into (outcome, error, result)."""
    claim = spec.claim
    try:
        importlib.import_module(spec.module)
        kind = registry.get_kind(claim.kind)
    except Exception as exc:
        _log_traceback(reporter)
        return Outcome.crashed, f"cannot load job kind {claim.kind!r} from {spec.module}: {exc}"[:2000], None
    raw = with_retry(lambda: _load_params(sessions, claim.job_id), what="load params", deadline_seconds=60)
    try:
        params = kind.params_model.model_validate(raw)
    except ValidationError as exc:
        return Outcome.failed, f"stored parameters are no longer valid: {exc.errors()[0].get('msg')}", None
    reporter.log(f"[attempt {claim.attempt} on worker {claim.worker_id}, pid {os.getpid()}]")
    ctx = JobContext(claim=claim, params=params, reporter=reporter, settings=spec.settings, sessions=sessions)
    try:
        result = kind.handler(ctx)
        reporter.flush()
        return Outcome.succeeded, None, _json_result(result)
    except JobCancelled:
        return Outcome.cancelled, None, None
    except JobLost:
        return None, None, None
    except JobFailed as exc:
        return Outcome.failed, str(exc) or type(exc).__name__, None
    except (DomainError, ValueError) as exc:
        # Bad input the handler found (a refused value, a config its own checks reject, a file that is not
        # what it claims): the same parameters and data fail the same way again, so there is no retry.
        _log_traceback(reporter)
        message = exc.message if isinstance(exc, DomainError) else f"{type(exc).__name__}: {exc}"
        return Outcome.failed, message[:2000], None
    except Exception as exc:
        _log_traceback(reporter)
        if isinstance(exc, _ResultError):
            return Outcome.failed, str(exc), None
        return Outcome.crashed, f"{type(exc).__name__}: {exc}"[:2000], None


class _ResultError(Exception):
    """The handler finished but returned something that cannot be stored as the job's result."""


def _json_result(result: Any) -> dict[str, Any]:
    if result is None:
        return {}
    if not isinstance(result, dict):
        raise _ResultError(f"handler returned {type(result).__name__}, not a dict")
    try:
        return json.loads(json.dumps(result, allow_nan=False))
    except (TypeError, ValueError) as exc:
        raise _ResultError(f"handler result is not JSON: {exc}") from None


def _flush_quietly(reporter: Reporter) -> None:
    with contextlib.suppress(JobCancelled, JobLost):  # end_attempt sees the same state and records it
        reporter.flush()


def _load_params(sessions: sessionmaker[Session], job_id: int) -> dict[str, Any]:
    with sessions() as db:
        return dict(db.scalar(select(Job.params).where(Job.id == job_id)) or {})


def _log_traceback(reporter: Reporter) -> None:
    """The current exception's traceback into the job's log, each line marked (only admins read them)."""
    lines = traceback.format_exc().rstrip().splitlines()[-TRACEBACK_LINES:]
    for line in lines:
        reporter.log(TRACEBACK_MARK + line)


class _LogForwarder(logging.Handler):
    """Copies warnings and errors that libraries log during the job into the job's log tail."""

    def __init__(self, reporter: Reporter) -> None:
        super().__init__(level=logging.WARNING)
        self._reporter = reporter

    def emit(self, record: logging.LogRecord) -> None:
        if record.name.startswith(("app.jobs.", "sqlalchemy")):
            return  # our own retry chatter would recurse into the writes it reports on
        try:
            self._reporter.log(f"{record.levelname} {record.name}: {record.getMessage()}")
        except Exception:
            self.handleError(record)
