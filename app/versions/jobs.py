"""The ``bootstrap`` job kind: what ``rlhf serve`` queues on a first start (see ``bootstrap``).

Imported by the web app too (to validate parameters when enqueueing), so it stays light: the
model is loaded only inside the job process, when the handler runs.
"""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from pydantic import BaseModel, Field

from app.auth.models import Role
from app.jobs.context import JobContext
from app.jobs.registry import register
from app.lanes import Lane
from app.registry.locations import ModelLocation
from app.versions import bootstrap


class BootstrapParams(BaseModel):
    model: ModelLocation = Field(
        "",
        max_length=500,
        description="Folder under the models folder, or a Hugging Face id where hub access is allowed; "
        "empty: SmolLM2-135M-Instruct, shipped.",
    )


# Admins only: it installs and promotes the policy every annotator then judges.
@register(bootstrap.BOOTSTRAP, BootstrapParams, offered_in_ui=False, audience=Role.admin, lane=Lane.generation)
def run_bootstrap(ctx: JobContext[BootstrapParams]) -> dict[str, Any]:
    """Install and promote the first policy and the starter prompt set, unless there are some."""
    ctx.reporter.progress(0.0, "installing the default policy")

    def say(line: str) -> None:
        ctx.reporter.log(line)

    with ctx.sessions() as db:
        report = bootstrap.bootstrap(db, ctx.settings, model=ctx.params.model, job_id=ctx.job_id, say=say)
    ctx.reporter.progress(1.0, str(report))
    return asdict(report)
