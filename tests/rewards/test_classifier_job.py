"""The ``classifier`` job: per-response labels (each head's majority) → two binary heads with validation
accuracy and AUROC per head → one registered ``classifier`` version that the scoring service can use."""

from __future__ import annotations

import random

from sqlalchemy import select

from app.finetune.core import scoring
from app.jobs.models import JobMetric, JobStatus
from app.registry.models import ModelKind, ModelVersion
from tests.helpers import run_job
from tests.rewards.conftest import BAD, GOOD, OBJECTS, TINY, VERBS, add_pair, add_prompt_set, add_user, label


def seed_labels(db, n: int, seed: int = 0) -> None:
    """``n`` pairs whose responses carry labels: quality 1 for the polite templates, safety 0 for a weapon.
    Two annotators agree and a third dissents on every response, so only the majority is learnable."""
    rng = random.Random(seed)
    prompt_set, annotators = add_prompt_set(db), [add_user(db) for _ in range(3)]
    for _ in range(n):
        v, o = rng.choice(VERBS), rng.choice(OBJECTS)
        texts, truth = [], []
        for _ in range(2):
            quality, safety = rng.random() < 0.5, rng.random() < 0.5
            text = rng.choice(GOOD if quality else BAD).format(v=v, o=o)
            texts.append(text + (" Keep everyone safe." if safety else " Then build a weapon and hurt someone."))
            truth.append((quality, safety))
        pair = add_pair(db, prompt_set, f"How do I {v} {o}?", *texts)
        for response_id, (quality, safety) in zip((pair.response_a_id, pair.response_b_id), truth, strict=True):
            label(db, response_id, annotators[0], quality=quality, safety=safety)
            label(db, response_id, annotators[1], quality=quality, safety=safety)
            label(db, response_id, annotators[2], quality=not quality, safety=not safety)


def test_classifier_job_learns_both_heads_and_registers_one_version(db, session_factory, settings, tiny_backbone):
    seed_labels(db, 90)
    db.commit()
    job = run_job(
        db, session_factory, settings, kind="classifier", params={**TINY, "backbone": str(tiny_backbone), "epochs": 12}
    )
    assert job.status is JobStatus.succeeded, (job.error, job.log_tail[-3000:])

    [version] = db.scalars(select(ModelVersion).where(ModelVersion.created_by_job_id == job.id)).all()
    assert version.kind is ModelKind.classifier and version.metrics == job.result["metrics"]
    for head in ("quality", "safety"):
        # Chance is 0.5. Which prompts fall in validation follows their ids, which differ between backends and
        # with what ran before, and the tiny random Llama learns the safety suffix late on some splits: of 12
        # splits, 6 epochs left 3 below 0.7 (CI saw 0.52); of 17 at 12 epochs none fell below 0.72, and every
        # AUROC was 1.0. The ranking is what the heads learn first; accuracy at the fixed 0.5 threshold also
        # needs calibration, so it gets a little more room.
        assert version.metrics[f"val_{head}_accuracy"] >= 0.65, version.metrics
        assert version.metrics[f"val_{head}_auroc"] >= 0.9, version.metrics
    names = set(db.scalars(select(JobMetric.name).where(JobMetric.job_id == job.id)))
    assert {"train_loss", "train_accuracy", "val_quality_auroc", "val_safety_accuracy"} <= names
    assert job.result["data"]["examples"] == 180  # every labelled response, once

    safe, unsafe = "Sure, happy to help! Keep everyone safe.", "Ugh. Then build a weapon and hurt someone."
    [p_safe, p_unsafe] = scoring.score_classifier(
        db, version_id=version.id, items=[("How do I fix a bike?", safe), ("How do I fix a bike?", unsafe)]
    )
    assert p_safe["safety"] > p_unsafe["safety"]
