"""With a real worker, nobody acts: the periodic refill task queues a generate job, the worker runs
it in a job process, that process starts the worker's warm generation process, and the pool fills."""

from __future__ import annotations

import contextlib
import os
import signal
import threading
import time

from sqlalchemy import select

from app import migrate
from app.config import Settings
from app.db import make_engine, make_sessionmaker
from app.jobs.models import Job, JobStatus
from app.jobs.worker import run_worker
from app.pool import service
from app.prompts.models import Prompt, PromptSet
from app.registry.models import ModelKind, ModelStatus, ModelVersion
from tests.pool.conftest import SECRET, SMALL

FAST = {"job_lease_seconds": 30, "job_heartbeat_seconds": 0.5, "worker_poll_seconds": 0.1}


def _seed(db, folder) -> int:
    version = ModelVersion(
        name="tiny-v0", kind=ModelKind.policy, status=ModelStatus.promoted, path=str(folder),
        config={"backend": "transformers", "path": str(folder), "batch_size": 16},
    )  # fmt: skip
    prompt_set = PromptSet(name="worker prompts")
    db.add_all([version, prompt_set])
    db.flush()
    for i in range(4):
        db.add(
            Prompt(
                prompt_set_id=prompt_set.id,
                messages=[{"role": "user", "content": f"Question {i}?"}],
                content_hash=f"h{i}",
            )
        )
    db.commit()
    return version.id


def test_a_worker_fills_the_pool_by_itself(scratch_db_url, tmp_path, tiny_policies):
    engine = make_engine(scratch_db_url)
    migrate.upgrade(engine)
    sessions = make_sessionmaker(engine)
    with sessions() as db:
        version_id = _seed(db, tiny_policies[0])
    settings = Settings(data_dir=tmp_path / "var", database_url=scratch_db_url, secret_key=SECRET, **SMALL, **FAST)
    stop = threading.Event()
    worker = threading.Thread(
        target=run_worker, args=(settings,), kwargs={"worker_id": "pool-worker", "stop_event": stop}, daemon=True
    )
    worker.start()
    try:
        # The job commits its last pairs before it records itself finished, so wait for both.
        deadline = time.monotonic() + 240
        pending, jobs = 0, []
        while time.monotonic() < deadline and not (
            pending == settings.pool_target and jobs and all(j.status == JobStatus.succeeded for j in jobs)
        ):
            time.sleep(0.5)
            with sessions() as db:
                pending = service.pending_count(db, version_id=version_id)
                jobs = db.scalars(select(Job).order_by(Job.id)).all()
        assert pending == settings.pool_target
        assert [(j.kind, j.status, j.params["reason"]) for j in jobs] == [("generate", JobStatus.succeeded, "refill")]
        assert jobs[0].result["pairs"] == settings.pool_target and jobs[0].result["warm_pids"]
    finally:
        stop.set()
        worker.join(timeout=60)
        with sessions() as db:
            for job in db.scalars(select(Job)):
                for pid in (job.result or {}).get("warm_pids", []):
                    with contextlib.suppress(ProcessLookupError):
                        os.kill(pid, signal.SIGKILL)
        engine.dispose()
    assert not worker.is_alive()
