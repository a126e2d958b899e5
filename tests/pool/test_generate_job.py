"""The ``generate`` job with tiny random policies, run in-process through the worker's code path."""

from __future__ import annotations

import os
import signal

import pytest
from sqlalchemy import func, select

from app.annotation.models import Choice
from app.jobs.models import Job, JobStatus
from app.pool import service, told_apart
from app.pool.models import Pair, PairStatus, Response
from app.pool.runner import batch_prompts
from app.pool.warm_client import WarmClient
from app.registry.models import ModelKind, ModelStatus, ModelVersion
from tests.factories import JudgementFactory
from tests.generation.chat_server import running_chat_server
from tests.helpers import rerun_after_commit, run_job
from tests.pool.conftest import add_policy, add_prompts


def _pairs(db, **where) -> list[Pair]:
    return list(db.scalars(select(Pair).filter_by(**where).order_by(Pair.id)))


def test_fills_the_pool_to_target_with_distinct_responses(db, session_factory, pool_settings, tiny_policies):
    policy = add_policy(db, tiny_policies[0], name="tiny-v0", status=ModelStatus.promoted)
    prompt_set = add_prompts(db, 5, k=3)
    db.commit()

    job = run_job(db, session_factory, pool_settings, kind="generate")

    assert job.status is JobStatus.succeeded, job.error
    assert job.result["pairs"] == pool_settings.pool_target == service.pending_count(db, version_id=policy.id)
    pairs = _pairs(db, created_by_job_id=job.id)
    assert len(pairs) == pool_settings.pool_target
    assert len({p.prompt_id for p in pairs}) == 5  # spread over every prompt before one repeats
    for pair in pairs:
        a, b = pair.response_a, pair.response_b
        assert pair.status is PairStatus.pending and pair.judgements_needed == 3 and not pair.cross_version
        assert pair.prompt.prompt_set_id == prompt_set.id
        assert a.policy_version_id == b.policy_version_id == policy.id
        assert a.text.strip() and b.text.strip() and a.text != b.text
        assert a.generation_params["seed"] == b.generation_params["seed"]  # one batch: one seeded call, n=k
        k = pool_settings.pool_samples_per_prompt
        assert a.generation_params["n"] == b.generation_params["n"] == k
        sample_a, sample_b = a.generation_params["sample"], b.generation_params["sample"]
        assert sample_a != sample_b and {sample_a, sample_b} <= set(range(k))  # the most different two of k
        assert a.generation_params["temperature"] == pool_settings.pool_temperature
        assert a.generation_params["max_new_tokens"] == 8 and 1 <= a.token_count <= 8


def test_a_rerun_of_the_same_job_adds_nothing_beyond_its_goal(db, session_factory, pool_settings, tiny_policies):
    add_policy(db, tiny_policies[0], name="tiny-v0", status=ModelStatus.promoted)
    add_prompts(db, 3)
    db.commit()
    fill = run_job(db, session_factory, pool_settings, kind="generate")
    explicit = run_job(db, session_factory, pool_settings, kind="generate", params={"pairs": 4})
    for job in (fill, explicit):  # as if the worker had crashed after the pairs were committed
        rerun = rerun_after_commit(db, session_factory, pool_settings, job)
        assert rerun.status is JobStatus.succeeded and rerun.result["pairs"] == 0
    assert len(_pairs(db, created_by_job_id=fill.id)) == pool_settings.pool_target
    assert len(_pairs(db, created_by_job_id=explicit.id)) == 4


def test_a_refill_that_leaves_the_pool_short_queues_the_next_one_at_once(
    db, session_factory, pool_settings, tiny_policies
):
    """Annotators who judge while a refill runs leave the pool short at its end: the next refill is queued by
    the job itself (to run behind it), not at the periodic task's next tick; a full pool queues nothing."""
    policy = add_policy(db, tiny_policies[0], name="tiny-v0", status=ModelStatus.promoted)
    add_prompts(db, 5)
    db.commit()
    settings = pool_settings.model_copy(update={"pool_max_pairs_per_job": 4})  # 4 of the 6 the pool wants

    first = run_job(db, session_factory, settings, kind="generate")

    assert first.status is JobStatus.succeeded and first.result["pairs"] == 4
    follow_up = db.get(Job, first.result["follow_up_job"])
    assert follow_up.kind == service.GENERATE and follow_up.status is JobStatus.queued
    assert follow_up.params["reason"] == "refill" and follow_up.created_by_id is None
    second = run_job(db, session_factory, settings, job_id=follow_up.id)
    assert second.status is JobStatus.succeeded and second.result["pairs"] == 2
    assert service.pending_count(db, version_id=policy.id) == pool_settings.pool_target
    assert second.result.get("follow_up_job") is None and service.generation_job(db) is None


