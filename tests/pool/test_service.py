"""Keeping the pool full: when a generate job is enqueued, nudges, and what a promotion does."""

from __future__ import annotations

import random

from sqlalchemy import func, select

from app.jobs.models import Job, JobStatus
from app.pool import plan, service
from app.pool.generate import usable
from app.pool.models import PairStatus
from app.registry.models import ModelStatus
from app.versions import promotion
from tests.factories import (
    JobFactory,
    ModelVersionFactory,
    PairFactory,
    PromptFactory,
    PromptSetFactory,
    ResponseFactory,
)
from tests.pool.conftest import add_prompts


def _generate_jobs(db) -> list[Job]:
    return list(db.scalars(select(Job).where(Job.kind == service.GENERATE).order_by(Job.id)))


def _pool_pair(db, version, *, judged: int = 0, other=None, prompt=None):
    prompt = prompt or PromptFactory()
    a = ResponseFactory(prompt=prompt, policy_version_id=version.id)
    b = ResponseFactory(prompt=prompt, policy_version_id=(other or version).id)
    return PairFactory(
        prompt=prompt,
        response_a=a,
        response_b=b,
        judgement_count=judged,
        judgements_needed=2,
        cross_version=other is not None,
    )


class TestEnsureGenerating:
    def test_needs_a_promoted_policy_and_active_prompts(self, db, pool_settings):
        assert service.ensure_generating(db, pool_settings) is None
        ModelVersionFactory(status=ModelStatus.promoted)
        assert service.ensure_generating(db, pool_settings) is None  # no prompts yet
        retired_set = PromptSetFactory(status="retired")
        PromptFactory(prompt_set=retired_set)
        assert service.ensure_generating(db, pool_settings) is None  # only a retired set
        add_prompts(db, 2)
        job = service.ensure_generating(db, pool_settings)
        assert job is not None and job.kind == "generate" and job.params["reason"] == "refill"

    def test_one_job_at_a_time_and_none_when_full(self, db, pool_settings):
        version = ModelVersionFactory(status=ModelStatus.promoted)
        add_prompts(db, 2)
        assert service.refill(db, pool_settings) is not None
        assert service.refill(db, pool_settings) is None  # the first is still queued
        _generate_jobs(db)[0].status = JobStatus.succeeded
        for _ in range(pool_settings.pool_target):
            _pool_pair(db, version)
        assert service.deficit(db, pool_settings) == 0
        assert service.refill(db, pool_settings) is None
        assert len(_generate_jobs(db)) == 1

    def test_a_nudge_asks_for_pairs_even_when_the_pool_is_full(self, db, pool_settings):
        version = ModelVersionFactory(status=ModelStatus.promoted)
        add_prompts(db, 2)
        for _ in range(pool_settings.pool_target):
            _pool_pair(db, version)
        job = service.nudge(db, pool_settings)
        assert job is not None and job.params["min_pairs"] == pool_settings.pool_nudge_pairs
        assert service.nudge(db, pool_settings) is None  # one is on its way
        JobFactory(kind="generate", status=JobStatus.running)
        job.status = JobStatus.succeeded
        assert service.nudge(db, pool_settings) is None  # a running one counts too


class TestPromotion:
    def test_retires_the_old_policys_unjudged_pairs_and_queues_a_refill(self, db, pool_settings):
        old = ModelVersionFactory(status=ModelStatus.promoted)
        new = ModelVersionFactory()
        add_prompts(db, 2)
        unjudged, cross = _pool_pair(db, old), _pool_pair(db, old, other=new)
        half_judged = _pool_pair(db, old, judged=1)
        others = _pool_pair(db, new)
        db.commit()

        result = promotion.promote(db, pool_settings, version_id=new.id)

        assert result.previous.id == old.id and result.promoted.status is ModelStatus.promoted
        assert result.retired == 2
        for pair in (unjudged, cross, half_judged, others):
            db.refresh(pair)
        assert unjudged.status is cross.status is PairStatus.retired
        assert half_judged.status is others.status is PairStatus.pending  # judged work is finished, not thrown away
        assert result.job is not None and result.job.params["reason"] == "promotion"
        assert _generate_jobs(db) == [result.job]

    def test_retiring_can_be_switched_off(self, db, pool_settings):
        old = ModelVersionFactory(status=ModelStatus.promoted)
        new = ModelVersionFactory()
        pair = _pool_pair(db, old)
        db.commit()
        settings = pool_settings.model_copy(update={"pool_retire_on_promote": False})
        assert promotion.promote(db, settings, version_id=new.id).retired == 0
        db.refresh(pair)
        assert pair.status is PairStatus.pending


class TestPlanning:
    def test_prompts_with_fewest_pending_pairs_come_first(self, db, pool_settings):
        version = ModelVersionFactory(status=ModelStatus.promoted)
        prompt_set = add_prompts(db, 3)
        busy = prompt_set.prompts[0]
        for _ in range(2):
            _pool_pair(db, version, prompt=busy)
        retired = PromptFactory(prompt_set=prompt_set, retired=True)
        db.flush()
        chosen = plan.choose_prompts(db, pool_settings, count=5, rng=random.Random(0))
        ids = [item.prompt_id for item in chosen]
        assert busy.id not in ids[:2] and retired.id not in ids
        assert sorted(ids[:3]) == sorted(p.id for p in prompt_set.prompts[:3])  # each once before any repeats

    def test_cross_share_holds_over_any_batch_sizes(self):
        planned = 0
        total = 0
        for size in (3, 1, 4, 4, 2, 7):
            total += plan.cross_count(planned, size, 0.3)
            planned += size
        assert total == round(planned * 0.3)

    def test_usable_pairs_differ_and_say_something(self):
        assert usable("Yes.", "No.")
        assert not usable("Same  answer", "same answer ")
        assert not usable("  ", "Something")


def test_pool_counts_group_by_response_a_version(db):
    promoted = ModelVersionFactory(status=ModelStatus.promoted)
    ready = ModelVersionFactory()
    _pool_pair(db, promoted)
    _pool_pair(db, promoted, other=ready)
    _pool_pair(db, ready)
    PairFactory()  # imported: no policy version
    counts = service.pool_counts(db)
    assert counts[0].version_id == promoted.id and (counts[0].same_version, counts[0].cross_version) == (1, 1)
    assert {c.version_id: c.total for c in counts} == {promoted.id: 2, ready.id: 1, None: 1}
    assert db.scalar(select(func.count()).select_from(Job)) == 0
