"""The pool's job kind and periodic task: ``generate`` adds pairs; ``pool.refill`` keeps it full.

Imported by every process that enqueues or runs jobs (the web app too), so it stays light: the
handler imports the generation side (and with it torch) only when it runs, in the job process.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field
from sqlalchemy.orm import Session

from app.bounds import Float, Int, Seed
from app.config import Settings
from app.jobs.context import JobContext
from app.jobs.periodic import periodic
from app.jobs.registry import register
from app.lanes import Lane
from app.pool import service
from app.pool.k_sync import sync_pending_k

# The refill task only looks at the database and maybe enqueues a job, so it can run often.
REFILL_EVERY_SECONDS = 10.0


class GenerateParams(BaseModel):
    """Parameters of a ``generate`` job; unset sampling fields take the ``RLHF_POOL_*`` settings."""

    pairs: Int | None = Field(
        None, ge=1, le=10_000, description="Pairs to add; default: fill the pool up to RLHF_POOL_TARGET."
    )
    min_pairs: Int = Field(
        0, ge=0, le=10_000, description="Add at least this many even when the pool is full (a nudge)."
    )
    temperature: Float | None = Field(None, ge=0, le=5, description="Sampling temperature; 0 is greedy.")
    top_p: Float | None = Field(None, gt=0, le=1, description="Nucleus sampling mass.")
    max_new_tokens: Int | None = Field(None, ge=1, le=8192, description="Longest response, in tokens.")
    samples_per_prompt: Int | None = Field(
        None, ge=2, le=16, description="Responses sampled per prompt; the two most different are paired."
    )
    cross_version_share: Float | None = Field(
        None, ge=0, le=1, description="Share of pairs with B from another ready version."
    )
    seed: Seed | None = Field(None, description="Makes the job's sampling reproducible.")
    reason: str = Field("manual", max_length=50, description="Who asked: refill, nudge, promotion, manual.")


@register(service.GENERATE, GenerateParams, lane=Lane.generation)
def generate(ctx: JobContext[GenerateParams]) -> dict[str, Any]:
    """Sample response pairs from the promoted policy into the pool."""
    from app.pool.runner import run_generate

    return run_generate(ctx)


@periodic("pool.refill", every_seconds=REFILL_EVERY_SECONDS)
def refill_pool(db: Session, settings: Settings) -> None:
    """Bring waiting pairs to their set's current k, then enqueue a generate job when the promoted policy
    has fewer pending pairs than the target (a raised k may have emptied it)."""
    sync_pending_k(db, settings)
    service.refill(db, settings)
