"""Fixtures for the pool tests: tiny random Llamas saved as policy checkpoints (with the real
SmolLM2 tokenizer and its chat template), prompts, and one warm generation process shared by
the whole session (its socket is fixed in the settings), killed at the end."""

from __future__ import annotations

import os
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

os.environ["HF_HUB_OFFLINE"] = "1"
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import pytest
from sqlalchemy.orm import Session

from app.config import Settings
from app.pool.warm_client import WarmClient
from app.prompts.models import PromptSet
from app.registry.models import ModelKind, ModelStatus, ModelVersion
from tests.factories import PromptFactory, PromptSetFactory

SECRET = "pool-test-secret-" + uuid.uuid4().hex
SMALL = {
    "pool_target": 6,
    "pool_batch_prompts": 4,
    "pool_max_new_tokens": 8,
    "generation_threads": 1,
    "pool_cross_version_share": 0.0,
}


def save_tiny_policy(folder: Path, *, seed: int) -> Path:
    """A tiny random Llama and the SmolLM2 tokenizer, saved as a policy checkpoint folder."""
    import torch

    from app.training.core.default_models import load_smollm2_tokenizer
    from app.training.core.tiny import tiny_llama

    torch.set_num_threads(1)
    tokenizer = load_smollm2_tokenizer(Path(tempfile.gettempdir()) / "rlhf-smollm2-tokenizer")
    model = tiny_llama(tokenizer, hidden_size=32, num_layers=2, seed=seed)
    model.generation_config.do_sample = True  # as the project saves policies (app.training.core.run.save_policy)
    model.save_pretrained(str(folder))
    tokenizer.save_pretrained(str(folder))
    return folder


@pytest.fixture(scope="session")
def tiny_policies(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    """Two different tiny policies (seeds 0 and 1), built once per run."""
    root = tmp_path_factory.mktemp("tiny-policies")
    return [save_tiny_policy(root / f"tiny-{seed}", seed=seed) for seed in (0, 1)]


@pytest.fixture(scope="session")
def warm_socket(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """One warm generation process for the session (started by the first job that needs it)."""
    folder = Path(tempfile.mkdtemp(prefix="rlhf-pool-"))
    path = folder / "gen.sock"
    yield path
    WarmClient(Settings(data_dir=folder, secret_key=SECRET, generation_socket=path)).kill_server()


@pytest.fixture()
def pool_settings(tmp_path: Path, warm_socket: Path) -> Settings:
    return Settings(data_dir=tmp_path / "var", secret_key=SECRET, generation_socket=warm_socket, **SMALL)


def add_policy(db: Session, folder: Path, *, name: str, status: ModelStatus = ModelStatus.ready) -> ModelVersion:
    version = ModelVersion(
        name=name, kind=ModelKind.policy, status=status, path=str(folder), base_model="tiny-llama",
        config={"backend": "transformers", "path": str(folder), "batch_size": 16, "device": "cpu"},
    )  # fmt: skip
    db.add(version)
    db.flush()
    return version


def add_prompts(db: Session, count: int = 5, *, k: int | None = None) -> PromptSet:
    prompt_set = PromptSetFactory(judgements_per_pair=k)
    for i in range(count):
        PromptFactory(
            prompt_set=prompt_set, messages=[{"role": "user", "content": f"Tell me about topic {i} <b>now</b>."}]
        )
    db.flush()
    return prompt_set