def test_the_model_stays_warm_between_jobs_and_a_dead_process_is_replaced(
    db, session_factory, pool_settings, tiny_policies
):
    add_policy(db, tiny_policies[0], name="tiny-v0", status=ModelStatus.promoted)
    add_prompts(db, 3)
    db.commit()
    first = run_job(db, session_factory, pool_settings, kind="generate", params={"pairs": 2})
    second = run_job(db, session_factory, pool_settings, kind="generate", params={"pairs": 2})
    assert second.result["warm_pids"] == first.result["warm_pids"]
    assert second.result["load_seconds"] == 0  # served by the model loaded for the first job

    os.kill(first.result["warm_pids"][0], signal.SIGKILL)  # e.g. the out-of-memory killer
    third = run_job(db, session_factory, pool_settings, kind="generate", params={"pairs": 2})
    assert third.status is JobStatus.succeeded and third.result["pairs"] == 2
    assert third.result["warm_pids"] != first.result["warm_pids"]
    assert WarmClient(pool_settings).ping()["pid"] == third.result["warm_pids"][0]


def test_identical_responses_are_dropped_not_stored(db, session_factory, pool_settings, tiny_policies):
    add_policy(db, tiny_policies[0], name="tiny-v0", status=ModelStatus.promoted)
    add_prompts(db, 3)
    db.commit()

    job = run_job(
        db, session_factory, pool_settings, kind="generate", params={"pairs": 3, "temperature": 0}
    )  # greedy: A == B

    assert job.status is JobStatus.succeeded
    assert job.result["pairs"] == 0 and job.result["dropped"] >= 3
    assert job.result["regenerated"] >= 3 * pool_settings.pool_regenerate_attempts
    assert "identical" in job.result["stopped"]
    assert db.scalar(select(func.count()).select_from(Response)) == 0


def test_a_share_of_pairs_is_cross_version(db, session_factory, pool_settings, tiny_policies):
    promoted = add_policy(db, tiny_policies[0], name="tiny-v0", status=ModelStatus.promoted)
    other = add_policy(db, tiny_policies[1], name="tiny-v1")
    add_policy(db, tiny_policies[1], name="tiny-archived", status=ModelStatus.archived)
    add_prompts(db, 4)
    db.commit()

    job = run_job(db, session_factory, pool_settings, kind="generate", params={"pairs": 8, "cross_version_share": 0.5})

    pairs = _pairs(db, created_by_job_id=job.id)
    cross = [p for p in pairs if p.cross_version]
    assert len(pairs) == 8 and len(cross) == job.result["cross_version"] == 4
    for pair in pairs:
        assert pair.response_a.policy_version_id == promoted.id
        assert pair.response_b.policy_version_id == (other.id if pair.cross_version else promoted.id)
    counts = {c.version_id: c for c in service.pool_counts(db)}
    assert (counts[promoted.id].same_version, counts[promoted.id].cross_version) == (4, 4)


def test_without_a_promoted_policy_or_prompts_nothing_happens(db, session_factory, pool_settings, tiny_policies):
    job = run_job(db, session_factory, pool_settings, kind="generate")
    assert job.status is JobStatus.succeeded and job.result == {"pairs": 0, "stopped": "no promoted policy"}
    add_policy(db, tiny_policies[0], name="tiny-v0", status=ModelStatus.promoted)
    db.commit()
    job = run_job(db, session_factory, pool_settings, kind="generate", params={"pairs": 2})
    assert job.result["pairs"] == 0 and job.result["stopped"] == "no active prompts"


def test_a_broken_backend_config_fails_the_job(db, session_factory, pool_settings, tiny_policies):
    policy = add_policy(db, tiny_policies[0], name="tiny-v0", status=ModelStatus.promoted)
    policy.config = {"backend": "carrier-pigeon"}
    add_prompts(db, 2)
    db.commit()
    job = run_job(db, session_factory, pool_settings, kind="generate", params={"pairs": 1})
    assert job.status is JobStatus.failed and "carrier-pigeon" in job.error


def test_a_policy_served_by_an_openai_compatible_endpoint(db, session_factory, pool_settings):
    with running_chat_server() as server:
        config = {"backend": "openai", "base_url": server.url + "/v1", "model": "policy-remote", "max_retries": 0}
        db.add(ModelVersion(name="remote-v0", kind=ModelKind.policy, status=ModelStatus.promoted, config=config))
        add_prompts(db, 2)
        db.commit()
        job = run_job(db, session_factory, pool_settings, kind="generate", params={"pairs": 2})

    assert job.status is JobStatus.succeeded and job.result["pairs"] == 2, job.error
    k = pool_settings.pool_samples_per_prompt  # one request per sample: k per prompt
    assert {r["body"]["model"] for r in server.requests} == {"policy-remote"} and len(server.requests) == 2 * k
    for pair in _pairs(db, created_by_job_id=job.id):
        a, b = pair.response_a, pair.response_b
        assert a.generation_params["backend"] == "openai" and a.text.startswith("echo Tell me about topic")
        assert a.text != b.text  # one request per sample, seed + k


