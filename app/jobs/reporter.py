"""The reporter a handler gets: progress, metric curves, log lines and cancellation.

Training loops call it every step, so it buffers and writes at most once per ``flush_seconds``,
each write one fenced transaction (see ``lifecycle``). That same write is how the handler learns
about a cancellation: the call that finds it raises ``JobCancelled`` and writes nothing, and every
later call raises again, so a cancelled job writes nothing more. Writes survive a database restart
by retrying until ``retry_seconds`` pass.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable

from sqlalchemy.orm import Session, sessionmaker

from app.db import transaction
from app.jobs.dbretry import with_retry
from app.jobs.exceptions import JobCancelled, JobFailed, JobLost
from app.jobs.lifecycle import Claim, MetricPoint, record_report

__all__ = ["JobCancelled", "JobFailed", "JobLost", "Reporter"]

MAX_LINE = 2000  # characters kept of one log line
MAX_BUFFERED_POINTS = 1000  # flush early rather than hold an unbounded batch


class Reporter:
    """Buffered, fenced reporting for one attempt of one job."""

    def __init__(
        self,
        sessions: sessionmaker[Session],
        claim: Claim,
        *,
        flush_seconds: float = 1.0,
        retry_seconds: float = 120.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._sessions = sessions
        self._claim = claim
        self._flush_seconds = flush_seconds
        self._retry_seconds = retry_seconds
        self._clock = clock
        self._lock = threading.Lock()  # log lines may arrive from library threads via logging
        self._progress: tuple[float, str] | None = None
        self._message = ""
        self._points: list[MetricPoint] = []
        self._lines: list[str] = []
        self._last_flush = clock()
        self._stopped: BaseException | None = None

    @property
    def claim(self) -> Claim:
        return self._claim

    def progress(self, fraction: float, message: str | None = None) -> None:
        """Set progress (0 to 1, clamped) and optionally its message; a step boundary: may raise."""
        self._raise_if_stopped()
        if message is not None:
            self._message = message
        value = min(max(float(fraction), 0.0), 1.0) if math.isfinite(fraction) else 0.0
        self._progress = (value, self._message)
        self._maybe_flush()

    def metric(self, step: int, name: str, value: float) -> None:
        """Record one point of the curve ``name``; non-finite values are logged, not stored."""
        self._raise_if_stopped()
        value = float(value)
        if not math.isfinite(value):
            self.log(f"metric {name} at step {step} is {value}; not recorded")
            return
        with self._lock:
            self._points.append(MetricPoint(step=int(step), name=name, value=value))
            full = len(self._points) >= MAX_BUFFERED_POINTS
        if full:
            self.flush()
        else:
            self._maybe_flush()

    def log(self, line: str) -> None:
        """Append a line to the job's bounded log tail (written with the next flush)."""
        if self._stopped is not None:
            return  # after a cancellation nothing more is written; logging must not raise though
        with self._lock:
            self._lines.append(str(line)[:MAX_LINE])

    def cancelled(self) -> bool:
        """Whether the job was cancelled; asks the database (with a flush) at most once per interval."""
        try:
            self.check()
        except JobCancelled:
            return True
        return False

    def check(self) -> None:
        """A cancellation point: flush if due, raise ``JobCancelled`` / ``JobLost`` if stopped."""
        self._raise_if_stopped()
        self._maybe_flush()

    def flush(self) -> None:
        """Write everything buffered now, in one fenced transaction."""
        self._raise_if_stopped()
        with self._lock:
            progress, points, lines = self._progress, self._points, self._lines
            self._progress, self._points, self._lines = None, [], []
        self._last_flush = self._clock()

        def write() -> None:
            with transaction(self._sessions) as db:
                record_report(db, self._claim, progress=progress, metrics=points, log_lines=lines)

        try:
            with_retry(write, what=f"job {self._claim.job_id} report", deadline_seconds=self._retry_seconds)
        except (JobCancelled, JobLost) as exc:
            self._stopped = exc
            raise

    def take_lines(self) -> list[str]:
        """Hand over unwritten log lines (the attempt's last words, written with its outcome)."""
        with self._lock:
            lines, self._lines = self._lines, []
        return lines

    def _maybe_flush(self) -> None:
        if self._clock() - self._last_flush >= self._flush_seconds:
            self.flush()

    def _raise_if_stopped(self) -> None:
        if self._stopped is not None:
            raise type(self._stopped)(*self._stopped.args)
