"""The pair pool: how full it is, keeping it full, and what a promotion does to it.

A pair belongs to the policy that wrote its response A (for a cross-version pair, B comes from
another version). "The pool" is the pending pairs of the promoted policy; the periodic refill
task, a nudge from an empty annotate page and a promotion all go through ``ensure_generating``,
which enqueues a ``generate`` job unless one is already queued or running. Service functions
leave the commit to the caller except ``nudge`` and ``after_promotion``, which are side effects
run after the caller's own commit.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from sqlalchemy import and_, func, select, update
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, aliased, joinedload

from app.config import Settings
from app.jobs import service as jobs
from app.jobs.models import Job, JobStatus
from app.pool.models import Pair, PairStatus, Response
from app.pool.plan import active_prompt_count
from app.registry import service as registry
from app.registry.models import ModelKind, ModelStatus, ModelVersion

if TYPE_CHECKING:  # the generation side imports torch; the web app must not
    from app.pool.generate import Candidate, Sampling

log = logging.getLogger(__name__)

GENERATE = "generate"
PAGE_SIZE = 50


@dataclass(frozen=True)
class VersionCount:
    """Pending pairs whose response A a version wrote, same-version and cross-version."""

    version_id: int | None
    name: str
    status: str
    same_version: int
    cross_version: int

    @property
    def total(self) -> int:
        return self.same_version + self.cross_version


def pending_count(db: Session, *, version_id: int) -> int:
    """Pending pairs whose response A the version wrote: its share of the pool."""
    query = (
        select(func.count())
        .select_from(Pair)
        .join(Response, Response.id == Pair.response_a_id)
        .where(Pair.status == PairStatus.pending, Response.policy_version_id == version_id)
    )
    return db.scalar(query) or 0


def deficit(db: Session, settings: Settings) -> int:
    """Pairs missing for the promoted policy to reach the target; 0 without a promoted policy."""
    policy = registry.promoted_policy(db)
    if policy is None:
        return 0
    return max(settings.pool_target - pending_count(db, version_id=policy.id), 0)


def pool_counts(db: Session) -> list[VersionCount]:
    """Pending pairs per policy version (by response A), promoted first; imported pairs as 'none'."""
    a = aliased(Response)
    rows = db.execute(
        select(a.policy_version_id, Pair.cross_version, func.count())
        .join(a, a.id == Pair.response_a_id)
        .where(Pair.status == PairStatus.pending)
        .group_by(a.policy_version_id, Pair.cross_version)
    ).all()
    counts: dict[int | None, list[int]] = {}
    for version_id, cross, n in rows:
        counts.setdefault(version_id, [0, 0])[1 if cross else 0] += n
    versions = {
        v.id: v
        for v in db.scalars(select(ModelVersion).where(ModelVersion.id.in_([k for k in counts if k is not None])))
    }
    result = []
    for version_id, (same, cross) in counts.items():
        version = versions.get(version_id) if version_id is not None else None
        name, status = (version.name, version.status.value) if version else ("(no policy version)", "")
        result.append(VersionCount(version_id, name, status, same, cross))
    return sorted(result, key=lambda c: (c.status != ModelStatus.promoted.value, -(c.version_id or 0)))


def list_pending(db: Session, *, limit: int = PAGE_SIZE, offset: int = 0) -> tuple[list[Pair], int]:
    """One page of pending pairs, newest first, with prompt and both responses loaded."""
    total = db.scalar(select(func.count()).select_from(Pair).where(Pair.status == PairStatus.pending)) or 0
    page = db.scalars(
        select(Pair)
        .where(Pair.status == PairStatus.pending)
        .options(joinedload(Pair.prompt), joinedload(Pair.response_a), joinedload(Pair.response_b))
        .order_by(Pair.id.desc())
        .limit(min(limit, 500))
        .offset(offset)
    )
    return list(page), total


def generation_job(db: Session, *, other_than: int | None = None) -> Job | None:
    """A generate job that is queued or running, if any (but job ``other_than``)."""
    query = select(Job).where(Job.kind == GENERATE, Job.status.in_((JobStatus.queued, JobStatus.running)))
    if other_than is not None:
        query = query.where(Job.id != other_than)
    return db.scalar(query.order_by(Job.id).limit(1))


def ensure_generating(
    db: Session, settings: Settings, *, min_pairs: int = 0, reason: str = "refill", finishing: int | None = None
) -> Job | None:
    """Enqueue a generate job (not committed) when the pool needs pairs and none is on its way.

    The promoted policy's row is locked first, so concurrent callers (a nudge and the periodic
    task) queue behind each other on PostgreSQL and see each other's job; SQLite serialises
    writers anyway. ``finishing``: the generate job calling as it ends, which does not count as on its way."""
    policy = registry.promoted_policy(db)
    if policy is None:
        return None
    db.scalar(select(ModelVersion.id).where(ModelVersion.id == policy.id).with_for_update())
    if generation_job(db, other_than=finishing) is not None or active_prompt_count(db) == 0:
        return None
    if min_pairs <= 0 and deficit(db, settings) == 0:
        return None
    return jobs.enqueue(db, kind=GENERATE, params={"min_pairs": min_pairs, "reason": reason})


def refill(db: Session, settings: Settings, *, finishing: int | None = None) -> Job | None:
    """Top the pool up to ``pool_target``: the periodic task's body, and a refill job's last step when
    annotators drained the pool while it ran (the next job then starts at once, not at the next tick)."""
    return ensure_generating(db, settings, reason="refill", finishing=finishing)


def nudge(db: Session, settings: Settings | None = None) -> Job | None:
    """An annotator found nothing to judge: ask for pairs now unless a generate job is on its way.

    It asks for ``pool_nudge_pairs`` even when the pool is at its target (the waiting annotator
    may have judged every pending pair). Commits; never raises, since a page calls it."""
    settings = settings or Settings()
    try:
        job = ensure_generating(db, settings, min_pairs=settings.pool_nudge_pairs, reason="nudge")
        db.commit()
    except SQLAlchemyError:
        db.rollback()
        log.exception("pool nudge failed")
        return None
    return job


def retire_unjudged(db: Session, *, version_id: int) -> int:
    """Retire the version's pending pairs that nobody has judged yet; returns how many (not committed)."""
    owned = select(Response.id).where(Response.policy_version_id == version_id)
    result = db.execute(
        update(Pair)
        .where(and_(Pair.status == PairStatus.pending, Pair.judgement_count == 0, Pair.response_a_id.in_(owned)))
        .values(status=PairStatus.retired)
        .execution_options(synchronize_session=False)
    )
    return result.rowcount or 0