def test_a_server_that_answers_for_another_model_fails_the_job_clearly(db, session_factory, pool_settings):
    with running_chat_server() as server:
        server.script.append("other-model")
        config = {"backend": "openai", "base_url": server.url + "/v1", "model": "policy-remote", "max_retries": 0}
        db.add(ModelVersion(name="remote-v1", kind=ModelKind.policy, status=ModelStatus.promoted, config=config))
        add_prompts(db, 1)
        db.commit()
        job = run_job(db, session_factory, pool_settings, kind="generate", params={"pairs": 1})

    assert job.status is JobStatus.failed  # not retried: the same server would answer the same way
    assert "answered as model 'someone-else', not 'policy-remote'" in job.error
    assert _pairs(db, created_by_job_id=job.id) == []


def test_a_pool_judged_mostly_tie_samples_more_and_pairs_what_annotators_decide(
    db, session_factory, pool_settings, tiny_policies, monkeypatch
):
    """Nine in ten of the latest verdicts ties: k doubles (unless the job set it) and the decision model
    picks the pair of each prompt it can; with the setting off, neither happens. (The tiny random policy
    never writes what the verdicts decided on, so every prompt is made steerable here: the threshold itself
    is tests/pool/test_told_apart.py's.)"""
    monkeypatch.setattr(told_apart, "STEER_CHANCE", 0.0)
    add_policy(db, tiny_policies[0], name="tiny-v0", status=ModelStatus.promoted)
    add_prompts(db, 4)
    for n in range(30):
        JudgementFactory(choice=Choice.tie, pair__response_a__text=f"Plain {n}.", pair__response_b__text=f"Calm {n}.")
    for n in range(3):
        JudgementFactory(choice=Choice.a, pair__response_a__text=f"Loud {n}!", pair__response_b__text=f"Quiet {n}.")
    db.commit()
    k = pool_settings.pool_samples_per_prompt

    widened = run_job(db, session_factory, pool_settings, kind="generate", params={"pairs": 4})
    chosen_k = run_job(
        db, session_factory, pool_settings, kind="generate", params={"pairs": 4, "samples_per_prompt": 3}
    )
    off = pool_settings.model_copy(update={"pool_adapt_to_ties": False})
    plain = run_job(db, session_factory, off, kind="generate", params={"pairs": 4})

    assert widened.status is chosen_k.status is plain.status is JobStatus.succeeded
    assert (widened.result["samples_per_prompt"], chosen_k.result["samples_per_prompt"]) == (2 * k, 3)
    assert widened.result["steered_prompts"] >= 4 and chosen_k.result["steered_prompts"] >= 4  # every prompt
    assert plain.result["samples_per_prompt"] == k and plain.result["steered_prompts"] == 0
    for job, n in ((widened, 2 * k), (chosen_k, 3), (plain, k)):
        assert {p.response_a.generation_params["n"] for p in _pairs(db, created_by_job_id=job.id)} == {n}


def test_a_pool_judged_nearly_all_decided_samples_fewer(db, session_factory, pool_settings, tiny_policies):
    """Fewer than one in ten of the latest verdicts ties: half the configured k (at least 2), unless the job set k."""
    add_policy(db, tiny_policies[0], name="tiny-v0", status=ModelStatus.promoted)
    add_prompts(db, 4)
    for n in range(30):
        JudgementFactory(choice=Choice.a, pair__response_a__text=f"Short {n}.", pair__response_b__text=f"Longer {n}!")
    db.commit()
    k = pool_settings.pool_samples_per_prompt
    assert k >= 4

    narrowed = run_job(db, session_factory, pool_settings, kind="generate", params={"pairs": 4})
    chosen_k = run_job(
        db, session_factory, pool_settings, kind="generate", params={"pairs": 4, "samples_per_prompt": k}
    )

    assert narrowed.status is chosen_k.status is JobStatus.succeeded
    assert narrowed.result["samples_per_prompt"] == narrowed.result["fewest_samples_per_prompt"] == k // 2
    assert chosen_k.result["samples_per_prompt"] == chosen_k.result["fewest_samples_per_prompt"] == k
    for job, n in ((narrowed, k // 2), (chosen_k, k)):
        assert {p.response_a.generation_params["n"] for p in _pairs(db, created_by_job_id=job.id)} == {n}


@pytest.mark.parametrize(
    ("configured", "configured_k", "k", "prompts"),
    [(16, 4, 4, 16), (16, 4, 2, 32), (16, 4, 8, 16), (16, 8, 4, 32), (5, 4, 2, 10), (1, 3, 2, 1), (16, 2, 2, 16)],
)
def test_a_batch_keeps_its_rows_when_k_narrows_and_its_prompts_when_k_widens(configured, configured_k, k, prompts):
    assert batch_prompts(configured, configured_k, k) == prompts
