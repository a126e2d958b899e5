"""The worker: claims jobs, runs each in a child process, heartbeats it, and cleans up after others.

Run it with ``rlhf worker`` (``rlhf serve`` starts one too); any number of workers on any number
of machines may share one PostgreSQL. A worker runs job slots by lane (``app.lanes``: by default one
each for generation, training and short jobs), each slot a thread with a loop of its own: claim the
oldest queued job of its lane, then supervise its child process until it ends — heartbeating,
killing it if the job is cancelled or was taken away, and recording a crash (exit code or signal;
an out-of-memory kill reads "killed by signal 9"). SIGTERM or SIGINT stops the worker cleanly: a
running job's process is stopped and the job handed back to the queue. One slot also does the
housekeeping (re-queue jobs whose worker died, run due periodic tasks), between its claims and during
its heartbeats. The slots share the worker's id: the worker is the process, and a job's fencing token is
its attempt, not the slot.
"""

from __future__ import annotations

import enum
import logging
import multiprocessing
import os
import secrets
import signal
import socket
import threading
import time
from collections.abc import Callable, Collection, Mapping
from functools import cache, partial
from multiprocessing.context import BaseContext
from multiprocessing.process import BaseProcess

from sqlalchemy.orm import Session, sessionmaker

from app.config import Settings
from app.db import make_engine, make_sessionmaker, transaction
from app.jobs import periodic, registry
from app.jobs.child import ChildSpec, child_main, warm_up
from app.jobs.dbretry import first_line, is_transient, with_retry
from app.jobs.lifecycle import Beat, Claim, Outcome, claim_next, end_attempt, heartbeat, release, requeue_stale
from app.lanes import Lane

log = logging.getLogger(__name__)

CHILD_POLL_SECONDS = 0.2
CANCEL_GRACE_SECONDS = 1.0  # a cancelled child gets this long to stop by itself before it is killed
STOP_GRACE_SECONDS = 5.0  # after SIGTERM, before SIGKILL


def default_worker_id() -> str:
    """Host, pid and a random suffix: unique across machines and across restarts of one process."""
    return f"{socket.gethostname()[:120]}:{os.getpid()}:{secrets.token_hex(3)}"


def run_worker(
    settings: Settings,
    *,
    worker_id: str | None = None,
    once: bool = False,
    stop_event: threading.Event | None = None,
    lanes: Mapping[Lane, int] | None = None,
) -> int:
    """Run a worker until ``stop_event`` is set or SIGTERM/SIGINT arrives; returns jobs run.

    ``lanes`` (default: the settings' ``worker_lanes``) says how many job slots of each lane it runs.
    With ``once`` it makes a single pass over all of its lanes' kinds (housekeeping, claim, run at most
    one job) and returns. Signal handlers are installed only when called from the main thread."""
    stop = stop_event or threading.Event()
    restore = _stop_on_signals(stop)
    registry.load_job_modules()
    lanes = dict(settings.lanes if lanes is None else lanes)
    slots = [lane for lane, count in lanes.items() for _ in range(count)]
    engine = make_engine(settings.resolved_database_url, pool_size=len(slots) + 1)
    sessions = make_sessionmaker(engine)
    worker_id = worker_id or default_worker_id()
    try:
        if once:
            return Worker(settings, sessions, worker_id=worker_id, stop=stop, lanes=lanes).run(once=True)
        workers = [
            Worker(settings, sessions, worker_id=worker_id, stop=stop, lanes=(lane,), housekeeper=i == 0)
            for i, lane in enumerate(slots)
        ]
        return _run_slots(workers, stop)
    finally:
        engine.dispose()
        restore()


def _run_slots(workers: list[Worker], stop: threading.Event) -> int:
    """Every slot but the first in a thread of its own, the first in this one; the total of jobs run.

    A slot that dies of a bug stops the others too: a worker missing a lane would look alive while that
    lane's jobs wait forever."""
    ran = [0] * len(workers)

    def slot(i: int) -> None:
        try:
            ran[i] = workers[i].run()
        except BaseException:
            log.exception("worker slot %s failed; stopping the worker", workers[i].name)
            stop.set()
            raise

    threads = [
        threading.Thread(target=slot, args=(i,), name=f"worker-{workers[i].name}", daemon=True)
        for i in range(1, len(workers))
    ]
    for thread in threads:
        thread.start()
    try:
        slot(0)
    finally:
        stop.set()
        for thread in threads:
            thread.join()
    return sum(ran)


