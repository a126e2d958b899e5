"""The real first start: SmolLM2-135M-Instruct converted from its GGUF into the store as policy-v0,
promoted, and a real pair generated from a starter prompt through the generate job."""

from __future__ import annotations

import uuid

import pytest
from sqlalchemy import select

from app import migrate
from app.config import Settings
from app.db import make_engine, make_sessionmaker
from app.jobs.models import Job, JobStatus
from app.pool.models import Pair
from app.pool.warm_client import WarmClient
from app.registry.models import ModelVersion
from app.versions import bootstrap
from tests.helpers import run_job

pytestmark = pytest.mark.real_models


def test_bootstrap_installs_smollm2_and_it_writes_a_pair(tmp_path):
    engine = make_engine(f"sqlite:///{tmp_path / 'real.sqlite3'}")
    migrate.upgrade(engine)
    sessions = make_sessionmaker(engine)
    settings = Settings(
        data_dir=tmp_path / "var", secret_key="real-" + uuid.uuid4().hex, generation_socket=tmp_path / "gen.sock",
        pool_target=1, pool_max_new_tokens=24, pool_batch_prompts=1, generation_threads=2,
    )  # fmt: skip
    try:
        with sessions() as db:
            report = bootstrap.bootstrap(db, settings, say=print)
            assert (report.policy, report.installed, report.promoted) == ("policy-v0", True, True)
            version = db.scalar(select(ModelVersion))
            assert version.base_model == bootstrap.DEFAULT_BASE_MODEL
            assert bootstrap.bootstrap(db, settings, say=print).installed is False

            queued = db.scalar(select(Job.id).where(Job.kind == "generate"))  # the pool follows the promotion
            job = run_job(db, sessions, settings, job_id=queued)

            assert job.status is JobStatus.succeeded, job.error
            pair = db.scalar(select(Pair).where(Pair.created_by_job_id == job.id))
            texts = [pair.response_a.text, pair.response_b.text]
            assert all(t.strip() and "<|im_" not in t for t in texts) and texts[0] != texts[1]
            assert pair.response_a.policy_version_id == version.id
    finally:
        WarmClient(settings).kill_server()
        engine.dispose()