def store_pairs(
    db: Session, candidates: list[Candidate], *, sampling: Sampling, job_id: int | None, limit: int
) -> tuple[int, int]:
    """Write up to ``limit`` candidates as responses and pending pairs; returns (pairs, cross-version)."""
    stored = cross = 0
    for candidate in candidates[: max(limit, 0)]:
        a, b = (
            _response(candidate.item.prompt_id, sample, sampling, candidate.attempt)
            for sample in (candidate.a, candidate.b)
        )
        db.add_all([a, b])
        db.flush()
        is_cross = candidate.item.other is not None
        db.add(Pair(
            prompt_id=candidate.item.prompt_id, response_a_id=a.id, response_b_id=b.id, status=PairStatus.pending,
            judgements_needed=candidate.item.judgements_needed, cross_version=is_cross, created_by_job_id=job_id,
        ))  # fmt: skip
        stored += 1
        cross += int(is_cross)
    db.flush()
    return stored, cross


def _response(prompt_id: int, sample: Any, sampling: Sampling, attempt: int) -> Response:
    return Response(
        prompt_id=prompt_id,
        policy_version_id=sample.version.id,
        source=f"policy:{sample.version.name}"[:200],
        text=sample.generation.text,
        generation_params=sample.params(sampling, attempt),
        token_count=sample.generation.token_count,
    )


def made_by_job(db: Session, job_id: int) -> int:
    """Pairs a generate job has stored so far (over all its attempts)."""
    return db.scalar(select(func.count()).select_from(Pair).where(Pair.created_by_job_id == job_id)) or 0


def lock_promoted(db: Session, version_id: int) -> bool:
    """Lock the policy's row and say whether it is still the promoted one (checked before storing
    pairs, so a job never adds pairs for a policy that a promotion just retired)."""
    status = db.scalar(
        select(ModelVersion.status)
        .where(ModelVersion.id == version_id, ModelVersion.kind == ModelKind.policy)
        .with_for_update()
    )
    return status is ModelStatus.promoted