@cache
def job_process_context() -> BaseContext:
    """Where job processes come from (set up once per process): a fork server, else ``spawn``.

    The fork server is a clean single-threaded process, started once per worker, that has
    imported only ``app.jobs.preload`` and ``app.jobs.child`` (ORM, drivers; never torch): each
    job process starts in milliseconds yet as clean as under ``spawn``. Handler modules, and
    torch with them, are imported by each job process after the fork. Like ``spawn``, each job process also
    imports the caller's ``__main__`` module: call ``run_worker`` under ``if __name__ == "__main__"``
    and keep the entry module's own imports light."""
    if "forkserver" in multiprocessing.get_all_start_methods():
        context = multiprocessing.get_context("forkserver")
        context.set_forkserver_preload(["app.jobs.preload", "app.jobs.child"])
        # Start it now, not while a claimed job waits without heartbeats: the first job process
        # waits until the server has finished its imports, which can take seconds.
        warm = context.Process(target=warm_up, name="forkserver-warm-up")
        warm.start()
        warm.join()
        return context
    return multiprocessing.get_context("spawn")


def _stop_on_signals(stop: threading.Event) -> Callable[[], None]:
    if threading.current_thread() is not threading.main_thread():
        return lambda: None
    previous = {sig: signal.getsignal(sig) for sig in (signal.SIGTERM, signal.SIGINT)}

    def handle(signum: int, _frame: object) -> None:
        log.info("worker received %s; stopping", signal.Signals(signum).name)
        stop.set()

    for sig in previous:
        signal.signal(sig, handle)

    def restore() -> None:
        for sig, handler in previous.items():
            signal.signal(sig, handler)

    return restore


def describe_exit(exitcode: int | None) -> str:
    """How a child process ended, as the job's error."""
    if exitcode is None:
        return "the job process did not end"
    if exitcode < 0:
        name = signal.Signals(-exitcode).name if -exitcode in signal.valid_signals() else "?"
        hint = "; out of memory?" if -exitcode == signal.SIGKILL else ""
        return f"killed by signal {-exitcode} ({name}{hint})"
    return f"the job process exited with code {exitcode}"


class Ending(enum.Enum):
    """How supervising a job process ended."""

    exited = "exited"  # the process ended by itself
    stop = "stop"  # the worker is shutting down
    cancel = "cancel"  # cancelled, and the process did not stop within its grace period
    lost = "lost"  # another worker took the job over


