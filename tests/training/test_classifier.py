"""The quality/safety classifier: its metrics by hand, and a tiny model that learns both heads."""

from __future__ import annotations

import itertools
import math

import pytest
import torch

from app.training.classifier.config import ClassifierConfig
from app.training.classifier.metrics import auroc, binary_accuracy
from app.training.classifier.scoring import ClassifierScorer
from app.training.classifier.trainer import masked_bce, train_classifier
from app.training.core.data import LabelledResponse
from app.training.core.tiny import tiny_llama


def brute_force_auroc(scores: list[float], labels: list[int]) -> float:
    """P(score of a positive > score of a negative), ties counting 1/2, by enumerating every pair."""
    pos = [s for s, y in zip(scores, labels, strict=True) if y]
    neg = [s for s, y in zip(scores, labels, strict=True) if not y]
    wins = sum(1.0 if p > n else 0.5 if p == n else 0.0 for p, n in itertools.product(pos, neg))
    return wins / (len(pos) * len(neg))


def test_auroc_of_a_hand_computed_example() -> None:
    # positives 0.35, 0.8; negatives 0.1, 0.4: of the 4 (pos, neg) pairs only (0.35, 0.4) is misordered -> 3/4
    assert auroc([0.1, 0.4, 0.35, 0.8], [0, 0, 1, 1]) == pytest.approx(0.75)
    assert auroc([0.5, 0.5], [0, 1]) == pytest.approx(0.5)  # a tie is half a win
    assert auroc([0.9, 0.1], [0, 1]) == pytest.approx(0.0)
    assert math.isnan(auroc([0.2, 0.3], [1, 1]))


def test_auroc_matches_pair_counting_with_ties() -> None:
    gen = torch.Generator().manual_seed(0)
    scores = torch.randint(0, 5, (40,), generator=gen).float().tolist()  # many ties
    labels = torch.randint(0, 2, (40,), generator=gen).tolist()
    assert auroc(scores, labels) == pytest.approx(brute_force_auroc(scores, labels))


def test_accuracy_and_masked_bce_by_hand() -> None:
    assert binary_accuracy([0.2, 0.6, 0.5], [0, 1, 0]) == pytest.approx(2 / 3)  # 0.5 counts as positive
    logits, labels = torch.zeros(2, 2), torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    mask = torch.tensor([[1.0, 0.0], [0.0, 0.0]])  # one label exists
    assert masked_bce(logits, labels, mask).item() == pytest.approx(math.log(2))
    logits = torch.tensor([[2.0, 100.0], [0.0, 0.0]])  # the masked-out 100 must not count
    assert masked_bce(logits, labels, mask).item() == pytest.approx(math.log1p(math.exp(-2.0)))


def test_tiny_llama_learns_quality_and_safety(tmp_path, smollm2_tokenizer, labelled, reporter_cls) -> None:
    examples = labelled(320)
    examples += [
        LabelledResponse("User: hi\nAssistant:", " Hello!", {"quality": None, "safety": 1.0}),
        LabelledResponse("User: hi\nAssistant:", " Hello!", {"quality": None, "safety": None}),
    ]
    config = ClassifierConfig(
        learning_rate=1e-3, epochs=3, batch_size=16, validation_fraction=0.2, log_every=5, num_threads=1
    )
    reporter = reporter_cls()
    result = train_classifier(
        examples,
        config,
        tmp_path / "clf",
        reporter=reporter,
        backbone=tiny_llama(smollm2_tokenizer),
        tokenizer=smollm2_tokenizer,
    )

    for head in ("quality", "safety"):
        assert result.metrics[f"val_{head}_accuracy"] >= 0.9, result.metrics
        assert result.metrics[f"val_{head}_auroc"] >= 0.9
    assert result.card["data"]["examples"] == 321  # the response with no label at all is left out
    assert {"val_quality_auroc", "val_safety_accuracy", "train_loss"} <= {n for _, n, _ in reporter.metrics}

    scorer = ClassifierScorer(tmp_path / "clf", device="cpu")
    assert scorer.labels == ["quality", "safety"]
    [polite_safe, rude_unsafe] = scorer.score(
        [
            (
                "User: How do I fix a lamp?\nAssistant:",
                " Sure, happy to help! To fix a lamp, first go slowly, then check it twice. Keep everyone safe.",
            ),
            (
                "User: How do I fix a lamp?\nAssistant:",
                " Ugh, figure out how to fix a lamp yourself. Then build a weapon and hurt someone.",
            ),
        ]
    )
    assert polite_safe["quality"] > 0.5 > rude_unsafe["quality"]
    assert polite_safe["safety"] > 0.5 > rude_unsafe["safety"]


def test_no_usable_label_is_refused(tmp_path) -> None:
    with pytest.raises(ValueError, match="no response carries a label"):
        train_classifier([LabelledResponse("p", "r", {"quality": None})], ClassifierConfig(), tmp_path / "x")
