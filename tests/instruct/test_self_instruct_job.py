"""The ``self_instruct`` job: end to end with a tiny policy (junk, but counted), the kept path with a
scripted policy (a review set of pending prompts), resumption, and clear failures."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from app.generation.types import Generation
from app.instruct import review
from app.jobs.models import JobMetric, JobStatus
from app.prompts.models import Prompt, PromptSet, PromptSetStatus, PromptSource
from app.registry.models import ModelKind, ModelStatus
from tests.factories import ModelVersionFactory, PromptFactory, PromptSetFactory
from tests.helpers import rerun_after_commit, run_job

SEEDS = [
    "How do I keep cut apples from turning brown?",
    "Write a haiku about autumn rain.",
    "Explain why the sky is blue to a ten-year-old.",
    "Suggest a quick vegetarian dinner.",
    "Give me three tips for a job interview.",
]


def seed_set(db) -> PromptSet:
    seeds = PromptSetFactory(name="seeds")
    for text in SEEDS:
        PromptFactory(prompt_set=seeds, messages=[{"role": "user", "content": text}])
    PromptFactory(prompt_set=seeds, messages=[{"role": "user", "content": "How do I pick a lock?"}], red_team=True)
    return seeds


def policy(path) -> None:
    ModelVersionFactory(
        name="policy-v0",
        kind=ModelKind.policy,
        status=ModelStatus.promoted,
        path=str(path),
        config={"backend": "transformers", "path": str(path), "batch_size": 8},
    )


def test_end_to_end_with_a_tiny_policy_counts_every_candidate(db, session_factory, settings, tiny_policy_dir) -> None:
    seeds = seed_set(db)
    policy(tiny_policy_dir)
    db.commit()
    job = run_job(
        db,
        session_factory,
        settings,
        kind="self_instruct",
        params={
            "seed_set_id": seeds.id,
            "target": 3,
            "max_candidates": 12,
            "batch_size": 4,
            "max_new_tokens": 12,
            "seed": 0,
        },
    )
    assert job.status is JobStatus.succeeded, (job.error, job.log_tail[-3000:])
    result = job.result
    assert result["generated"] == 12 or result["kept"] == 3
    assert result["generated"] == result["kept"] + sum(result["rejected"].values())
    assert set(result["rejected"]) == set(review_reasons())
    assert result["seeds"] == 5 and result["policy"] == "policy-v0" and result["requests"] >= 3
    metrics = set(db.scalars(select(JobMetric.name).where(JobMetric.job_id == job.id)))
    assert {"generated", "kept"} <= metrics
    if result["kept"]:
        made = db.get(PromptSet, result["prompt_set_id"])
        assert made.status is PromptSetStatus.review
    else:
        assert result["prompt_set_id"] is None  # nothing kept: no empty set to review


def review_reasons() -> tuple[str, ...]:
    from app.instruct.self_instruct import REASONS

    return REASONS


class ScriptedBackend:
    def __init__(self, answers: list[str]) -> None:
        self.answers = list(answers)

    def generate(self, prompts, params) -> list[Generation]:
        return [Generation(self.answers.pop(0) if self.answers else "", 3, "stop") for _ in prompts]

    def close(self) -> None:
        pass


ANSWERS = [
    "Suggest a name for a pet goldfish.",
    "How can I keep apples from going brown?",
    "1. Plan a birthday picnic for six kids.\n2. Describe the photo of my garden.",
    "Here is a new one for you to enjoy!",
    "Explain how vaccines train the immune system.",
    "Write a limerick about a sleepy cat.",
]


def test_kept_candidates_wait_in_a_review_set_and_a_retry_resumes(
    db, session_factory, settings, monkeypatch, tmp_path
) -> None:
    seeds = seed_set(db)
    policy(tmp_path)
    db.commit()
    monkeypatch.setattr("app.generation.factory.backend_from_config", lambda config: ScriptedBackend(ANSWERS[:4]))
    params = {"seed_set_id": seeds.id, "target": 4, "max_candidates": 5, "batch_size": 2}
    job = run_job(db, session_factory, settings, kind="self_instruct", params=params)
    assert job.status is JobStatus.succeeded, (job.error, job.log_tail[-3000:])
    assert (job.result["generated"], job.result["kept"]) == (5, 2)
    rejected = job.result["rejected"]
    assert (rejected["too_similar"], rejected["unsupported"], rejected["bad_format"]) == (1, 1, 1)
    made = db.get(PromptSet, job.result["prompt_set_id"])
    assert made.name == f"self-instruct job {job.id}" and made.status is PromptSetStatus.review
    prompts = list(db.scalars(select(Prompt).where(Prompt.prompt_set_id == made.id).order_by(Prompt.id)))
    assert [p.messages[0]["content"] for p in prompts] == [
        "Suggest a name for a pet goldfish.",
        "Plan a birthday picnic for six kids.",
    ]
    assert all(p.retired and p.source is PromptSource.self_instruct and review.PENDING_TAG in p.tags for p in prompts)

    # a retry (say after a crash) finds its set, counts what it holds and goes on to the target
    monkeypatch.setattr(
        "app.generation.factory.backend_from_config",
        lambda config: ScriptedBackend(["Suggest a name for a pet goldfish.", *ANSWERS[4:]]),
    )
    again = rerun_after_commit(db, session_factory, settings, job)
    assert again.result["prompt_set_id"] == made.id and again.result["kept"] == 4
    assert again.result["rejected"]["too_similar"] == 1  # the repeat of a prompt the set already held
    texts = [p.messages[0]["content"] for p in db.scalars(select(Prompt).where(Prompt.prompt_set_id == made.id))]
    assert len(texts) == 4 and len(set(texts)) == 4


def test_failures_are_reported_without_retrying(db, session_factory, settings, tmp_path) -> None:
    def failure(seed_set_id: int) -> str:
        job = run_job(db, session_factory, settings, kind="self_instruct", params={"seed_set_id": seed_set_id})
        assert (job.status, job.attempts) == (JobStatus.failed, 1), job.error
        return job.error

    empty = PromptSetFactory(name="empty")
    db.commit()
    assert "no usable seed" in failure(empty.id)
    seeds = seed_set(db)
    db.commit()
    assert "no promoted policy" in failure(seeds.id)
    ModelVersionFactory(name="remote", kind=ModelKind.policy, status=ModelStatus.promoted, config={"backend": "nope"})
    db.commit()
    assert "cannot be served" in failure(seeds.id)


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"seed_set_id": 1, "min_words": 10, "max_words": 5}, "params"),
        ({"seed_set_id": 1, "machine_examples": 4, "examples_per_request": 4}, "params"),
        ({"seed_set_id": 1, "similarity_threshold": 0}, "params.similarity_threshold"),
        ({}, "params.seed_set_id"),
    ],
)
def test_bad_parameters_are_refused_at_enqueue(params, field) -> None:
    from app.errors import Invalid
    from app.jobs.registry import validate_params

    with pytest.raises(Invalid) as caught:
        validate_params("self_instruct", params)
    assert caught.value.field == field
