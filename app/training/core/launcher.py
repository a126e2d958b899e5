"""Run a trainer on several processes from the process that asked for it: the job process of a training job.

The job process keeps the database work (it read the data, it registers the version at the end); the
training itself runs under ``torchrun --standalone --nproc_per_node N`` (one machine, DDP over gloo on the
CPU or NCCL on GPUs), or under ``accelerate launch --config_file F`` when the job names an accelerate config
(DeepSpeed, FSDP, several machines). Every process runs :mod:`app.training.core.rank` on the spec written
here, so the trainer is called exactly as in one process and shards its data and all-reduces its gradients
through accelerate.

While it runs, :func:`launch` relays rank 0's events (progress, metrics, log lines, flushes) into the
caller's reporter and polls its ``should_stop``. A stop ends the whole run: SIGTERM to the launcher's
process group (torchrun then stops its ranks), SIGKILL after a grace period, and then any rank still alive
(each runs in a session of its own) by its pid; it then raises :class:`TrainingStopped`, as a trainer in
one process does. A rank that raised makes :func:`launch` raise the same exception, its traceback in the
log; a run that died without one (killed by a signal, out of memory) raises ``RuntimeError`` with the
launcher's last lines. The trainers' checkpoints are written by rank 0 at the path the caller passed, so a
re-run after a crash resumes from them whatever the number of processes.

    result = launch(train_reward_model, (examples, config, folder), {"checkpoint_path": ckpt},
                    reporter=reporter, run_dir=tmp / "run", how=Launch(processes=2))
"""

from __future__ import annotations

import contextlib
import json
import os
import pickle
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from app.training.core.loop import Reporter, TrainingStopped
from app.training.core.rank import (
    EVENTS,
    FLUSHED,
    JOB_PID_ENV,
    RESULT,
    SPEC,
    LaunchSpec,
    error_file,
    path_of,
    pid_file,
    write_atomically,
)

POLL_SECONDS = 0.2  # how often the job process relays events and asks whether to stop
STOP_GRACE_SECONDS = 10.0  # torchrun's time to stop its ranks after SIGTERM, before SIGKILL
RANK_EXIT_SECONDS = 5.0  # a rank's time to notice its launcher is gone, before it is killed by pid
LOG_TAIL_LINES = 20  # of the launcher's output, logged when the run dies without a rank's error
TRACEBACK_LINES = 40


class RankFailed(Exception):
    """What a launched run's failure came from: which rank raised (the exception itself is re-raised)."""


class RunStopped(TrainingStopped):
    """The caller asked to stop and the processes were ended at once: unlike a trainer's own stop, no
    checkpoint is written on the way out (a cancelled job is not resumed); the last periodic one stays."""

    def __init__(self, step: int) -> None:
        Exception.__init__(self, f"training processes stopped on request after step {step}")
        self.step = step


@dataclass(frozen=True)
class Launch:
    """How to start the processes: ``processes`` on this machine under torchrun, or ``accelerate launch``
    with ``accelerate_config`` (whose own ``num_processes`` a ``processes`` above 1 overrides)."""

    processes: int = 2
    accelerate_config: str | None = None

    def command(self, run_dir: Path) -> list[str]:
        """The launcher's command line; every process runs ``python -m app.training.core.rank RUN_DIR``."""
        entry = ["-m", "app.training.core.rank", str(run_dir)]
        if self.accelerate_config:
            count = ["--num_processes", str(self.processes)] if self.processes > 1 else []
            launcher = ["-m", "accelerate.commands.launch", "--config_file", self.accelerate_config, *count]
        else:
            launcher = ["-m", "torch.distributed.run", "--standalone", "--nproc_per_node", str(self.processes)]
        return [sys.executable, *launcher, *entry]


class _Relay:
    """Rank 0's events, read as they are appended, into ``reporter``; a flush is answered once written."""

    def __init__(self, run_dir: Path, reporter: Reporter) -> None:
        self.run_dir, self.reporter = run_dir, reporter
        self.offset = 0
        self.step = 0  # the last step rank 0 reported a metric at

    def pump(self) -> None:
        """Relay every complete line written since the last call."""
        try:
            with (self.run_dir / EVENTS).open("rb") as events:
                events.seek(self.offset)
                data = events.read()
        except FileNotFoundError:
            return
        end = data.rfind(b"\n")
        if end < 0:
            return
        self.offset += end + 1
        for line in data[:end].splitlines():
            self._apply(json.loads(line))

    def _apply(self, event: dict[str, Any]) -> None:
        if "progress" in event:
            self.reporter.progress(*event["progress"])
        elif "metric" in event:
            self.step = int(event["metric"][0])
            self.reporter.metric(*event["metric"])
        elif "log" in event:
            self.reporter.log(event["log"])
        elif "flush" in event:
            self.reporter.flush()
            write_atomically(self.run_dir / FLUSHED, str(event["flush"]).encode())


