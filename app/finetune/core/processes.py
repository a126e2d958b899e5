"""How every training job calls its trainer: in the job process, or on the processes its parameters ask for.

One call site per job body (:func:`call_trainer`), whichever trainer it runs. With ``processes`` = 1 and no
``accelerate_config`` (:class:`~app.finetune.core.params.ProcessesParams`) the trainer runs here, as it
always has. Otherwise the job process keeps the database work it did before (it read the data; it registers
the version afterwards) and the trainer call itself goes to :func:`app.training.core.launcher.launch`:
torchrun (or accelerate launch) on a spec under the job's checkpoint folder, rank 0's progress, curves and
log lines relayed into the job's reporter, a cancellation ending every process, a rank's exception raised
here as if the trainer had raised it, so each job's own handling (a stop is a cancellation, a refused
setting a failure, anything else a crash that is retried) holds unchanged. The trainer's checkpoint is the
job's (``checkpoint_path``), so a retried attempt resumes from it, with as many processes or as few.

A trainer argument that cannot travel to other processes (a loaded scorer) is passed as an
:class:`~app.training.core.rank.OnEachRank` recipe, built here or on each rank.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from app.finetune.core.attempt import checkpoint_path
from app.finetune.core.params import ProcessesParams
from app.jobs.context import JobContext
from app.training.core.rank import OnEachRank  # torch-free: the web app imports the job bodies

if TYPE_CHECKING:
    from app.training.core.loop import Reporter


def call_trainer(
    ctx: JobContext[Any], trainer: Callable[..., Any], *args: Any, reporter: Reporter, **kwargs: Any
) -> Any:
    """``trainer(*args, reporter=reporter, **kwargs)`` on the processes ``ctx.params`` asks for; the result
    as the trainer returns it (from other processes: its ``model`` None, the model being in its folder)."""
    params: ProcessesParams = ctx.params
    if not params.launched:
        built = {key: value.build() if isinstance(value, OnEachRank) else value for key, value in kwargs.items()}
        return trainer(*args, reporter=reporter, **built)
    from app.training.core.launcher import Launch, launch

    run_dir = checkpoint_path(ctx).parent / f"processes-attempt{ctx.attempt}"
    how = Launch(processes=params.processes, accelerate_config=params.accelerate_config)
    try:
        return launch(trainer, args, kwargs, reporter=reporter, run_dir=run_dir, how=how)
    finally:
        with contextlib.suppress(OSError):  # the job's folder, when nothing else (no checkpoint) is left in it
            run_dir.parent.rmdir()