class Worker:
    """One job slot's loop: claims the kinds of its ``lanes`` (all when None), one job at a time;
    ``run_worker`` builds one per slot. Only a ``housekeeper`` re-queues dead jobs and runs periodic tasks."""

    def __init__(
        self,
        settings: Settings,
        sessions: sessionmaker[Session],
        *,
        worker_id: str,
        stop: threading.Event,
        lanes: Collection[Lane] | None = None,
        housekeeper: bool = True,
    ) -> None:
        self.settings = settings
        self.sessions = sessions
        self.worker_id = worker_id
        self.stop = stop
        self.lanes = None if lanes is None else tuple(lanes)
        self.housekeeper = housekeeper
        self.name = "all" if self.lanes is None else "+".join(self.lanes)
        self._healthy_since = time.monotonic()
        self._last_housekeeping = float("-inf")
        self._processes = job_process_context()

    def kinds(self) -> list[str]:
        return registry.names(self.lanes)

    def run(self, *, once: bool = False) -> int:
        log.info("worker %s slot %s started; kinds: %s", self.worker_id, self.name, ", ".join(self.kinds()) or "none")
        ran = 0
        while not self.stop.is_set():
            try:
                worked = self.step()
            except Exception:
                log.exception("worker %s: pass failed", self.worker_id)
                worked = False
            ran += int(worked)
            if once:
                break
            if not worked:
                self.stop.wait(self.settings.worker_poll_seconds)
        log.info("worker %s slot %s stopped after %d job(s)", self.worker_id, self.name, ran)
        return ran

    def step(self) -> bool:
        """One pass: housekeeping, then claim and run one job; True if a job ran."""
        self.housekeeping(force=True)
        claim = self.claim()
        if claim is None:
            return False
        self.supervise(claim)
        return True

    def _db(self, what: str, fn: Callable[[Session], object]) -> object | None:
        """Run ``fn`` in one transaction; a database outage is logged and reported as None."""
        try:
            with transaction(self.sessions) as db:
                result = fn(db)
        except Exception as exc:
            if not is_transient(exc):
                log.exception("worker %s: %s failed", self.worker_id, what)
                return None
            log.warning("worker %s: %s: database unavailable (%s)", self.worker_id, what, first_line(exc))
            self._healthy_since = time.monotonic()
            return None
        return result

    def housekeeping(self, *, force: bool = False) -> None:
        """Re-queue other workers' dead jobs and run due periodic tasks (at most once a heartbeat).

        After its own database outage the worker waits one lease before judging heartbeats:
        the other workers could not write theirs either, and are not dead for it."""
        now = time.monotonic()
        if not self.housekeeper or (not force and now - self._last_housekeeping < self.settings.job_heartbeat_seconds):
            return
        self._last_housekeeping = now
        if now - self._healthy_since >= self.settings.job_lease_seconds:
            found = self._db("re-queue stale jobs", partial(requeue_stale, exclude_worker=self.worker_id))
            if found:
                log.warning("worker %s: re-queued or failed jobs with expired leases: %s", self.worker_id, found)
        try:
            periodic.run_due(self.sessions, self.settings, holder=self.worker_id)
        except Exception as exc:
            log.warning("worker %s: periodic tasks skipped (%s)", self.worker_id, first_line(exc))

    def claim(self) -> Claim | None:
        """Take the oldest queued job this worker can run; None when there is none or no database."""
        take = partial(
            claim_next, worker_id=self.worker_id, kinds=self.kinds(), lease_seconds=self.settings.job_lease_seconds
        )
        result = self._db("claim", take)
        return result if isinstance(result, Claim) else None

    def supervise(self, claim: Claim) -> None:
        """Run the claimed attempt in a child process and see that its ending is recorded."""
        try:
            process = self._start_child(claim)
        except Exception as exc:
            log.exception("job %d: could not start its process", claim.job_id)
            self._record(
                claim, partial(end_attempt, claim=claim, outcome=Outcome.crashed, error=f"could not start: {exc}")
            )
            return
        ending = Ending.stop
        try:
            ending = self._watch(process, claim)
        finally:
            if process.is_alive():
                self._kill(process, gently=ending is Ending.stop)
        self._settle(claim, process.exitcode, ending)

    def _start_child(self, claim: Claim) -> BaseProcess:
        spec = ChildSpec(
            claim=claim,
            module=registry.get_kind(claim.kind).module,
            database_url=self.settings.resolved_database_url,
            settings=self.settings,
            worker_pid=os.getpid(),
            flush_seconds=min(1.0, self.settings.job_heartbeat_seconds),
        )
        process = self._processes.Process(target=child_main, args=(spec,), name=f"job-{claim.job_id}", daemon=False)
        process.start()
        log.info("job %d (%s) attempt %d: running in pid %s", claim.job_id, claim.kind, claim.attempt, process.pid)
        return process

    def _watch(self, process: BaseProcess, claim: Claim) -> Ending:
        """Wait for the child while heartbeating; says whether it ended or must be stopped."""
        next_beat = time.monotonic() + self.settings.job_heartbeat_seconds
        cancel_at: float | None = None
        while True:
            process.join(CHILD_POLL_SECONDS)
            if process.exitcode is not None:
                return Ending.exited
            if self.stop.is_set():
                return Ending.stop
            now = time.monotonic()
            if now >= next_beat:
                next_beat = now + self.settings.job_heartbeat_seconds
                beat = self._db("heartbeat", partial(heartbeat, claim=claim))
                if beat is Beat.lost:
                    process.join(CANCEL_GRACE_SECONDS)  # it may just have recorded its own ending
                    return Ending.exited if process.exitcode is not None else Ending.lost
                if beat is Beat.cancel and cancel_at is None:
                    cancel_at = now + CANCEL_GRACE_SECONDS
                if beat is not None:
                    self.housekeeping()
            if cancel_at is not None and now >= cancel_at:
                return Ending.cancel

    def _kill(self, process: BaseProcess, *, gently: bool) -> None:
        """SIGTERM then SIGKILL when stopping; straight SIGKILL for a job that had its chance."""
        if gently:
            process.terminate()
            process.join(STOP_GRACE_SECONDS)
        if process.is_alive():
            process.kill()
            process.join()

    def _settle(self, claim: Claim, exitcode: int | None, ending: Ending) -> None:
        """Record what the child could not: a crash, a cancel-kill, or a hand-back on stop.

        Every write is fenced, so if the child recorded its own outcome first, nothing changes."""
        if ending is Ending.lost:
            log.warning("job %d attempt %d: taken over by another worker; stopped", claim.job_id, claim.attempt)
            return
        if ending is Ending.exited and exitcode == 0:
            return
        if ending is Ending.stop:
            self._record(claim, partial(release, claim=claim, reason=f"worker {self.worker_id} stopped"), 15.0)
        elif ending is Ending.cancel:
            self._record(claim, partial(end_attempt, claim=claim, outcome=Outcome.cancelled))
        else:
            error = describe_exit(exitcode)
            log.warning("job %d attempt %d: %s", claim.job_id, claim.attempt, error)
            self._record(claim, partial(end_attempt, claim=claim, outcome=Outcome.crashed, error=error))

    def _record(self, claim: Claim, action: Callable[[Session], object], deadline: float | None = None) -> None:
        """One fenced write about ``claim``, retried through a database outage for ``deadline`` s."""
        deadline = deadline if deadline is not None else float(max(self.settings.job_lease_seconds, 60))

        def write() -> None:
            with transaction(self.sessions) as db:
                action(db)

        try:
            with_retry(write, what=f"job {claim.job_id} settle", deadline_seconds=deadline)
        except Exception as exc:
            log.error("job %d: could not record its ending (%s); its lease will expire", claim.job_id, first_line(exc))
