"""Active learning's queue order: the ``rank_pairs`` job scores pending pairs with the newest reward model.

With ``RLHF_QUEUE_ORDER=uncertain`` annotators get first the pairs the model is least sure about, and
those annotators already disagree on (``app.training.reward.uncertainty``). Scoring runs a model, so it
happens here, in a short-lane job, never in the request that serves a pair: the job writes each pair's
``priority`` and the reward version that ranked it, and the periodic ``pool.rank`` task asks for it
whenever pending pairs have not been ranked by the newest reward version.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import func, or_, select, update
from sqlalchemy.orm import Session, aliased

from app.annotation.models import Choice, Judgement
from app.bounds import Id, Int
from app.config import Settings
from app.finetune.core import scoring
from app.jobs import service as jobs
from app.jobs.context import JobContext
from app.jobs.periodic import periodic
from app.jobs.registry import register
from app.lanes import Lane
from app.pool.models import Pair, PairStatus, Response
from app.prompts.models import Prompt
from app.registry.models import ModelKind, ModelVersion
from app.registry.service import latest_ready
from app.training.reward.uncertainty import uncertainty

KIND = "rank_pairs"
RANK_EVERY_SECONDS = 30.0
BATCH = 128  # pairs scored per progress report


class RankParams(BaseModel):
    model_config = ConfigDict(extra="forbid")

    reward_version_id: Id | None = Field(None, description="The reward model that ranks; default: the newest ready.")
    max_pairs: Int = Field(5000, ge=1, le=100_000, description="Pairs ranked per job; the periodic task asks for more.")


def _unranked(version_id: int) -> Any:
    """Pending pairs this version has not ranked yet."""
    return (Pair.status == PairStatus.pending) & or_(Pair.ranked_by_id.is_(None), Pair.ranked_by_id != version_id)


def _disputed(db: Session, pair_ids: list[int]) -> set[int]:
    """Of these pairs, those whose judgements so far pick different sides (a tie against a side counts)."""
    if not pair_ids:
        return set()
    query = (
        select(Judgement.pair_id)
        .where(Judgement.pair_id.in_(pair_ids), Judgement.choice.in_([Choice.a, Choice.b, Choice.tie]))
        .group_by(Judgement.pair_id)
        .having(func.count(func.distinct(Judgement.choice)) > 1)
    )
    return set(db.scalars(query))


@register(KIND, RankParams, offered_in_ui=False, lane=Lane.short)
def rank_pairs(ctx: JobContext[RankParams]) -> dict[str, Any]:
    """Score both answers of each unranked pending pair; store 4·p·(1 − p) (+1 if disputed) on the pair."""
    text_a, text_b = aliased(Response), aliased(Response)
    with ctx.sessions() as db:
        wanted = ctx.params.reward_version_id
        version = (
            scoring.usable_version(db, wanted, ModelKind.reward) if wanted else latest_ready(db, ModelKind.reward)
        )
        if version is None:
            return {"ranked": 0, "reason": "no reward model yet"}
        rows = db.execute(
            select(Pair.id, Prompt.messages, text_a.text, text_b.text)
            .join(Prompt, Prompt.id == Pair.prompt_id)
            .join(text_a, text_a.id == Pair.response_a_id)
            .join(text_b, text_b.id == Pair.response_b_id)
            .where(_unranked(version.id))
            .order_by(Pair.id)
            .limit(ctx.params.max_pairs)
        ).all()
        disputed = _disputed(db, [row[0] for row in rows])
        db.expunge(version)
    scorer = scoring.scorer_of(version)
    updates = []
    for start in range(0, len(rows), BATCH):
        batch = rows[start : start + BATCH]
        scores = scorer.score([(messages, a) for _, messages, a, _ in batch] + [(m, b) for _, m, _, b in batch])
        n = len(batch)
        for (pair_id, *_), ra, rb in zip(batch, scores[:n], scores[n:], strict=True):
            priority = uncertainty(ra, rb, disputed=pair_id in disputed)
            updates.append({"id": pair_id, "priority": priority, "ranked_by_id": version.id})
        ctx.reporter.progress((start + n) / len(rows), f"{start + n} of {len(rows)} pairs ranked by {version.name}")
    with ctx.transaction() as db:
        if updates:
            db.execute(update(Pair), updates)
    return {"ranked": len(updates), "reward_version_id": version.id, "disputed": len(disputed)}


def needs_ranking(db: Session) -> ModelVersion | None:
    """The newest ready reward version when some pending pair has not been ranked by it, else None."""
    version = latest_ready(db, ModelKind.reward)
    if version is None:
        return None
    waiting = db.scalar(select(Pair.id).where(_unranked(version.id)).limit(1))
    return version if waiting is not None else None


@periodic("pool.rank", every_seconds=RANK_EVERY_SECONDS)
def rank_when_needed(db: Session, settings: Settings) -> None:
    """With the uncertain queue order, ask for a ranking when pairs wait unranked by the newest reward model."""
    if settings.queue_order != "uncertain":
        return
    version = needs_ranking(db)
    if version is not None and jobs.in_flight(db, KIND) is None:
        jobs.enqueue(db, kind=KIND, params={"reward_version_id": version.id})
