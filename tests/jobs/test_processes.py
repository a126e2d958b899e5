"""Training jobs on two processes (``processes=2``: torchrun, gloo on the CPU) through the worker's own
code path: a real ``reward`` and a real ``ppo`` job finish with one registered version, their curves
relayed into job_metrics, and both ranks hold the same parameters after every optimizer step (each rank
trains on its own share of the batch, so only a real all-reduce keeps them equal); a cancelled job ends
both ranks. The ranks record their parameters through the probe in ``tests.jobs.rank_probe``."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError
from sqlalchemy import func, select

from app.auth.models import Role
from app.finetune.core.params import ProcessesParams
from app.jobs import service
from app.jobs.models import JobMetric, JobStatus
from app.registry.models import ModelVersion
from app.training.core.launcher import Launch
from app.training.core.rank import SETUP_ENV
from tests.helpers import run_job
from tests.jobs import rank_probe
from tests.jobs.conftest import wait_for
from tests.ppo.conftest import TINY_PPO, scorer_folders, seed_loop  # noqa: F401 - scorer_folders: a fixture
from tests.rewards.conftest import TINY, add_user, scratch_sessions, seed_preferences, tiny_backbone  # noqa: F401

TWO = {"processes": 2, "num_threads": 1}  # one thread a rank: two ranks on two cores


@pytest.fixture()
def probe(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Every launched rank installs the parameter probe, writing into the returned folder."""
    folder = tmp_path / "probe"
    folder.mkdir()
    monkeypatch.setenv(SETUP_ENV, "tests.jobs.rank_probe:install")
    monkeypatch.setenv(rank_probe.PROBE_DIR_ENV, str(folder))
    return folder


def ranks_trained_alike(probe: Path) -> list[dict[str, Any]]:
    """Both ranks' records, after checking they are two processes of one world of two that took the same
    optimizer steps, from the same parameters to the same parameters, each step changing them."""
    ranks = [rank_probe.read(probe, rank) for rank in (0, 1)]
    assert [r[0]["world"] for r in ranks] == [2, 2] and ranks[0][0]["pid"] != ranks[1][0]["pid"]
    steps = [r[1:] for r in ranks]
    assert steps[0] == steps[1] and len(steps[0]) >= 2  # identical digests before and after every step
    befores, afters = (
        [rec["before"] for rec in steps[0] if "before" in rec],
        [rec["after"] for rec in steps[0] if "after" in rec],
    )
    assert len(befores) == len(afters) >= 1 and all(b != a for b, a in zip(befores, afters, strict=True))
    return ranks


def made_by(db, job_id: int) -> list[ModelVersion]:
    return list(db.scalars(select(ModelVersion).where(ModelVersion.created_by_job_id == job_id)))


def metric_steps(db, job_id: int, name: str) -> list[int]:
    rows = db.scalars(select(JobMetric.step).where(JobMetric.job_id == job_id, JobMetric.name == name))
    return sorted(rows)


def test_a_reward_job_on_two_processes_registers_one_version_trained_by_both(
    db,
    session_factory,
    settings,
    tiny_backbone,  # noqa: F811 - the imported fixture
    probe,
):
    seed_preferences(db, 40)
    db.commit()
    params = {**TINY, **TWO, "backbone": str(tiny_backbone), "epochs": 1, "log_every": 1}
    job = run_job(db, session_factory, settings, kind="reward", params=params)

    assert job.status is JobStatus.succeeded, (job.error, job.log_tail[-3000:])
    [version] = made_by(db, job.id)
    assert job.result["version_id"] == version.id and Path(version.path, "head.safetensors").is_file()
    ranks_trained_alike(probe)
    steps = job.result["steps"]
    assert steps >= 2 and metric_steps(db, job.id, "train_loss") == list(range(1, steps + 1))  # relayed by rank 0
    assert "val_accuracy" in version.metrics and "training on 2 processes" in job.log_tail
    assert not (settings.data_dir / "checkpoints" / f"job-{job.id}").exists()  # run folder and checkpoint gone


def test_a_ppo_job_on_two_processes_registers_one_child_policy_trained_by_both(
    db,
    session_factory,
    settings,
    tiny_backbone,  # noqa: F811 - the imported fixture
    scorer_folders,  # noqa: F811 - the imported fixture
    probe,
):
    policy, reward, set_id = seed_loop(db, tiny_backbone, scorer_folders["reward"])
    db.commit()
    params = {**TINY_PPO, **TWO, "updates": 2, "prompt_set_ids": [set_id], "name": "ppo-two"}
    job = run_job(db, session_factory, settings, kind="ppo", params=params)

    assert job.status is JobStatus.succeeded, (job.error, job.log_tail[-3000:])
    [version] = made_by(db, job.id)
    assert (version.name, version.parent_id, job.result["updates"]) == ("ppo-two", policy.id, 2)
    assert job.result["reward_version_id"] == reward.id and Path(version.path, "model.safetensors").is_file()
    ranks_trained_alike(probe)
    assert metric_steps(db, job.id, "score") == [1, 2] and job.progress == 1.0


