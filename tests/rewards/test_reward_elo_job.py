"""A ``reward`` job with ``target: elo`` end to end: judgements in the database → a tiny model whose reward
head regresses on Elo, registered as one version, its result comparing it with the Bradley–Terry head
trained beside it on the same held-out pairs."""

from __future__ import annotations

import json
import random
from pathlib import Path

from sqlalchemy import select

from app.annotation.models import Choice
from app.jobs.models import JobStatus
from app.registry.models import ModelKind, ModelVersion
from app.training.core.card import read_card
from tests.helpers import run_job
from tests.rewards.conftest import (
    BAD,
    GOOD,
    OBJECTS,
    TINY,
    VERBS,
    add_pair,
    add_prompt,
    add_prompt_set,
    add_user,
    judge,
)


def seed_rounds(db, prompts: int, pairs_per_prompt: int, seed: int = 0) -> None:
    """Several judged pairs per prompt (the polite answer always wins), so a response plays several games."""
    rng = random.Random(seed)
    prompt_set, annotator = add_prompt_set(db), add_user(db)
    for _ in range(prompts):
        v, o = rng.choice(VERBS), rng.choice(OBJECTS)
        prompt = add_prompt(db, prompt_set, f"How do I {v} {o}? ({rng.getrandbits(32):x})")
        for _ in range(pairs_per_prompt):
            good, bad = rng.choice(GOOD).format(v=v, o=o), rng.choice(BAD).format(v=v, o=o)
            swap = rng.random() < 0.5
            pair = add_pair(db, prompt_set, "", *((bad, good) if swap else (good, bad)), prompt=prompt)
            judge(db, pair, annotator, Choice.b if swap else Choice.a)


def test_elo_target_registers_a_version_with_both_heads_accuracies(db, session_factory, settings, tiny_backbone):
    seed_rounds(db, prompts=40, pairs_per_prompt=3)
    db.commit()
    job = run_job(
        db, session_factory, settings, kind="reward", params={**TINY, "backbone": str(tiny_backbone), "target": "elo"}
    )
    assert job.status is JobStatus.succeeded, (job.error, job.log_tail[-3000:])

    [version] = db.scalars(select(ModelVersion).where(ModelVersion.created_by_job_id == job.id))
    metrics = job.result["metrics"]
    assert version.kind is ModelKind.reward and job.result["version_id"] == version.id
    assert version.metrics == metrics
    assert {"val_accuracy", "val_bt_accuracy", "val_mse", "val_bt_loss"} <= set(metrics)
    assert metrics["val_accuracy"] >= 0.8 and metrics["val_bt_accuracy"] >= 0.8  # the rule, on held-out prompts
    card = read_card(Path(version.path))
    assert card["config"]["target"] == "elo" and card["metrics"] == metrics
    assert card["labels"] == ["reward", "bradley_terry"] == version.config["card"]["labels"]
    assert json.loads((Path(version.path) / "head.json").read_text())["labels"] == ["reward", "bradley_terry"]
