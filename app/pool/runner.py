"""The ``generate`` job's body: plan a batch, sample it in the warm process, store it, repeat.

Idempotent per job: every pair carries ``created_by_job_id``, and each attempt works out its goal
from what the database holds now (the pool's deficit, or the pairs this job stored before a
crash), so a re-run never adds pairs beyond the target. Each batch is stored in one fenced
transaction (``ctx.transaction``) that first locks the policy's row and checks it is still the
promoted one, so a cancelled job or one overtaken by a promotion adds nothing more.
"""

from __future__ import annotations

import random
import secrets
import time
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy.orm import Session

from app.config import Settings
from app.jobs.context import JobContext
from app.jobs.exceptions import JobFailed
from app.pool import service, told_apart
from app.pool.generate import BatchStats, PairSampler, Sampling
from app.pool.plan import PolicyRef, assign_cross, choose_prompts, cross_count, other_policies, policy_ref
from app.pool.warm_client import BackendConfigError, WarmClient
from app.registry import service as registry

MAX_BARREN_BATCHES = 3  # batches in a row without one usable pair before the job gives up


@dataclass(frozen=True)
class Setup:
    policy: PolicyRef
    others: list[PolicyRef]
    goal: int  # pairs this attempt should add
    fill_only: bool  # stop at the pool target (a refill), rather than add ``goal`` regardless
    sampling: Sampling
    share: float  # of pairs that are cross-version


def plan_job(db: Session, settings: Settings, params: Any, job_id: int) -> Setup | None:
    """What this attempt should do; None without a promoted policy."""
    version = registry.promoted_policy(db)
    if version is None:
        return None
    already = service.made_by_job(db, job_id)
    if params.pairs is not None:
        goal, fill_only = params.pairs - already, False
    else:
        need = max(service.deficit(db, settings), params.min_pairs - already)
        goal, fill_only = min(need, settings.pool_max_pairs_per_job - already), params.min_pairs == 0
    sampling = Sampling(
        temperature=settings.pool_temperature if params.temperature is None else params.temperature,
        top_p=settings.pool_top_p if params.top_p is None else params.top_p,
        max_new_tokens=settings.pool_max_new_tokens if params.max_new_tokens is None else params.max_new_tokens,
    )
    share = settings.pool_cross_version_share if params.cross_version_share is None else params.cross_version_share
    others = other_policies(db, promoted_id=version.id)
    return Setup(policy_ref(version), others, max(goal, 0), fill_only, sampling, share)


def run_generate(ctx: JobContext) -> dict[str, Any]:
    """Add pairs for the promoted policy until the goal, reporting progress; returns the tally."""
    with ctx.sessions() as db:
        setup = plan_job(db, ctx.settings, ctx.params, ctx.job_id)
    if setup is None:
        return {"pairs": 0, "stopped": "no promoted policy"}
    if setup.goal == 0:
        return {"pairs": 0, "policy": setup.policy.name, "stopped": "the pool is full"}
    ctx.reporter.log(f"generating {setup.goal} pair(s) with {setup.policy.name} ({setup.policy.backend})")
    try:
        with WarmClient(ctx.settings) as client:
            result = _fill(ctx, setup, client)
    except BackendConfigError as exc:
        raise JobFailed(f"policy {setup.policy.name} cannot be served: {exc}") from None
    if setup.fill_only and result["stopped"] is None:
        with ctx.transaction() as db:  # judged while we sampled: queue the next fill now, behind this job
            follow_up = service.refill(db, ctx.settings, finishing=ctx.job_id)
            result["follow_up_job"] = None if follow_up is None else follow_up.id
    return result


@dataclass
class Tally:
    """One fill's running totals: what ends the loop (the goal, ``stopped``) and what the result reports."""

    stats: BatchStats = field(default_factory=BatchStats)  # summed over the batches
    pairs: int = 0
    cross: int = 0
    planned: int = 0
    barren: int = 0  # batches in a row that gave no usable pair
    widest_k: int = 0  # the most samples per prompt a batch drew (k widens while verdicts are mostly ties)
    fewest_k: int = 0  # and the fewest (k narrows while they are nearly all decided); 0 before a batch
    stopped: str | None = None

    def add(self, stats: BatchStats) -> None:
        total = self.stats
        total.dropped += stats.dropped
        total.regenerated += stats.regenerated
        total.tokens += stats.tokens
        total.load_seconds += stats.load_seconds
        total.generate_seconds += stats.generate_seconds
        total.pids |= stats.pids


