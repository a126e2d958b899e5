"""Fixtures for the instruct tests: offline hub, one CPU thread, a tiny policy saved as a checkpoint
folder (a real tokenizer with a chat template), and a way to run a job handler in this process."""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

os.environ["HF_HUB_OFFLINE"] = "1"
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import pytest  # noqa: E402
import torch  # noqa: E402

torch.set_num_threads(1)


@pytest.fixture(scope="session")
def smollm2_tokenizer():  # noqa: ANN201 - a transformers tokenizer
    from app.training.core.default_models import load_smollm2_tokenizer

    return load_smollm2_tokenizer(Path(tempfile.gettempdir()) / "rlhf-smollm2-tokenizer")


@pytest.fixture(scope="session")
def tiny_policy_dir(tmp_path_factory, smollm2_tokenizer) -> Path:
    """A tiny random Llama and the SmolLM2 tokenizer saved like a policy version's folder. Its embeddings
    are widened (std 0.3) so that its logits can move under LoRA, as a real policy's do."""
    from app.training.core.tiny import tiny_llama

    model = tiny_llama(smollm2_tokenizer, seed=0)
    with torch.no_grad():
        model.model.embed_tokens.weight.normal_(0.0, 0.3, generator=torch.Generator().manual_seed(0))
    folder = tmp_path_factory.mktemp("tiny-policy")
    model.save_pretrained(str(folder))
    smollm2_tokenizer.save_pretrained(str(folder))
    return folder


@dataclass
class Ran:
    job_id: int
    result: dict[str, Any]


def run_job(db, session_factory, settings, kind: str, params: dict[str, Any], *, job_id: int | None = None) -> Ran:  # noqa: ANN001
    """Enqueue (or take ``job_id`` again, as a retry would) and run the handler here, as a worker's child would."""
    from app.jobs import registry
    from app.jobs.context import JobContext
    from app.jobs.lifecycle import Claim, claim_next
    from app.jobs.models import Job
    from app.jobs.reporter import Reporter
    from app.jobs.service import enqueue

    if job_id is None:
        job_id = enqueue(db, kind=kind, params=params).id
        db.commit()
        claim = claim_next(db, worker_id="w", kinds=[kind], lease_seconds=600)
        db.commit()
    else:
        job = db.get(Job, job_id)
        claim = Claim(job_id=job_id, attempt=job.attempts, worker_id=job.worker_id, kind=kind)
    spec = registry.get_kind(kind)
    stored = db.get(Job, claim.job_id).params
    reporter = Reporter(session_factory, claim, flush_seconds=0.0)
    ctx = JobContext(claim=claim, params=spec.params_model.model_validate(stored), reporter=reporter,
                     settings=settings, sessions=session_factory)
    result = spec.handler(ctx)
    reporter.flush()
    return Ran(claim.job_id, result)


@pytest.fixture()
def job_runner(db, session_factory, settings):  # noqa: ANN001, ANN201
    def run(kind: str, params: dict[str, Any] | None = None, *, job_id: int | None = None) -> Ran:
        return run_job(db, session_factory, settings, kind, params or {}, job_id=job_id)

    return run
