"""The ``sft`` job: demonstrations from the database and a JSONL file, the safety mix, a new ready
policy version (parent = base) that serves, the refusal report in the result and the metrics."""

from __future__ import annotations

import json

import pytest
from sqlalchemy import func, select

from app.annotation.models import Demonstration, DemonstrationKind
from app.errors import Invalid
from app.generation.factory import backend_from_config
from app.generation.types import SamplingParams
from app.jobs.models import JobMetric, JobStatus
from app.jobs.service import enqueue
from app.registry.models import ModelKind, ModelStatus, ModelVersion
from app.training.sft.refusal import RULE
from tests.factories import ModelVersionFactory, PromptFactory, UserFactory
from tests.helpers import rerun_after_commit, run_job

SMALL = {
    "epochs": 1,
    "batch_size": 4,
    "max_length": 96,
    "learning_rate": 0.01,
    "lora_r": 4,
    "lora_alpha": 8,
    "validation_fraction": 0.25,
    "refusal_prompts": 3,
    "refusal_max_new_tokens": 6,
    "checkpoint_every": 0,
}


def base_policy(path) -> ModelVersion:
    return ModelVersionFactory(
        name="policy-base",
        kind=ModelKind.policy,
        status=ModelStatus.promoted,
        path=str(path),
        base_model="tiny",
        config={"backend": "transformers", "path": str(path), "batch_size": 4},
    )


def add_demonstrations(db, ideal: int, safe: int) -> None:
    annotator = UserFactory()
    for i in range(ideal + safe):
        kind = DemonstrationKind.safe_answer if i >= ideal else DemonstrationKind.ideal
        text = (
            "I can't help with that, but here is a safer idea."
            if kind is DemonstrationKind.safe_answer
            else (f"Sure! Step {i}: go slowly, then check it twice.")
        )
        prompt = PromptFactory(messages=[{"role": "user", "content": f"Question {i}: how do I do thing {i}?"}])
        db.add(Demonstration(prompt_id=prompt.id, annotator_id=annotator.id, text=text, kind=kind))
    db.flush()


def test_sft_registers_a_ready_child_version_with_the_refusal_report(
    db, session_factory, settings, tiny_policy_dir
) -> None:
    base = base_policy(tiny_policy_dir)
    add_demonstrations(db, ideal=10, safe=4)
    (settings.data_dir / "sft").mkdir(parents=True)
    lines = [
        {
            "messages": [
                {"role": "user", "content": f"File question {i}?"},
                {"role": "assistant", "content": f"File answer {i}."},
            ]
        }
        for i in range(2)
    ]
    (settings.data_dir / "sft" / "extra.jsonl").write_text("\n".join(json.dumps(line) for line in lines))
    db.commit()

    job = run_job(
        db,
        session_factory,
        settings,
        kind="sft",
        params={
            **SMALL,
            "base_version_id": base.id,
            "safety_share": 0.25,
            "jsonl_files": ["extra.jsonl"],
            "name": "policy-sft-test",
        },
    )

    assert job.status is JobStatus.succeeded, (job.error, job.log_tail[-3000:])
    result = job.result
    assert result["examples"] == {
        "demonstrations": 14,
        "skipped_demonstrations": 0,
        "jsonl": 2,
        "ideal": 12,
        "safe_answer": 4,
        "used": 16,
    }  # 12 ideal + 4 safe at 25 %
    refusal = result["refusal"]
    assert refusal["rule"] == RULE and refusal["prompts"] == 3
    assert 0.0 <= refusal["before"] <= 1.0 and 0.0 <= refusal["after"] <= 1.0
    assert result["metrics"]["val_loss"] > 0 and result["parent_id"] == base.id

    version = db.get(ModelVersion, result["version_id"])
    assert (version.name, version.kind, version.status, version.parent_id) == (
        "policy-sft-test",
        ModelKind.policy,
        ModelStatus.ready,
        base.id,
    )
    assert version.created_by_job_id == job.id and version.base_model == "tiny"
    assert version.metrics["refusal_rate_before"] == refusal["before"] and "val_loss_before" in version.metrics
    assert version.path.startswith(str(settings.resolved_models_dir))
    backend = backend_from_config(version.config)
    out = backend.generate([[{"role": "user", "content": "Hello?"}]], SamplingParams(temperature=0, max_new_tokens=4))
    assert len(out) == 1

    names = set(db.scalars(select(JobMetric.name).where(JobMetric.job_id == job.id)))
    assert {"refusal_rate_before", "refusal_rate_after", "val_loss", "val_loss_before", "train_loss"} <= names

    # a retry after a crash past the rename: nothing new
    again = rerun_after_commit(db, session_factory, settings, job)
    assert again.result["version_id"] == version.id
    assert db.scalar(select(func.count()).select_from(ModelVersion)) == 2


def test_sft_fails_clearly_without_data_or_with_a_taken_name(db, session_factory, settings, tiny_policy_dir) -> None:
    def failure(params: dict) -> str:
        job = run_job(db, session_factory, settings, kind="sft", params=params)
        assert (job.status, job.attempts) == (JobStatus.failed, 1), job.error
        return job.error

    base = base_policy(tiny_policy_dir)
    db.commit()
    assert "SFT needs at least 2" in failure({**SMALL, "base_version_id": base.id})
    add_demonstrations(db, ideal=3, safe=0)
    db.commit()
    assert "exists already" in failure({**SMALL, "name": "policy-base"})
    assert "no SFT file 'missing.jsonl'" in failure({**SMALL, "jsonl_files": ["missing.jsonl"]})
    with pytest.raises(Invalid, match=r"^params\.jsonl_files\.0: "):  # a path, refused when the job is queued
        enqueue(db, kind="sft", params={**SMALL, "jsonl_files": ["../secrets.jsonl"]})


def test_the_refusal_partial_renders_before_and_after(app) -> None:
    template = app.state.templates.get_template("instruct/refusal_report.html")
    html = template.render(
        refusal={
            "rule": RULE,
            "before": 0.05,
            "after": 0.25,
            "prompts": 40,
            "refused_before": 2,
            "refused_after": 10,
            "source": "starter prompts",
        }
    )
    assert '<td id="refusal-before">5.0% (2/40)</td>' in html and '<td id="refusal-after">25.0% (10/40)</td>' in html
    assert "refuses harmless requests more often" in html and "phrase-list-first-sentence" in html
    quiet = template.render(refusal={"rule": RULE, "before": 0.1, "after": 0.0, "prompts": 10})
    assert "more often" not in quiet and "10.0%" in quiet


def test_the_sft_job_page_shows_the_refusal_report(client, db) -> None:
    from app.auth.models import Role
    from app.jobs.models import JobStatus
    from tests.factories import JobFactory
    from tests.helpers import login

    refusal = {"rule": RULE, "before": 0.1, "after": 0.3, "prompts": 10, "refused_before": 1, "refused_after": 3}
    job = JobFactory(kind="sft", status=JobStatus.succeeded, result={"version_id": 1, "refusal": refusal})
    other = JobFactory(kind="sft", status=JobStatus.running)
    UserFactory(username="res", role=Role.researcher)
    db.commit()
    login(client, "res")
    page = client.get(f"/dashboard/jobs/{job.id}")
    assert page.status_code == 200 and 'id="refusal-report"' in page.text
    assert "10.0% (1/10)" in page.text and "30.0% (3/10)" in page.text
    assert 'id="refusal-report"' not in client.get(f"/dashboard/jobs/{other.id}").text
