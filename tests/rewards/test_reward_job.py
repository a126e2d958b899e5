"""The ``reward`` job end to end in this process: judged pairs in the database → a trained tiny Llama in
the model store → exactly one registered ``reward`` version, with its curves in job_metrics."""

from __future__ import annotations

import json
import math
from pathlib import Path

from sqlalchemy import func, select

from app.finetune.core.head_job import MIN_EXAMPLES
from app.jobs.models import JobMetric, JobStatus
from app.registry.models import ModelKind, ModelVersion
from app.training.core.card import read_card
from tests.helpers import rerun_after_commit, run_job
from tests.rewards.conftest import TINY, add_prompt_set, seed_preferences


def versions_of(db, job_id: int) -> list[ModelVersion]:
    return list(db.scalars(select(ModelVersion).where(ModelVersion.created_by_job_id == job_id)))


def test_reward_job_trains_registers_one_version_and_records_its_curves(db, session_factory, settings, tiny_backbone):
    seed_preferences(db, 120)
    db.commit()
    job = run_job(
        db,
        session_factory,
        settings,
        kind="reward",
        params={
            **TINY,
            "backbone": str(tiny_backbone),
            "margin": 0.5,
            "center_rewards_coefficient": 0.01,
            "log_every": 1,
        },
    )  # a curve point every step (the default reports every 10)
    assert job.status is JobStatus.succeeded, (job.error, job.log_tail[-3000:])

    [version] = versions_of(db, job.id)
    result = job.result
    assert (version.kind, version.id, version.name) == (ModelKind.reward, result["version_id"], f"reward-job{job.id}")
    assert version.metrics == result["metrics"] and version.metrics["val_accuracy"] >= 0.8
    assert result["warnings"][0].startswith("120 judged pairs (A/B verdicts): too few")  # the data check
    assert "held-out examples: not a reliable figure" in result["warnings"][1]
    assert "warning: 120 judged pairs" in job.log_tail
    assert math.isfinite(version.metrics["val_loss"]) and "val_margin" in version.metrics
    folder = Path(version.path)
    assert folder.parent == settings.resolved_models_dir / "reward"
    assert {"head.json", "head.safetensors", "card.json", "config.json", "tokenizer.json"} <= {
        p.name for p in folder.iterdir()
    }
    card = read_card(folder)
    assert card["data"]["examples"] == 120 == card["data"]["train_examples"] + card["data"]["validation_examples"]
    assert len(card["data"]["ids_sha256"]) == 64 and card["metrics"] == version.metrics
    assert card["config"]["margin"] == 0.5 and card["config"]["backbone"] == str(tiny_backbone)
    assert not (settings.data_dir / "checkpoints" / f"job-{job.id}").exists()  # the resume checkpoint is gone

    rows = db.execute(select(JobMetric.name, func.count()).where(JobMetric.job_id == job.id).group_by(JobMetric.name))
    counts = dict(rows.all())
    assert counts["train_loss"] == counts["train_accuracy"] == counts["train_margin"] == result["steps"]  # every step
    assert counts["val_accuracy"] == counts["val_loss"] == 1
    assert job.progress == 1.0


def test_a_rerun_after_registering_returns_the_same_version(db, session_factory, settings, tiny_backbone):
    seed_preferences(db, 24)
    db.commit()
    params = {**TINY, "backbone": str(tiny_backbone), "epochs": 1, "name": "rm-once"}
    first = run_job(db, session_factory, settings, kind="reward", params=params)
    assert first.status is JobStatus.succeeded, first.error
    again = rerun_after_commit(db, session_factory, settings, first)
    assert again.status is JobStatus.succeeded and again.attempts == 2
    assert again.result["version_id"] == first.result["version_id"]
    assert len(versions_of(db, first.id)) == 1


def test_the_policy_versions_own_folder_can_be_the_backbone(db, session_factory, settings, tiny_backbone):
    policy = ModelVersion(name="tiny-policy", kind=ModelKind.policy, path=str(tiny_backbone), base_model="tiny")
    db.add(policy)
    seed_preferences(db, 24)
    db.commit()
    job = run_job(
        db,
        session_factory,
        settings,
        kind="reward",
        params={**TINY, "epochs": 1, "backbone_version_id": policy.id, "aggregate": "majority"},
    )
    assert job.status is JobStatus.succeeded, job.error
    [version] = versions_of(db, job.id)
    assert version.parent_id == policy.id and version.base_model == str(tiny_backbone)
    assert json.loads((Path(version.path) / "head.json").read_text())["pooling"] == "last"


def test_no_usable_pairs_fails_the_job_without_registering(db, session_factory, settings, tiny_backbone):
    other = add_prompt_set(db)
    seed_preferences(db, 5)
    db.commit()
    job = run_job(
        db,
        session_factory,
        settings,
        kind="reward",
        params={**TINY, "backbone": str(tiny_backbone), "filters": {"prompt_set_ids": [other.id]}},
    )
    assert job.status is JobStatus.failed and job.attempts == 1
    assert f"at least {MIN_EXAMPLES}" in job.error
    assert versions_of(db, job.id) == []


def test_ties_are_read_unless_switched_off_and_alone_they_are_not_enough(db, session_factory, settings, tiny_backbone):
    from app.annotation.models import Choice
    from tests.rewards.conftest import add_pair, add_user, judge

    judged = add_prompt_set(db)  # read through a filter: the counts are this set's alone
    pairs = seed_preferences(db, 12, prompt_set=judged)
    tied_by = add_user(db)
    for pair in pairs[:6]:  # a second annotator finds six of them alike
        judge(db, pair, tied_by, Choice.tie)
    db.commit()
    params = {**TINY, "backbone": str(tiny_backbone), "filters": {"prompt_set_ids": [judged.id]}}
    with_ties = run_job(db, session_factory, settings, kind="reward", params=params)
    without = run_job(db, session_factory, settings, kind="reward", params={**params, "learn_from_ties": False})
    assert with_ties.status is without.status is JobStatus.succeeded, (with_ties.error, without.error)
    examples = {job.id: read_card(Path(job.result["path"]))["data"]["examples"] for job in (with_ties, without)}
    assert examples == {with_ties.id: 18, without.id: 12}
    assert read_card(Path(with_ties.result["path"]))["config"]["learn_from_ties"] is True

    mostly_ties = add_prompt_set(db)
    seed_preferences(db, 1, prompt_set=mostly_ties)  # one decided pair, four tied ones: nothing to rank by
    for i in range(4):
        judge(db, add_pair(db, mostly_ties, f"q{i}", f"a{i}", f"b{i}"), tied_by, Choice.tie)
    db.commit()
    filters = {"prompt_set_ids": [mostly_ties.id]}
    job = run_job(db, session_factory, settings, kind="reward", params={**params, "filters": filters})
    assert job.status is JobStatus.failed and "only 1 usable examples" in job.error, job.error
