"""A test-only job kind the dashboard offers: it reports progress and loss/accuracy curves.

The page tests (``test_pages.py``) import it to exercise the generated launch form's input types
(select, checkbox, optional number) that no real kind has all of; a server would load it through
``RLHF_JOB_MODULES=tests.dashboard.handlers``. The browser test launches the real ``reward`` kind.
"""

from __future__ import annotations

import time
from typing import Literal

from pydantic import BaseModel, Field

from app.jobs.context import JobContext
from app.jobs.registry import register


class CurvesParams(BaseModel):
    steps: int = Field(20, ge=1, le=1000, description="Training steps to simulate.")
    step_seconds: float = Field(0.05, ge=0, le=2, description="Pause per step.")
    learning_rate: float = Field(0.001, gt=0, le=1, description="Only shown on the form.")
    schedule: Literal["linear", "cosine"] = Field("linear", description="A choice, to test select inputs.")
    warmup: bool = Field(False, description="A flag, to test checkboxes.")
    seed: int | None = Field(None, ge=0, description="Optional: blank means none.")


@register("test.curves", CurvesParams, offered_in_ui=True)
def curves(ctx: JobContext[CurvesParams]) -> dict:
    """Takes ``steps`` steps, reporting a falling train_loss, a rising train_accuracy and progress."""
    steps = ctx.params.steps
    for step in range(1, steps + 1):
        time.sleep(ctx.params.step_seconds)
        ctx.reporter.metric(step, "train_loss", 2.0 / step)
        ctx.reporter.metric(step, "train_accuracy", step / steps)
        ctx.reporter.progress(step / steps, f"step {step} of {steps}")
    ctx.reporter.metric(steps, "val_accuracy", 0.9)
    ctx.reporter.log(f"trained {steps} steps")
    return {"steps": steps}
