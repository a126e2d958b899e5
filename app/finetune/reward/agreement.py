"""A reward model's agreement with the human judgements made after it was trained, scored in a job.

The Models page shows this figure beside each reward version. Computing it loads and runs the model,
which stalled every other request of a 2-core server for 20 s when the page did it itself, so a web
process never does: the ``reward_agreement`` job (short lane) scores the version and stores the figure
on it (``metrics["human_agreement"]``); the page reads the stored figure, sees from a count whether
judgements have come since, and asks for the job when they have (:func:`request`).
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy.orm import Session

from app.auth.models import User
from app.bounds import Id
from app.db import utcnow
from app.finetune.core import scoring
from app.finetune.core.dataset import DataFilters, count_judged_pairs
from app.jobs import service as jobs
from app.jobs.context import JobContext
from app.jobs.models import Job
from app.jobs.registry import register
from app.lanes import Lane
from app.registry.models import ModelKind, ModelVersion
from app.registry.service import get_version

KIND = "reward_agreement"
METRIC = "human_agreement"


class AgreementParams(BaseModel):
    model_config = ConfigDict(extra="forbid")

    version_id: Id = Field(description="The reward version scored against the judgements made after it.")


@register(KIND, AgreementParams, offered_in_ui=False, lane=Lane.short)
def agreement_job(ctx: JobContext[AgreementParams]) -> dict[str, Any]:
    """Score the version on every A/B judgement since it was trained; store the figure on the version."""
    version_id = ctx.params.version_id
    ctx.reporter.progress(0.0, "scoring the later judgements")
    with ctx.sessions() as db:
        result = scoring.agreement(db, version_id=version_id)
    figure = {"rate": result.rate, "judgements": result.judgements, "scored_at": utcnow().isoformat()}
    with ctx.transaction() as db:
        version = db.get(ModelVersion, version_id)
        if version is not None:  # deleted meanwhile: nothing to store on
            version.metrics = {**(version.metrics or {}), METRIC: figure}
    ctx.reporter.progress(1.0, f"{result.agreed} of {result.judgements} judgements ranked as the annotators did")
    return {"version_id": version_id, **figure}


def figure(db: Session, *, version_id: int) -> dict[str, Any]:
    """What the page shows, from the database alone: the stored figure (rate and judgements None before
    the first scoring), the judgements made since the version was trained, whether the figure is behind
    them (``stale``), and the scoring job in flight."""
    version = get_version(db, version_id, kind=ModelKind.reward)
    stored = (version.metrics or {}).get(METRIC) or {}
    later = count_judged_pairs(db, DataFilters(since=version.created_at))
    job = jobs.in_flight(db, KIND, version_id=version_id)
    return {
        "version_id": version_id,
        "rate": stored.get("rate"),
        "judgements": stored.get("judgements"),
        "scored_at": stored.get("scored_at"),
        "later_judgements": later,
        "stale": stored.get("judgements") != later,
        "job_id": None if job is None else job.id,
    }


def request(db: Session, *, version_id: int, actor: User | None) -> Job:
    """The scoring job of this version: the one in flight, else a new one (not committed)."""
    get_version(db, version_id, kind=ModelKind.reward)
    job = jobs.in_flight(db, KIND, version_id=version_id)
    return job or jobs.enqueue(db, kind=KIND, params={"version_id": version_id}, created_by=actor)
