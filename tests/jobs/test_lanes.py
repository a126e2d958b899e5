"""Worker lanes (issue 17): a short job runs while a long one holds the training lane; specs are checked."""

from __future__ import annotations

import pytest

from app.config import Settings
from app.jobs import registry
from app.jobs.models import JobStatus
from app.lanes import DEFAULT_LANES, Lane, parse_lanes
from tests.jobs.conftest import add_job, load, wait_finished, wait_for


@pytest.mark.parametrize(
    ("spec", "lanes"),
    [
        (DEFAULT_LANES, {Lane.generation: 1, Lane.training: 1, Lane.short: 1}),
        ("training:2", {Lane.training: 2}),
        (" generation , short:3 ", {Lane.generation: 1, Lane.short: 3}),
    ],
)
def test_a_lane_spec_names_slots_per_lane(spec, lanes):
    assert parse_lanes(spec) == lanes


@pytest.mark.parametrize(
    ("spec", "says"),
    [
        ("gpu:2", "unknown lane 'gpu'"),
        ("training:two", "'two' is not a whole number"),
        ("training:0", "slots must be 1-16, not 0"),
        ("short,short:2", "named twice"),
        (" , ", "name at least one lane"),
    ],
)
def test_a_bad_lane_spec_is_refused_naming_the_part(spec, says):
    with pytest.raises(ValueError, match=says):
        parse_lanes(spec)
    with pytest.raises(ValueError, match="worker_lanes"):
        Settings(worker_lanes=spec)


def test_every_builtin_kind_is_in_the_lane_its_work_belongs_to():
    registry.load_job_modules()
    lanes = {kind.name: kind.lane for kind in registry.kinds() if not kind.name.startswith("test.")}
    short = {"export", "import", "reward_agreement", "rank_pairs"}
    generation = {"generate", "self_instruct", "bootstrap"}
    assert {n for n, lane in lanes.items() if lane is Lane.short} == short
    assert {n for n, lane in lanes.items() if lane is Lane.generation} == generation
    trainers = set(lanes) - short - generation
    assert {"reward", "classifier", "sft", "ppo", "rloo", "dpo", "online_dpo"} <= trainers
    assert all(lanes[n] is Lane.training for n in trainers)
    assert set(registry.names([Lane.short])) == short


def test_an_export_starts_and_finishes_while_a_training_job_runs(sessions, thread_workers, marker_dir):
    """One worker with the default lanes: the long job (a training-lane kind) keeps running throughout."""
    long_job = add_job(sessions, "test.record", {"marker_dir": str(marker_dir), "steps": 200, "step_seconds": 0.1})
    worker = thread_workers("lanes")
    wait_for(lambda: load(sessions, long_job).status is JobStatus.running, timeout=60, what="the long job to start")
    export = add_job(sessions, "export", {"format": "trl"})
    done = wait_finished(sessions, export, timeout=60)
    assert done.status is JobStatus.succeeded, (done.error, done.log_tail)
    # Queued after the long job started and done before it ended: it never waited for the training lane.
    assert load(sessions, long_job).status is JobStatus.running
    worker.join()


def test_a_worker_with_one_lane_leaves_the_others_jobs_queued(sessions, thread_workers, marker_dir):
    export = add_job(sessions, "export", {"format": "trl"})
    record = add_job(sessions, "test.record", {"marker_dir": str(marker_dir)})
    worker = thread_workers("short-only", worker_lanes="short")
    assert wait_finished(sessions, export, timeout=60).status is JobStatus.succeeded
    assert load(sessions, record).status is JobStatus.queued
    worker.join()