def test_a_rank_that_crashes_crashes_the_job_and_the_retry_resumes_from_the_checkpoint(
    db,
    session_factory,
    settings,
    tiny_backbone,  # noqa: F811 - the imported fixture
    probe,
    monkeypatch,
):
    seed_preferences(db, 40)
    db.commit()
    monkeypatch.setenv(rank_probe.CRASH_ENV, "1:3")  # rank 1, after the third step: two checkpoints written
    params = {**TINY, **TWO, "backbone": str(tiny_backbone), "epochs": 2, "checkpoint_every": 1}
    job = run_job(db, session_factory, settings, kind="reward", params=params)

    assert job.status is JobStatus.queued and job.attempts == 1  # a crash: retried
    assert "ProbeCrash: rank 1 crashes after optimizer step 3" in job.error
    assert "rank 1 of the training processes failed:" in job.log_tail and "Traceback" in job.log_tail
    again = run_job(db, session_factory, settings, job_id=job.id)
    assert again.status is JobStatus.succeeded, (again.error, again.log_tail[-3000:])
    assert again.result["resumed_from_step"] == 2 < 3 < again.result["steps"]  # step 3 died before its checkpoint
    assert len(made_by(db, job.id)) == 1


@pytest.fixture()
def canceller() -> Iterator[list[BaseException]]:
    """The errors of the test's background thread, checked after it."""
    errors: list[BaseException] = []
    yield errors
    if errors:
        raise errors[0]


def test_cancelling_a_job_on_two_processes_ends_both_ranks(
    scratch_sessions,  # noqa: F811 - the imported fixtures, requested by name
    settings,
    tiny_backbone,  # noqa: F811
    scorer_folders,  # noqa: F811
    probe,
    canceller,
):
    with scratch_sessions() as db:
        _, _, set_id = seed_loop(db, tiny_backbone, scorer_folders["reward"])
        admin = add_user(db, Role.admin)
        job_id = service.enqueue(db, kind="ppo", params={**TINY_PPO, **TWO, "updates": 400}).id
        db.commit()

    def cancel_once_both_ranks_stepped() -> None:
        try:
            wait_for(
                lambda: all(any("after" in r for r in rank_probe.read(probe, rank)) for rank in (0, 1)),
                timeout=120,
                what="both ranks to take an optimizer step",
            )
        except BaseException as exc:  # cancel anyway, so the job ends and the test reports this
            canceller.append(exc)
        with scratch_sessions() as other:
            service.cancel(other, job_id=job_id, actor=other.get(type(admin), admin.id))

    thread = threading.Thread(target=cancel_once_both_ranks_stepped)
    thread.start()
    with scratch_sessions() as db:
        job = run_job(db, scratch_sessions, settings, job_id=job_id)
        thread.join()
        assert job.status is JobStatus.cancelled, (job.error, job.log_tail[-3000:])
        assert (
            db.scalar(select(func.count()).select_from(ModelVersion).where(ModelVersion.created_by_job_id == job_id))
            == 0
        )
    pids = [rank_probe.read(probe, rank)[0]["pid"] for rank in (0, 1)]
    wait_for(lambda: not any(running(pid) for pid in pids), timeout=10, what="both ranks to be gone")


def running(pid: int) -> bool:
    """Whether ``pid`` still runs (a zombie, dead but not yet reaped, does not)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def test_processes_are_bounded_and_an_accelerate_config_must_exist(tmp_path: Path):
    assert not ProcessesParams().launched and ProcessesParams(processes=2).launched
    for bad in ({"processes": 0}, {"processes": 65}, {"accelerate_config": str(tmp_path / "missing.yaml")}):
        with pytest.raises(ValidationError):
            ProcessesParams(**bad)
    config = tmp_path / "multi-node.yaml"
    config.write_text("num_machines: 2\n")
    assert ProcessesParams(accelerate_config=str(config)).launched


def test_the_launch_command_is_torchrun_or_accelerate_launch(tmp_path: Path):
    torchrun = Launch(processes=4).command(tmp_path)
    assert torchrun[1:7] == ["-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "4", "-m"]
    assert torchrun[-2:] == ["app.training.core.rank", str(tmp_path)]
    accelerate = Launch(processes=8, accelerate_config="/etc/acc.yaml").command(tmp_path)
    assert accelerate[1:7] == [
        "-m",
        "accelerate.commands.launch",
        "--config_file",
        "/etc/acc.yaml",
        "--num_processes",
        "8",
    ]
    assert "--num_processes" not in Launch(processes=1, accelerate_config="/etc/acc.yaml").command(tmp_path)
