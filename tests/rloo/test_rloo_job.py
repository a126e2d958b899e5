"""The ``rloo`` job end to end through the worker's path: a promoted tiny policy, a tiny reward version (and
classifier) and a prompt set in the database → RLOO in the job → exactly one new ready policy version, child
of the old one, loadable, with every update's curves in job_metrics; a re-run returns the same version."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import func, select

from app.errors import Invalid
from app.jobs.models import JobMetric, JobStatus
from app.jobs.registry import validate_params
from app.registry.models import ModelKind, ModelStatus, ModelVersion
from app.training.core.card import read_card
from tests.helpers import rerun_after_commit, run_job
from tests.ppo.conftest import add_version, seed_loop
from tests.rloo.conftest import TINY_RLOO

CURVES = (
    "score",
    "reward",
    "kl",
    "entropy",
    "advantage_std",
    "policy_loss",
    "clip_fraction",
    "response_length",
    "beta",
    "safety_penalty",
)


def made_by(db, job_id: int) -> list[ModelVersion]:
    return list(db.scalars(select(ModelVersion).where(ModelVersion.created_by_job_id == job_id)))


def test_rloo_job_registers_one_child_policy_and_records_every_update(
    db, session_factory, settings, tiny_backbone, scorer_folders
):
    policy, reward, set_id = seed_loop(db, tiny_backbone, scorer_folders["reward"])
    classifier = add_version(db, ModelKind.classifier, scorer_folders["classifier"], name="tiny-cls")
    db.commit()

    job = run_job(
        db,
        session_factory,
        settings,
        kind="rloo",
        params={
            **TINY_RLOO,
            "prompt_set_ids": [set_id],
            "classifier_version_id": classifier.id,
            "safety_weight": 2.0,
            "advantage": "grpo",
        },
    )

    assert job.status is JobStatus.succeeded, (job.error, job.log_tail[-3000:])
    [version] = made_by(db, job.id)
    assert (version.kind, version.status, version.parent_id, version.name) == (
        ModelKind.policy,
        ModelStatus.ready,
        policy.id,
        f"rloo-job{job.id}",
    )
    assert job.result["version_id"] == version.id and job.result["parent_id"] == policy.id
    assert (job.result["reward_version_id"], job.result["classifier_version_id"]) == (reward.id, classifier.id)
    assert (job.result["prompts"], job.result["updates"], job.result["resumed_from_update"]) == (6, 3, 0)
    folder = Path(version.path)
    assert folder.parent == settings.resolved_models_dir / "policy"
    assert {"config.json", "model.safetensors", "tokenizer.json", "card.json"} <= {p.name for p in folder.iterdir()}
    card = read_card(folder)
    assert card["config"]["samples_per_prompt"] == 4 and card["config"]["advantage"] == "grpo"
    assert version.config["backend"] == "transformers" and version.config["path"] == str(folder.resolve())
    assert version.config["rloo"]["config"] == card["config"]
    assert set(CURVES) <= set(version.metrics) and version.metrics == job.result["metrics"]
    assert not (settings.data_dir / "checkpoints" / f"job-{job.id}").exists()

    rows = db.execute(select(JobMetric.name, JobMetric.step, JobMetric.value).where(JobMetric.job_id == job.id)).all()
    for name in CURVES:
        assert sorted(step for metric, step, _ in rows if metric == name) == [1, 2, 3], name
    assert all(0.0 < value < 2.0 for metric, _, value in rows if metric == "safety_penalty")  # 2 × P(unsafe)
    assert job.progress == 1.0 and "RLOO job: tiny-policy-v0 → " in job.log_tail

    again = rerun_after_commit(db, session_factory, settings, job)  # died after registering: the same version
    assert again.status is JobStatus.succeeded and again.result["version_id"] == version.id
    assert db.scalar(select(func.count()).select_from(ModelVersion).where(ModelVersion.kind == ModelKind.policy)) == 2


def test_the_defaults_are_the_trainers():
    stored = validate_params("rloo", {})
    assert (
        stored["samples_per_prompt"],
        stored["batch_size"],
        stored["response_length"],
        stored["updates"],
        stored["learning_rate"],
        stored["lora_r"],
        stored["kl_coef"],
    ) == (4, 8, 48, 20, 1e-3, 16, 0.05)
    assert (stored["advantage"], stored["kl_penalty"], stored["kl_estimator"]) == ("rloo", "reward", "auto")


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"samples_per_prompt": 2}, "params.samples_per_prompt"),
        ({"value_model": "reward"}, "params.value_model"),  # no critic to choose
        ({"batch_size": 3, "samples_per_prompt": 5}, "params.num_minibatches"),  # 15 responses, 2 minibatches
        ({"kl_penalty": "loss", "kl_estimator": "k1"}, "params.kl_estimator"),
    ],
)
def test_bad_params_are_refused_naming_the_field(params, field):
    with pytest.raises(Invalid) as refused:
        validate_params("rloo", params)
    assert refused.value.field == field


def test_a_missing_reward_version_fails_the_job_and_registers_nothing(db, session_factory, settings, tiny_backbone):
    add_version(db, ModelKind.policy, tiny_backbone, name="tiny-policy-v0", status=ModelStatus.promoted)
    db.commit()
    job = run_job(db, session_factory, settings, kind="rloo", params=TINY_RLOO)
    assert (job.status, job.attempts) == (JobStatus.failed, 1)
    assert job.error.startswith("reward_version_id: no ready reward version") and made_by(db, job.id) == []
