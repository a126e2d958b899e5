"""``rlhf models bootstrap``: the first policy and the starter prompts, installed once."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy import func, select

from app.errors import Invalid
from app.jobs.models import Job, JobStatus
from app.prompts.models import Prompt, PromptSet
from app.registry import service, store
from app.registry.models import ModelKind, ModelStatus, ModelVersion
from app.registry.serving import IN_PROCESS_BATCH
from app.versions import bootstrap
from tests.factories import ModelVersionFactory
from tests.helpers import run_job
from tests.pool.conftest import save_tiny_policy

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def tiny_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return save_tiny_policy(tmp_path_factory.mktemp("bootstrap-source") / "tiny", seed=3)


def _count(db, model) -> int:
    return db.scalar(select(func.count()).select_from(model))


def test_installs_promotes_and_adds_starter_prompts_once(db, settings, tiny_folder):
    lines: list[str] = []
    report = bootstrap.bootstrap(db, settings, model=str(tiny_folder), say=lines.append)

    assert (report.policy, report.installed, report.promoted) == ("policy-v0", True, True)
    version = service.promoted_policy(db)
    final = store.version_dir(settings, "policy", "policy-v0")
    assert (
        version.name == "policy-v0" and version.base_model == str(tiny_folder) and version.path == str(final.resolve())
    )
    assert version.config == {"backend": "transformers", "path": str(final.resolve()), "batch_size": IN_PROCESS_BATCH}
    assert (
        (final / "config.json").is_file()
        and (final / "model.safetensors").is_file()
        and (final / "chat_template.jinja").exists()
    )
    starter = db.scalar(select(PromptSet).where(PromptSet.name == "starter"))
    assert report.starter_prompts == _count(db, Prompt) >= 100 and starter.status.value == "active"
    assert db.scalars(select(Job.kind)).all() == ["generate"]  # the pool starts filling from it
    assert any("installing" in line for line in lines)
    # the standing instruction is in the installed template: the pool, chat and trainers all render it
    from transformers import AutoTokenizer

    rendered = AutoTokenizer.from_pretrained(final).apply_chat_template(
        [{"role": "user", "content": "Hi"}], tokenize=False, add_generation_prompt=True
    )
    assert settings.bootstrap_system_prompt and settings.bootstrap_system_prompt in rendered

    again = bootstrap.bootstrap(db, settings, model=str(tiny_folder), say=lines.append)

    assert (again.installed, again.promoted, again.starter_prompts) == (False, False, 0)
    assert _count(db, ModelVersion) == 1 and _count(db, PromptSet) == 1 and _count(db, Job) == 1
    assert "already promoted" in str(again)


def test_no_transaction_is_open_while_the_checkpoint_is_written(db, settings, tiny_folder, monkeypatch):
    # On SQLite a transaction holds the write lock: open during a slow conversion, it locked out the worker's
    # claims and every login for longer than the busy timeout (seen on a loaded machine: 500 on POST /login).
    seen: list[bool] = []
    write = bootstrap.write_checkpoint

    def watched(source: str, out: Path, *, system: str = "") -> None:
        seen.append(db.in_transaction())
        write(source, out, system=system)

    monkeypatch.setattr(bootstrap, "write_checkpoint", watched)
    bootstrap.bootstrap(db, settings, model=str(tiny_folder), say=lambda _: None)
    assert seen == [False] and service.promoted_policy(db).name == "policy-v0"


def test_finishes_a_crashed_run_without_converting_again(db, settings, tiny_folder):
    final = store.version_dir(settings, "policy", "policy-v0")
    with store.staged_folder(settings, final) as staging:  # the earlier run got this far, then died
        bootstrap.write_checkpoint(str(tiny_folder), staging)
    report = bootstrap.bootstrap(db, settings, model="/does/not/exist", say=lambda _: None)
    assert (report.installed, report.promoted) == (False, True)
    assert service.promoted_policy(db).name == "policy-v0"


def test_an_existing_promoted_policy_is_kept(db, settings):
    ModelVersionFactory(name="mine", status=ModelStatus.promoted)
    report = bootstrap.bootstrap(db, settings, model="/does/not/exist", say=lambda _: None)
    assert (report.policy, report.installed, report.promoted) == ("mine", False, False)


def test_a_model_without_chat_template_is_refused_and_leaves_nothing(db, settings, tmp_path, tiny_folder):
    plain = tmp_path / "plain"
    plain.mkdir()
    for item in tiny_folder.iterdir():
        if item.name != "chat_template.jinja":
            (plain / item.name).write_bytes(item.read_bytes())
    with pytest.raises(Invalid, match="no chat template"):
        bootstrap.bootstrap(db, settings, model=str(plain), say=lambda _: None)
    assert _count(db, ModelVersion) == 0
    assert not store.version_dir(settings, "policy", "policy-v0").exists()
    assert list((settings.resolved_models_dir / store.STAGING).iterdir()) == []


def test_serve_queues_the_bootstrap_once(db, settings):
    job = bootstrap.queue_first_bootstrap(db, settings)
    assert job is not None and job.kind == "bootstrap" and job.params == {"model": ""}
    assert bootstrap.queue_first_bootstrap(db, settings) is None  # queued already
    job.status = JobStatus.failed
    db.commit()
    assert bootstrap.queue_first_bootstrap(db, settings) is not None  # a failed first start is tried again
    assert bootstrap.queue_first_bootstrap(db, settings.model_copy(update={"bootstrap_on_serve": False})) is None


def test_serve_does_not_queue_it_when_a_policy_exists(db, settings):
    ModelVersionFactory(kind=ModelKind.policy)
    assert bootstrap.queue_first_bootstrap(db, settings) is None


def test_the_bootstrap_job_runs_through_the_worker_code_path(db, session_factory, settings, tiny_folder):
    job = run_job(db, session_factory, settings, kind="bootstrap", params={"model": str(tiny_folder)})
    assert job.status is JobStatus.succeeded, job.error
    assert (
        job.result["policy"] == "policy-v0" and job.result["installed"] is True and job.result["starter_prompts"] >= 100
    )
    assert service.promoted_policy(db).created_by_job_id == job.id


def test_cli_bootstrap_and_list(tmp_path, tiny_folder):
    env = {**os.environ, "RLHF_DATA_DIR": str(tmp_path / "var"), "RLHF_POOL_TARGET": "0"}
    env.pop("RLHF_DATABASE_URL", None)

    def rlhf(*args: str) -> subprocess.CompletedProcess[str]:
        command = [sys.executable, "-m", "app.cli", *args]
        return subprocess.run(command, env=env, cwd=ROOT, capture_output=True, text=True, timeout=300)

    first = rlhf("models", "bootstrap", "--model", str(tiny_folder))
    assert first.returncode == 0, first.stderr
    assert "installed and promoted policy-v0" in first.stdout and "starter" in first.stdout
    second = rlhf("models", "bootstrap", "--model", str(tiny_folder))
    assert second.returncode == 0 and "policy policy-v0 already promoted; prompts present" in second.stdout
    listing = rlhf("models", "list")
    assert listing.returncode == 0
    lines = listing.stdout.splitlines()
    assert lines[0].split()[:5] == ["id", "name", "kind", "status", "backend"]
    assert lines[1].split()[1:5] == ["policy-v0", "policy", "promoted", "transformers"]
    missing = rlhf("models", "bootstrap", "--model", str(tmp_path / "nothing-here"))
    assert missing.returncode == 0  # a policy is promoted already: nothing to load