def launch(
    trainer: Callable[..., Any],
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
    *,
    reporter: Reporter,
    run_dir: Path,
    how: Launch,
) -> Any:
    """``trainer(*args, reporter=…, **kwargs)`` on ``how.processes`` processes; returns rank 0's result (its
    ``model`` None: the model is in the saved folder). ``run_dir`` is emptied first and removed unless the
    run failed (its files then help to see why)."""
    shutil.rmtree(run_dir, ignore_errors=True)
    run_dir.mkdir(parents=True)
    (run_dir / SPEC).write_bytes(pickle.dumps(LaunchSpec(path_of(trainer), args, kwargs)))
    command = how.command(run_dir)
    env = {**os.environ, JOB_PID_ENV: str(os.getpid()), "TOKENIZERS_PARALLELISM": "false"}
    with (run_dir / "launcher.log").open("wb") as output:
        process = subprocess.Popen(
            command, env=env, stdin=subprocess.DEVNULL, stdout=output, stderr=subprocess.STDOUT, start_new_session=True
        )
    reporter.log(f"training on {how.processes} processes (launcher pid {process.pid}): {' '.join(command)}")
    relay = _Relay(run_dir, reporter)
    try:
        while process.poll() is None:
            relay.pump()
            if reporter.should_stop():
                raise RunStopped(relay.step)
            time.sleep(POLL_SECONDS)
        relay.pump()
        result = _outcome(process.returncode, run_dir, reporter)
    finally:
        if process.poll() is None:
            stop_run(process, run_dir)
    shutil.rmtree(run_dir, ignore_errors=True)
    return result


def stop_run(process: subprocess.Popen[bytes], run_dir: Path) -> None:
    """End the launcher and every rank: SIGTERM to the launcher's group, SIGKILL after the grace period,
    then any rank still alive by its recorded pid (checked to be this run's)."""
    _signal_group(process.pid, signal.SIGTERM)
    try:
        process.wait(STOP_GRACE_SECONDS)
    except subprocess.TimeoutExpired:
        _signal_group(process.pid, signal.SIGKILL)
        process.wait()
    deadline = time.monotonic() + RANK_EXIT_SECONDS
    while (ranks := rank_pids(run_dir)) and time.monotonic() < deadline:
        time.sleep(0.05)
    for pid in ranks:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


def _signal_group(pgid: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pgid, sig)


def rank_pids(run_dir: Path) -> list[int]:
    """The pids of this run's ranks that are still running (a zombie or a reused pid does not count)."""
    alive = []
    for path in run_dir.glob("pid-rank*"):
        try:
            pid = int(path.read_text())
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except (OSError, ValueError, IndexError):
            continue
        if str(run_dir).encode() in cmdline and state != "Z":
            alive.append(pid)
    return alive


def _outcome(returncode: int, run_dir: Path, reporter: Reporter) -> Any:
    """Rank 0's result after a clean exit; otherwise the first rank's exception, raised again."""
    if returncode == 0 and (run_dir / RESULT).is_file():
        return pickle.loads((run_dir / RESULT).read_bytes())
    failures = sorted(run_dir.glob("error-rank*.pkl"), key=lambda path: path.stat().st_mtime)
    if failures:
        rank = int(failures[0].stem.removeprefix("error-rank"))
        exc, text = pickle.loads(error_file(run_dir, rank).read_bytes())
        reporter.log(f"rank {rank} of the training processes failed:")
        for line in text.rstrip().splitlines()[-TRACEBACK_LINES:]:
            reporter.log(f"  {line}")
        raise exc from RankFailed(f"rank {rank} raised {type(exc).__name__}")
    tail = (run_dir / "launcher.log").read_text(errors="replace").rstrip().splitlines()[-LOG_TAIL_LINES:]
    for line in tail:
        reporter.log(f"launcher: {line}")
    raise RuntimeError(f"the training processes exited with code {returncode} and no error of their own: {tail[-1:]}")


__all__ = ["Launch", "RankFailed", "RunStopped", "launch", "pid_file", "rank_pids", "stop_run"]
