"""The ``dpo`` and ``online_dpo`` jobs end to end through the worker's code path (``run_attempt``): rows in
the database → training in the job → exactly one new ready policy version, child of the trained one,
loadable, with its curves in job_metrics; a re-run after registering returns the same version."""

from __future__ import annotations

import math
from pathlib import Path

from sqlalchemy import func, select

from app.annotation.models import Choice
from app.jobs.models import JobMetric, JobStatus
from app.registry.models import ModelKind, ModelStatus, ModelVersion
from app.training.core.card import read_card
from tests.dpo.conftest import TINY_DPO, TINY_ONLINE, add_version, seed_loop
from tests.helpers import rerun_after_commit, run_job
from tests.rewards.conftest import add_pair, add_prompt_set, add_user, judge, seed_preferences

DPO_CURVES = ("train_loss", "train_reward_accuracy", "train_chosen_reward", "train_rejected_reward", "train_margin")
ROUND_CURVES = ("score_mean", "score_best", "score_worst", "pairs", "tied_prompts", "response_length")


def made_by(db, job_id: int) -> list[ModelVersion]:
    return list(db.scalars(select(ModelVersion).where(ModelVersion.created_by_job_id == job_id)))


def policies(db) -> int:
    return db.scalar(select(func.count()).select_from(ModelVersion).where(ModelVersion.kind == ModelKind.policy))


def steps_of(db, job_id: int, name: str) -> list[int]:
    return sorted(db.scalars(select(JobMetric.step).where(JobMetric.job_id == job_id, JobMetric.name == name)))


def assert_one_loadable_child(db, job, parent: ModelVersion, settings) -> ModelVersion:
    assert job.status is JobStatus.succeeded, (job.error, job.log_tail[-3000:])
    [version] = made_by(db, job.id)
    assert (version.kind, version.status, version.parent_id) == (ModelKind.policy, ModelStatus.ready, parent.id)
    assert job.result["version_id"] == version.id and job.result["parent_id"] == parent.id
    folder = Path(version.path)
    assert folder.parent == settings.resolved_models_dir / "policy"
    assert {"config.json", "model.safetensors", "tokenizer.json", "card.json"} <= {p.name for p in folder.iterdir()}
    assert version.config["backend"] == "transformers" and version.config["path"] == str(folder.resolve())
    assert not (settings.data_dir / "checkpoints" / f"job-{job.id}").exists()
    assert job.progress == 1.0 and version.metrics == job.result["metrics"]
    from transformers import AutoModelForCausalLM

    assert AutoModelForCausalLM.from_pretrained(str(folder)).config.vocab_size >= 49152  # a plain, merged checkpoint
    return version


def test_dpo_job_trains_on_the_judged_pairs_and_registers_one_child(db, session_factory, settings, tiny_backbone):
    parent = add_version(db, ModelKind.policy, tiny_backbone, name="tiny-policy-v0", status=ModelStatus.promoted)
    prompt_set, annotator = add_prompt_set(db), add_user(db)
    seed_preferences(db, 8, prompt_set=prompt_set, annotator=annotator)
    for choice in (Choice.tie, Choice.both_bad):  # say nothing about which answer is better: not pairs
        judge(
            db,
            add_pair(db, prompt_set, "How do I sort a drawer?", "Left to right.", "Right to left."),
            annotator,
            choice,
        )
    db.commit()

    job = run_job(db, session_factory, settings, kind="dpo", params={**TINY_DPO, "name": "tiny-dpo"})

    version = assert_one_loadable_child(db, job, parent, settings)
    assert version.name == "tiny-dpo" and job.result["pairs"] == 8
    card = read_card(version.path)
    assert card["kind"] == "dpo" and card["data"]["examples"] == 8 and card["config"]["policy"] == str(tiny_backbone)
    assert version.metrics["train_pairs"] + version.metrics["validation_pairs"] == 8
    assert {"val_reward_accuracy", "val_margin", "val_loss"} <= set(version.metrics)
    steps = job.result["steps"]
    assert steps >= 1 and version.config["dpo"]["steps"] == steps
    for name in DPO_CURVES:
        assert steps_of(db, job.id, name) == list(range(1, steps + 1)), name

    again = rerun_after_commit(db, session_factory, settings, job)
    assert again.status is JobStatus.succeeded and again.attempts == 2
    assert again.result["version_id"] == version.id and len(made_by(db, job.id)) == 1 and policies(db) == 2


def test_online_dpo_job_ranks_its_own_samples_and_registers_one_child(
    db, session_factory, settings, tiny_backbone, scorer_folders
):
    parent, reward, set_id = seed_loop(db, tiny_backbone, scorer_folders["reward"])
    classifier = add_version(db, ModelKind.classifier, scorer_folders["classifier"], name="tiny-cls")
    db.commit()

    job = run_job(
        db,
        session_factory,
        settings,
        kind="online_dpo",
        params={**TINY_ONLINE, "prompt_set_ids": [set_id], "classifier_version_id": classifier.id},
    )

    version = assert_one_loadable_child(db, job, parent, settings)
    assert version.name == f"online_dpo-job{job.id}" and policies(db) == 2
    result = job.result
    assert (result["reward_version_id"], result["classifier_version_id"], result["prompts"], result["rounds"]) == (
        reward.id,
        classifier.id,
        6,
        2,
    )
    card = read_card(version.path)
    assert card["kind"] == "online_dpo" and card["rounds"] == 2 and card["data"]["prompts"] == 6
    for name in ROUND_CURVES:
        assert steps_of(db, job.id, name) == [1, 2], name
    # The reward model's scores (net of the safety penalty) differ between samples, so prompts make pairs.
    train_steps = steps_of(db, job.id, "train_loss")
    assert card["data"]["pairs"] >= 1 and train_steps == list(range(1, card["steps"] + 1)) and train_steps
    assert {"score_mean", "train_loss", "pairs"} <= set(version.metrics)
    # KL per token of the paired answers to the starting policy: 0 before the first update (LoRA starts at
    # zero, so π = π_ref), then whatever training moved; finite in every round that made pairs.
    kl = dict(
        db.execute(
            select(JobMetric.step, JobMetric.value).where(JobMetric.job_id == job.id, JobMetric.name == "kl_per_token")
        ).all()
    )
    assert kl and all(math.isfinite(v) for v in kl.values())
    if 1 in kl:
        assert abs(kl[1]) < 1e-4, kl


def test_online_dpo_without_a_reward_version_fails_naming_it(db, session_factory, settings, tiny_backbone):
    add_version(db, ModelKind.policy, tiny_backbone, name="tiny-policy-v0", status=ModelStatus.promoted)
    db.commit()
    job = run_job(db, session_factory, settings, kind="online_dpo", params=TINY_ONLINE)
    assert (job.status, job.attempts) == (JobStatus.failed, 1)
    assert job.error.startswith("reward_version_id: no ready reward version") and made_by(db, job.id) == []


def test_dpo_without_judged_pairs_fails_naming_the_filters(db, session_factory, settings, tiny_backbone):
    add_version(db, ModelKind.policy, tiny_backbone, name="tiny-policy-v0", status=ModelStatus.promoted)
    db.commit()
    job = run_job(db, session_factory, settings, kind="dpo", params=TINY_DPO)
    assert job.status is JobStatus.failed and job.error.startswith("filters: only 0 judged pairs")
