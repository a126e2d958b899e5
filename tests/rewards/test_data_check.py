"""The data check on a head job's result (issue 17): thin data is said in words, enough data says nothing."""

from __future__ import annotations

from app.finetune.core.data_check import RECOMMENDED_EXAMPLES, RELIABLE_VALIDATION, warnings_for


def test_ten_pairs_and_two_held_out_are_both_named():
    found = warnings_for("reward", {"examples": 12, "validation_examples": 2}, {"val_accuracy": 0.0})
    assert found == [
        f"12 judged pairs (A/B verdicts): too few for a reward model to be trusted; at least ~{RECOMMENDED_EXAMPLES} "
        "are recommended",
        f"validation accuracy 0.00 on 2 held-out examples: not a reliable figure (fewer than {RELIABLE_VALIDATION})",
    ]


def test_enough_data_gives_no_warning_and_a_classifier_counts_labels():
    assert warnings_for("reward", {"examples": 1000, "validation_examples": 150}, {"val_accuracy": 0.7}) == []
    (only,) = warnings_for("classifier", {"examples": 50, "validation_examples": 60}, {})
    assert only.startswith("50 labelled responses")
