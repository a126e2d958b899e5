"""The ``ppo`` job end to end in this process: a promoted tiny policy, a tiny reward version and a prompt set
in the database → PPO in the job → one new ready policy version, child of the old one, loadable and
servable, with the curves of every update in job_metrics."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import func, select

from app.jobs.models import JobMetric, JobStatus
from app.registry.models import ModelKind, ModelStatus, ModelVersion
from app.training.core.card import read_card
from tests.helpers import rerun_after_commit, run_job
from tests.ppo.conftest import TINY_PPO, add_version, seed_loop
from tests.rewards.conftest import add_prompt, add_prompt_set

CURVES = (
    "score",
    "reward",
    "kl",
    "entropy",
    "policy_loss",
    "value_loss",
    "clip_fraction",
    "approx_kl",
    "response_length",
    "beta",
)


def made_by(db, job_id: int) -> list[ModelVersion]:
    return list(db.scalars(select(ModelVersion).where(ModelVersion.created_by_job_id == job_id)))


def test_ppo_job_registers_a_child_policy_and_records_every_update(
    db, session_factory, settings, tiny_backbone, scorer_folders
):
    policy, reward, set_id = seed_loop(db, tiny_backbone, scorer_folders["reward"])
    other_set = add_prompt_set(db)
    add_prompt(db, other_set, "A prompt of another set, not chosen.")
    db.commit()

    job = run_job(
        db, session_factory, settings, kind="ppo", params={**TINY_PPO, "prompt_set_ids": [set_id], "name": "tiny-ppo"}
    )

    assert job.status is JobStatus.succeeded, (job.error, job.log_tail[-3000:])
    [version] = made_by(db, job.id)
    assert (version.kind, version.status, version.parent_id, version.name) == (
        ModelKind.policy,
        ModelStatus.ready,
        policy.id,
        "tiny-ppo",
    )
    assert job.result["version_id"] == version.id and job.result["parent_id"] == policy.id
    assert (job.result["reward_version_id"], job.result["prompts"], job.result["updates"]) == (reward.id, 6, 3)
    folder = Path(version.path)
    assert folder.parent == settings.resolved_models_dir / "policy"
    assert {"config.json", "model.safetensors", "tokenizer.json", "card.json"} <= {p.name for p in folder.iterdir()}
    assert read_card(folder)["config"]["policy"] == str(tiny_backbone)
    assert version.config["backend"] == "transformers" and version.config["path"] == str(folder.resolve())
    assert version.config["batch_size"] == 16 and version.config["ppo"]["reward_version_id"] == reward.id
    assert set(CURVES) <= set(version.metrics) and version.metrics == job.result["metrics"]
    assert not (settings.data_dir / "checkpoints" / f"job-{job.id}").exists()

    rows = db.execute(select(JobMetric.name, JobMetric.step).where(JobMetric.job_id == job.id)).all()
    for name in CURVES:
        assert sorted(step for metric, step in rows if metric == name) == [1, 2, 3], name
    assert job.progress == 1.0


def test_a_rerun_after_registering_returns_the_same_version(
    db, session_factory, settings, tiny_backbone, scorer_folders
):
    seed_loop(db, tiny_backbone, scorer_folders["reward"])
    db.commit()
    first = run_job(db, session_factory, settings, kind="ppo", params={**TINY_PPO, "updates": 1})
    assert first.status is JobStatus.succeeded, first.error
    assert first.result["name"] == f"ppo-job{first.id}"  # the default name
    again = rerun_after_commit(db, session_factory, settings, first)
    assert again.status is JobStatus.succeeded and again.attempts == 2
    assert again.result["version_id"] == first.result["version_id"]
    assert len(made_by(db, first.id)) == 1
    assert db.scalar(select(func.count()).select_from(ModelVersion).where(ModelVersion.kind == ModelKind.policy)) == 2


def test_a_safety_penalty_and_a_value_model_from_the_reward_version(
    db, session_factory, settings, tiny_backbone, scorer_folders
):
    policy, reward, _ = seed_loop(db, tiny_backbone, scorer_folders["reward"])
    classifier = add_version(db, ModelKind.classifier, scorer_folders["classifier"], name="tiny-cls")
    db.commit()
    job = run_job(
        db,
        session_factory,
        settings,
        kind="ppo",
        params={
            **TINY_PPO,
            "updates": 2,
            "classifier_version_id": classifier.id,
            "safety_weight": 2.0,
            "value_model": "reward",
            "reward_version_id": reward.id,
            "policy_version_id": policy.id,
        },
    )
    assert job.status is JobStatus.succeeded, (job.error, job.log_tail[-3000:])
    penalties = db.scalars(
        select(JobMetric.value).where(JobMetric.job_id == job.id, JobMetric.name == "safety_penalty")
    ).all()
    assert len(penalties) == 2 and all(0.0 < p < 2.0 for p in penalties)  # 2 × P(unsafe), never exactly 0 or 2
    assert job.result["classifier_version_id"] == classifier.id


class TestRefusals:
    """What no retry can fix fails the job at once, naming the parameter to change; nothing is registered."""

    def test_no_reward_version(self, db, session_factory, settings, tiny_backbone):
        add_version(db, ModelKind.policy, tiny_backbone, name="tiny-policy-v0", status=ModelStatus.promoted)
        db.commit()
        job = run_job(db, session_factory, settings, kind="ppo", params=TINY_PPO)
        assert (job.status, job.attempts) == (JobStatus.failed, 1)
        assert job.error.startswith("reward_version_id: no ready reward version") and made_by(db, job.id) == []

    def test_a_policy_without_a_local_folder(self, db, session_factory, settings, tiny_backbone, scorer_folders):
        _, reward, _ = seed_loop(db, tiny_backbone, scorer_folders["reward"])
        remote = add_version(db, ModelKind.policy, settings.data_dir / "nowhere", name="remote-policy")
        db.commit()
        job = run_job(db, session_factory, settings, kind="ppo", params={**TINY_PPO, "policy_version_id": remote.id})
        assert job.status is JobStatus.failed and job.error.startswith("policy_version_id: policy remote-policy has no")

    def test_a_name_that_is_taken(self, db, session_factory, settings, tiny_backbone, scorer_folders):
        seed_loop(db, tiny_backbone, scorer_folders["reward"])
        db.commit()
        job = run_job(db, session_factory, settings, kind="ppo", params={**TINY_PPO, "name": "tiny-rm"})
        assert job.status is JobStatus.failed and job.error.startswith("name: a model version named 'tiny-rm'")

    def test_an_unknown_prompt_set_and_a_classifier_without_the_safety_head(
        self, db, session_factory, settings, tiny_backbone, scorer_folders
    ):
        seed_loop(db, tiny_backbone, scorer_folders["reward"])
        classifier = add_version(db, ModelKind.classifier, scorer_folders["classifier"], name="tiny-cls")
        db.commit()
        missing = run_job(db, session_factory, settings, kind="ppo", params={**TINY_PPO, "prompt_set_ids": [999999]})
        assert missing.status is JobStatus.failed and missing.error == "prompt_set_ids: no prompt set 999999"
        headless = run_job(
            db,
            session_factory,
            settings,
            kind="ppo",
            params={**TINY_PPO, "classifier_version_id": classifier.id, "safety_head": "kindness"},
        )
        assert headless.status is JobStatus.failed and headless.error.startswith("safety_head: the classifier has no")
        assert made_by(db, missing.id) == made_by(db, headless.id) == []