def _fill(ctx: JobContext, setup: Setup, client: WarmClient) -> dict[str, Any]:
    seed = ctx.params.seed if ctx.params.seed is not None else secrets.randbits(32)
    rng = random.Random(seed)
    k = ctx.params.samples_per_prompt or ctx.settings.pool_samples_per_prompt
    sampler = PairSampler(
        client,
        setup.policy,
        setup.sampling,
        rng=rng,
        attempts=ctx.settings.pool_regenerate_attempts,
        samples_per_prompt=k,
    )
    tally, start = Tally(), time.perf_counter()
    while tally.pairs < setup.goal and tally.stopped is None:
        ctx.reporter.check()
        _batch(ctx, setup, sampler, rng, tally)
        ctx.reporter.progress(tally.pairs / setup.goal, f"{tally.pairs} of {setup.goal} pairs")
    return _result(setup, tally, time.perf_counter() - start, sampler.steered)


def _batch(ctx: JobContext, setup: Setup, sampler: PairSampler, rng: random.Random, tally: Tally) -> None:
    """Plan, sample and store one batch, updating ``tally`` (and setting ``tally.stopped`` to end)."""
    configured_k = ctx.params.samples_per_prompt or ctx.settings.pool_samples_per_prompt
    if ctx.settings.pool_adapt_to_ties:
        with ctx.sessions() as db:
            verdicts = told_apart.recent_verdicts(db)
        _adapt(sampler, verdicts, None if ctx.params.samples_per_prompt else configured_k)  # a fit: no session held
    size = batch_prompts(ctx.settings.pool_batch_prompts, configured_k, sampler.samples_per_prompt)
    with ctx.sessions() as db:
        items = choose_prompts(db, ctx.settings, count=min(size, setup.goal - tally.pairs), rng=rng)
    tally.widest_k = max(tally.widest_k, sampler.samples_per_prompt)
    tally.fewest_k = min(tally.fewest_k or sampler.samples_per_prompt, sampler.samples_per_prompt)
    if not items:
        tally.stopped = "no active prompts"
        return
    items = assign_cross(items, setup.others, count=cross_count(tally.planned, len(items), setup.share), rng=rng)
    tally.planned += len(items)
    candidates, stats = sampler.run(items)
    tally.add(stats)
    with ctx.transaction() as db:
        if not service.lock_promoted(db, setup.policy.id):
            tally.stopped = "another policy was promoted"
            return
        limit = setup.goal - tally.pairs
        if setup.fill_only:
            limit = min(limit, service.deficit(db, ctx.settings))
        stored, cross = service.store_pairs(db, candidates, sampling=setup.sampling, job_id=ctx.job_id, limit=limit)
    tally.pairs += stored
    tally.cross += cross
    tally.barren = tally.barren + 1 if not candidates else 0
    if tally.barren >= MAX_BARREN_BATCHES:
        tally.stopped = "the policy keeps giving identical or empty responses"
    elif setup.fill_only and stored < len(candidates):
        tally.stopped = "the pool reached its target"


def batch_prompts(configured: int, configured_k: int, k: int) -> int:
    """Prompts in the next batch: the configured count, or more while k is below the configured k, so the batch
    keeps as many rows (prompts × k). On a CPU a decoding step of 32 rows costs nearly what one of 64 does
    (SmolLM2 in the closed loop: 89 against 110 tokens/s), so halving k alone saved little."""
    return max(configured, configured * configured_k // k)


def _adapt(sampler: PairSampler, verdicts: told_apart.Verdicts, base_k: int | None) -> None:
    """Steer the next batch by what the annotators' latest verdicts tell apart; widen k unless the job set it."""
    sampler.decisions = told_apart.DecisionModel.fit(verdicts)
    if base_k is not None:
        sampler.samples_per_prompt = told_apart.samples_per_prompt(base_k, verdicts)


def _result(setup: Setup, tally: Tally, seconds: float, steered: int) -> dict[str, Any]:
    stats = tally.stats
    return {
        "pairs": tally.pairs, "cross_version": tally.cross, "goal": setup.goal, "policy": setup.policy.name,
        "policy_version_id": setup.policy.id, "dropped": stats.dropped, "regenerated": stats.regenerated,
        "tokens": stats.tokens, "load_seconds": round(stats.load_seconds, 3),
        "generate_seconds": round(stats.generate_seconds, 3), "seconds": round(seconds, 3),
        "pairs_per_minute": round(tally.pairs / seconds * 60, 2) if seconds > 0 else 0.0,
        "warm_pids": sorted(stats.pids), "stopped": tally.stopped, "samples_per_prompt": tally.widest_k,
        "fewest_samples_per_prompt": tally.fewest_k,
        "steered_prompts": steered,
    }  # fmt: skip
