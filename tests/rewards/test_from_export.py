"""A reward or classifier job that names an export trains on exactly the rows of that export's snapshot:
nothing judged after it, its aggregation, and a clear failure when the snapshot cannot be trusted."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from sqlalchemy import delete, select

from app.annotation.models import Choice, Judgement
from app.errors import Invalid
from app.jobs.models import Job, JobStatus
from app.jobs.service import enqueue
from app.registry.models import ModelKind, ModelVersion
from app.training.core.card import read_card
from tests.helpers import run_job
from tests.rewards.conftest import TINY, add_user, judge, seed_preferences
from tests.rewards.test_classifier_job import seed_labels


def export(db, session_factory, settings, **params) -> Job:
    job = run_job(db, session_factory, settings, kind="export", params=params)
    assert job.status is JobStatus.succeeded, job.error
    return job


def reward_on(db, session_factory, settings, backbone: Path, export_job: Job, **extra) -> Job:
    params = {**TINY, "epochs": 1, "backbone": str(backbone), "export_job_id": export_job.id, **extra}
    return run_job(db, session_factory, settings, kind="reward", params=params)


def versions_of(db, job: Job) -> list[ModelVersion]:
    return list(db.scalars(select(ModelVersion).where(ModelVersion.created_by_job_id == job.id)))


def test_reward_job_trains_on_the_exports_judgements_only(db, session_factory, settings, tiny_backbone):
    seed_preferences(db, 30)
    db.commit()
    trl = export(db, session_factory, settings, format="trl")
    seed_preferences(db, 12, seed=1)  # judged after the export: not in its snapshot
    db.commit()

    job = reward_on(db, session_factory, settings, tiny_backbone, trl)
    assert job.status is JobStatus.succeeded, (job.error, job.log_tail[-2000:])
    [version] = versions_of(db, job)
    assert read_card(Path(version.path))["data"]["examples"] == 30
    snapshot = trl.result["snapshot"]
    recorded = version.config["export"]
    assert (recorded["job_id"], recorded["sha256"], recorded["format"]) == (trl.id, snapshot["sha256"], "trl")
    assert recorded["counts"]["judgements"] == 30 and job.result["export"] == recorded
    assert f"data: export {trl.id} (trl, aggregation every, snapshot {snapshot['sha256'][:12]})" in job.log_tail


def test_a_majority_export_trains_one_example_per_pair(db, session_factory, settings, tiny_backbone):
    pairs = seed_preferences(db, 16)
    second, third = add_user(db), add_user(db)
    for pair in pairs[:8]:  # three votes: the first annotator's side twice and a tie, a majority of one side
        first = db.scalar(select(Judgement).where(Judgement.pair_id == pair.id))
        judge(db, pair, second, first.choice)
        judge(db, pair, third, Choice.tie)
    db.commit()
    every = export(db, session_factory, settings, format="csv", ties="keep")
    majority = export(db, session_factory, settings, format="hh", aggregation="majority")
    assert (
        every.result["snapshot"]["counts"]["judgements"] == 32 and majority.result["snapshot"]["counts"]["rows"] == 16
    )

    by_vote = reward_on(db, session_factory, settings, tiny_backbone, every, name="rm-every")
    by_pair = reward_on(db, session_factory, settings, tiny_backbone, majority, name="rm-majority", aggregate="each")
    assert by_vote.status is by_pair.status is JobStatus.succeeded, (by_vote.error, by_pair.error)
    examples = {
        job.result["name"]: read_card(Path(job.result["path"]))["data"]["examples"] for job in (by_vote, by_pair)
    }
    # 16 + 8 A/B votes + the 8 ties (half a win each way); the majority: one per pair
    assert examples == {"rm-every": 32, "rm-majority": 16}


def test_a_classifier_job_trains_on_a_labels_export(db, session_factory, settings, tiny_backbone):
    seed_labels(db, 12)
    db.commit()
    labels = export(db, session_factory, settings, format="labels")
    seed_labels(db, 6, seed=1)
    db.commit()
    job = run_job(
        db,
        session_factory,
        settings,
        kind="classifier",
        params={**TINY, "epochs": 1, "backbone": str(tiny_backbone), "export_job_id": labels.id},
    )
    assert job.status is JobStatus.succeeded, job.error
    [version] = versions_of(db, job)
    assert version.kind is ModelKind.classifier and version.config["export"]["job_id"] == labels.id
    assert read_card(Path(version.path))["data"]["examples"] == 24  # the 24 responses labelled before the export


@pytest.mark.parametrize("damage", ["altered", "deleted_row", "wrong_source", "missing", "unfinished"])
def test_an_untrustworthy_export_fails_the_job_by_name(db, session_factory, settings, tiny_backbone, damage):
    seed_preferences(db, 10)
    seed_labels(db, 2)
    db.commit()
    made = export(db, session_factory, settings, format="labels" if damage == "wrong_source" else "trl")
    ids_file = settings.data_dir / "exports" / str(made.id) / made.result["ids_file"]
    export_id, expected = (
        made.id,
        {
            "altered": "id list does not match its snapshot hash",
            "deleted_row": f"1 of the 10 judgements in export {made.id} no longer exist",
            "wrong_source": f"export {made.id} holds labels; a reward model trains on judgements",
            "missing": f"export {made.id + 1000} not found",
            "unfinished": "only a finished export can be used",
        }[damage],
    )
    if damage == "altered":
        ids_file.write_text(ids_file.read_text().split("\n", 1)[1])  # the first row dropped
    elif damage == "deleted_row":
        db.execute(delete(Judgement).where(Judgement.id == int(ids_file.read_text().split()[0])))
    elif damage == "missing":
        export_id += 1000
    elif damage == "unfinished":
        export_id = enqueue(db, kind="export", params={"format": "trl"}).id
    db.commit()

    job = run_job(
        db,
        session_factory,
        settings,
        kind="reward",
        params={**TINY, "backbone": str(tiny_backbone), "export_job_id": export_id},
    )
    assert job.status is JobStatus.failed and job.error.startswith("export_job_id: ") and expected in job.error
    assert versions_of(db, job) == []


def test_an_export_and_filters_together_are_refused_when_queued(db):
    with pytest.raises(Invalid) as refused:
        enqueue(db, kind="reward", params={"export_job_id": 3, "filters": {"annotator_ids": [1]}})
    assert refused.value.field == "params.export_job_id" and "leave the filters empty" in refused.value.message
    stored = enqueue(db, kind="reward", params={"export_job_id": 3})  # empty filters are the default
    assert json.loads(json.dumps(stored.params))["export_job_id"] == 3
