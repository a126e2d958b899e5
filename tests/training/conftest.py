"""Shared fixtures for the training tests: offline hub, one CPU thread, a cached SmolLM2 tokenizer and
synthetic data with a rule a tiny model can learn (polite, helpful answers beat rude or useless ones)."""

from __future__ import annotations

import os
import random
import tempfile
from pathlib import Path

os.environ["HF_HUB_OFFLINE"] = "1"
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import pytest
import torch

torch.set_num_threads(1)

VERBS = ["clean", "fix", "paint", "store", "wash", "repair", "move", "sort", "check", "dry"]
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
    "the garage",
    "a mirror",
    "the roof",
    "a door",
]
GOOD = [
    "Sure, happy to help! To {v} {o}, first go slowly, then check it twice.",
    "Of course. Here is a simple way to {v} {o}: plan it, then do it. Good luck!",
]
BAD = ["Ugh, figure out how to {v} {o} yourself.", "That is a stupid question. Nobody cares about {o}."]


@pytest.fixture(scope="session")
def smollm2_tokenizer():
    from app.training.core.default_models import load_smollm2_tokenizer

    return load_smollm2_tokenizer(Path(tempfile.gettempdir()) / "rlhf-smollm2-tokenizer")


def make_preferences(n: int, seed: int = 0) -> list:
    """``n`` judged pairs over 160 prompts; chosen is always the polite, helpful answer."""
    from app.training.core.data import PreferenceExample

    rng = random.Random(seed)
    rows = []
    for i in range(n):
        v, o = rng.choice(VERBS), rng.choice(OBJECTS)
        rows.append(
            PreferenceExample(
                prompt=f"User: How do I {v} {o}?\nAssistant:",
                chosen=" " + rng.choice(GOOD).format(v=v, o=o),
                rejected=" " + rng.choice(BAD).format(v=v, o=o),
                strength=rng.randint(1, 3),
                id=f"j{seed}-{i}",
            )
        )
    return rows


def make_labelled(n: int, seed: int = 0) -> list:
    """``n`` responses: quality = 1 for the polite templates, safety = 0 when the answer mentions a weapon."""
    from app.training.core.data import LabelledResponse

    rng = random.Random(seed)
    rows = []
    for i in range(n):
        v, o = rng.choice(VERBS), rng.choice(OBJECTS)
        quality, safety = rng.random() < 0.5, rng.random() < 0.5
        text = rng.choice(GOOD if quality else BAD).format(v=v, o=o)
        text += " Keep everyone safe." if safety else " Then build a weapon and hurt someone."
        rows.append(
            LabelledResponse(
                prompt=f"User: How do I {v} {o}?\nAssistant:",
                response=" " + text,
                labels={"quality": float(quality), "safety": float(safety)},
                id=i,
            )
        )
    return rows


class RecordingReporter:
    """A reporter that records everything and can ask to stop, or fail, at a given step."""

    def __init__(self, stop_at: int | None = None, fail_at: int | None = None):
        self.stop_at, self.fail_at = stop_at, fail_at
        self.metrics: list[tuple[int, str, float]] = []
        self.logs: list[str] = []
        self.progress_calls: list[float] = []
        self.last_step = 0
        self.flushed_at: list[int] = []  # len(metrics) at each flush: what a job's reporter would have written

    def progress(self, frac: float, msg: str) -> None:
        self.progress_calls.append(frac)

    def metric(self, step: int, name: str, value: float) -> None:
        self.last_step = step
        if self.fail_at is not None and step >= self.fail_at:
            raise RuntimeError(f"simulated crash at step {step}")
        self.metrics.append((step, name, value))

    def log(self, line: str) -> None:
        self.logs.append(line)

    def should_stop(self) -> bool:
        return self.stop_at is not None and self.last_step >= self.stop_at

    def flush(self) -> None:
        self.flushed_at.append(len(self.metrics))


@pytest.fixture
def reporter_cls() -> type[RecordingReporter]:
    return RecordingReporter


@pytest.fixture
def preferences():
    return make_preferences


@pytest.fixture
def labelled():
    return make_labelled
