"""Fixtures for the reward tests: a tiny Llama backbone with the real SmolLM2 tokenizer saved as a folder
(built once), annotation data with a rule a tiny model can learn (polite, helpful answers beat rude or
useless ones). Jobs run through ``tests.helpers.run_job``."""

from __future__ import annotations

import os
import random
import tempfile
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

os.environ["HF_HUB_OFFLINE"] = "1"
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import pytest
from sqlalchemy.orm import Session, sessionmaker

from app import migrate
from app.annotation.models import Choice, Judgement, ResponseLabel
from app.auth import service as auth_service
from app.auth.models import Role, User
from app.db import make_engine, make_sessionmaker
from app.pool.models import Pair, Response
from app.prompts.models import Prompt, PromptSet

VERBS = ["clean", "fix", "paint", "store", "wash", "repair", "move", "sort"]
OBJECTS = [
    "a bike",
    "the kitchen",
    "a shelf",
    "my shoes",
    "the garden",
    "a window",
    "the car",
    "a table",
    "the fridge",
    "a lamp",
    "the fence",
    "a chair",
]
GOOD = [
    "Sure, happy to help! To {v} {o}, first go slowly, then check it twice.",
    "Of course. Here is a simple way to {v} {o}: plan it, then do it. Good luck!",
]
BAD = ["Ugh, figure out how to {v} {o} yourself.", "That is a stupid question. Nobody cares about {o}."]


def save_tiny_backbone(folder: Path) -> Path:
    """A tiny random Llama (hidden 32) and the SmolLM2 tokenizer, saved like a policy checkpoint."""
    import torch

    from app.training.core.default_models import load_smollm2_tokenizer
    from app.training.core.tiny import tiny_llama

    torch.set_num_threads(1)
    tokenizer = load_smollm2_tokenizer(Path(tempfile.gettempdir()) / "rlhf-smollm2-tokenizer")
    tiny_llama(tokenizer, hidden_size=32, num_layers=2, seed=0).save_pretrained(str(folder))
    tokenizer.save_pretrained(str(folder))
    return folder


@pytest.fixture(scope="session")
def tiny_backbone(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return save_tiny_backbone(tmp_path_factory.mktemp("tiny-backbone") / "tiny-llama")


@pytest.fixture()
def scratch_sessions(scratch_db_url: str) -> Iterator[sessionmaker[Session]]:
    """A migrated database of the test's own: worker processes commit to it (crash-and-resume tests)."""
    engine = make_engine(scratch_db_url)
    migrate.upgrade(engine)
    yield make_sessionmaker(engine)
    engine.dispose()


def add_user(db: Session, role: Role = Role.annotator) -> User:
    user = User(username=f"rw-{random.getrandbits(40):x}", password_hash="x", role=role)
    db.add(user)
    db.flush()
    return user


def add_prompt_set(db: Session, name: str | None = None) -> PromptSet:
    prompt_set = PromptSet(name=name or f"rw-set-{random.getrandbits(40):x}")
    db.add(prompt_set)
    db.flush()
    return prompt_set


def add_prompt(db: Session, prompt_set: PromptSet, question: str) -> Prompt:
    prompt = Prompt(
        prompt_set_id=prompt_set.id,
        messages=[{"role": "user", "content": question}],
        content_hash=f"{random.getrandbits(128):032x}",
    )
    db.add(prompt)
    db.flush()
    return prompt


def add_pair(
    db: Session, prompt_set: PromptSet, question: str, text_a: str, text_b: str, *, prompt: Prompt | None = None
) -> Pair:
    """Two responses to a prompt (a new one with ``question`` unless given) and the pair comparing them."""
    prompt = prompt or add_prompt(db, prompt_set, question)
    a, b = Response(prompt_id=prompt.id, text=text_a), Response(prompt_id=prompt.id, text=text_b)
    db.add_all([a, b])
    db.flush()
    pair = Pair(prompt_id=prompt.id, response_a_id=a.id, response_b_id=b.id, judgements_needed=3)
    db.add(pair)
    db.flush()
    return pair


def judge(
    db: Session, pair: Pair, annotator: User, choice: Choice, strength: int = 2, created_at: datetime | None = None
) -> Judgement:
    extra = {"created_at": created_at} if created_at is not None else {}
    judgement = Judgement(pair_id=pair.id, annotator_id=annotator.id, choice=choice, strength=strength, **extra)
    db.add(judgement)
    db.flush()
    return judgement


def label(db: Session, response_id: int, annotator: User, *, quality: bool, safety: bool) -> ResponseLabel:
    row = ResponseLabel(response_id=response_id, annotator_id=annotator.id, quality=quality, safety=safety)
    db.add(row)
    db.flush()
    return row


def seed_preferences(
    db: Session, n: int, *, seed: int = 0, prompt_set: PromptSet | None = None, annotator: User | None = None
) -> list[Pair]:
    """``n`` pairs, one A/B judgement each, the polite helpful answer always preferred; sides random."""
    rng = random.Random(seed)
    prompt_set = prompt_set or add_prompt_set(db)
    annotator = annotator or add_user(db)
    pairs = []
    for _ in range(n):
        v, o = rng.choice(VERBS), rng.choice(OBJECTS)
        good, bad = rng.choice(GOOD).format(v=v, o=o), rng.choice(BAD).format(v=v, o=o)
        swap = rng.random() < 0.5
        pair = add_pair(db, prompt_set, f"How do I {v} {o}?", *((bad, good) if swap else (good, bad)))
        judge(db, pair, annotator, Choice.b if swap else Choice.a, strength=rng.randint(1, 3))
        pairs.append(pair)
    return pairs


def bearer(db: Session, role: Role) -> dict[str, str]:
    _, raw = auth_service.create_token(db, user=add_user(db, role), name="api")
    return {"Authorization": f"Bearer {raw}"}


TINY = {
    "learning_rate": 3e-3,
    "epochs": 4,
    "batch_size": 8,
    "use_cpu": True,
    "num_threads": 1,
    "checkpoint_every": 0,
    "validation_fraction": 0.25,
    "max_length": 128,
}
