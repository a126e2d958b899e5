"""Test-only job kinds. Worker processes import this module (``RLHF_JOB_MODULES``), and each
job's child process imports it by the handler's module name, so the kinds exist everywhere.

Runs are recorded in ``<marker_dir>/runs.log`` as ``job attempt pid`` lines, and a running
attempt holds an exclusive ``flock`` on ``<marker_dir>/job-<id>.lock``: if another live attempt
of the same job held it, the line ``OVERLAP`` is written, which tests assert never happens.
"""

from __future__ import annotations

import fcntl
import os
import signal
import time
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, Field
from sqlalchemy import select

from app.auth.models import Role
from app.errors import Invalid
from app.jobs.context import JobContext
from app.jobs.exceptions import JobFailed
from app.jobs.registry import register
from app.registry.models import ModelKind, ModelVersion


class RecordParams(BaseModel):
    value: int = 0
    marker_dir: str | None = None
    steps: int = Field(0, ge=0, le=10_000)
    step_seconds: float = Field(0.0, ge=0, le=5)


def _append(marker_dir: str | None, line: str) -> None:
    if marker_dir:
        with open(Path(marker_dir) / "runs.log", "a") as f:
            f.write(line + "\n")


def _exclusive(ctx: JobContext[RecordParams]) -> object | None:
    if not ctx.params.marker_dir:
        return None
    handle = open(Path(ctx.params.marker_dir) / f"job-{ctx.job_id}.lock", "w")  # noqa: SIM115 - held for the run
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        _append(ctx.params.marker_dir, "OVERLAP")
    return handle


@register("test.record", RecordParams, offered_in_ui=False)
def record(ctx: JobContext[RecordParams]) -> dict:
    """Records that it ran, then takes ``steps`` steps reporting progress and a loss curve."""
    lock = _exclusive(ctx)
    _append(ctx.params.marker_dir, f"{ctx.job_id} {ctx.attempt} {os.getpid()}")
    for step in range(1, ctx.params.steps + 1):
        time.sleep(ctx.params.step_seconds)
        ctx.reporter.metric(step, "loss", 1.0 / step)
        ctx.reporter.progress(step / ctx.params.steps, f"step {step}")
    ctx.reporter.log(f"done with value {ctx.params.value}")
    del lock
    return {"value": ctx.params.value, "attempt": ctx.attempt}


class CrashParams(BaseModel):
    mode: Literal["raise", "exit", "kill", "fail", "bad_result", "invalid_config", "refused"]


@register("test.crash", CrashParams, offered_in_ui=False)
def crash(ctx: JobContext[CrashParams]) -> dict:
    """Fails the way ``mode`` says, every time."""
    mode = ctx.params.mode
    ctx.reporter.log(f"about to {mode}")
    if mode == "raise":
        raise RuntimeError("boom")
    if mode == "exit":
        os._exit(3)
    if mode == "kill":
        os.kill(os.getpid(), signal.SIGKILL)  # what the out-of-memory killer does
    if mode == "fail":
        raise JobFailed("no data to train on")
    if mode == "invalid_config":  # what a trainer config's own checks raise
        raise ValueError("num_minibatches: must divide batch_size")
    if mode == "refused":  # what a service raises at a value it will not take
        raise Invalid("model", "has no chat template")
    return {"when": object()}  # type: ignore[dict-item] - not JSON


class StubbornParams(BaseModel):
    seconds: float = Field(30.0, ge=0, le=120)
    marker_dir: str | None = None


@register("test.stubborn", StubbornParams, offered_in_ui=False)
def stubborn(ctx: JobContext[StubbornParams]) -> dict:
    """Never looks at its reporter: only the worker's heartbeat can notice a cancel."""
    _append(ctx.params.marker_dir, f"{ctx.job_id} {ctx.attempt} {os.getpid()}")
    time.sleep(ctx.params.seconds)
    return {}


class EffectParams(BaseModel):
    crash_on_first_attempt: bool = True


@register("test.effect", EffectParams, offered_in_ui=False)
def effect(ctx: JobContext[EffectParams]) -> dict:
    """Registers a model keyed by its job id (idempotent), then crashes on its first attempt."""
    with ctx.transaction() as db:
        existing = db.scalar(select(ModelVersion).where(ModelVersion.created_by_job_id == ctx.job_id))
        if existing is None:
            db.add(ModelVersion(name=f"test-effect-{ctx.job_id}", kind=ModelKind.reward, created_by_job_id=ctx.job_id))
    if ctx.params.crash_on_first_attempt and ctx.attempt == 1:
        os._exit(1)
    return {"registered": True}


class OfferedParams(BaseModel):
    size: int = Field(..., ge=1, le=100)
    name: str = "x"


@register("test.offered", OfferedParams, offered_in_ui=True)
def offered(ctx: JobContext[OfferedParams]) -> dict:
    """A kind the API lists, to test parameter validation over HTTP."""
    return {"size": ctx.params.size}


@register("test.admin_only", OfferedParams, offered_in_ui=True, audience=Role.admin)
def admin_only(ctx: JobContext[OfferedParams]) -> dict:
    """A kind the dashboard offers to admins alone, to test that its audience is enforced."""
    return {"size": ctx.params.size}
