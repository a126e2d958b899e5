"""Warnings about how much a head job (reward model, classifier) had to learn from and to test on.

A run on 10 judged pairs "succeeds" and reports a validation accuracy measured on two: both figures are
noise, and a researcher who is not told will promote on them. The job still runs (a small first model is a
fine smoke test), but its result says in words what is thin, and the job page shows it above the curves.
The thresholds are rules of thumb, not laws: ~200 examples is where Bradley–Terry reward models on small
backbones start to beat chance by a margin one can see, and an accuracy on fewer than 50 held-out examples
moves by more than ±14 points (95 %) on one example's luck.
"""

from __future__ import annotations

from typing import Any

RECOMMENDED_EXAMPLES = 200
RELIABLE_VALIDATION = 50
WHAT = {"reward": "judged pairs (A/B verdicts)", "classifier": "labelled responses"}


def warnings_for(kind: str, data: dict[str, Any], metrics: dict[str, Any]) -> list[str]:
    """What is thin about a finished head run, from its data snapshot (counts) and its metrics."""
    found = []
    examples = int(data.get("examples", 0))
    what = WHAT.get(kind, "examples")
    if examples < RECOMMENDED_EXAMPLES:
        found.append(
            f"{examples} {what}: too few for a {kind} model to be trusted; at least ~{RECOMMENDED_EXAMPLES} "
            "are recommended"
        )
    validation = data.get("validation_examples")
    if validation is not None and int(validation) < RELIABLE_VALIDATION:
        accuracy = metrics.get("val_accuracy")
        shown = f" {accuracy:.2f}" if isinstance(accuracy, int | float) else ""
        found.append(
            f"validation accuracy{shown} on {int(validation)} held-out examples: not a reliable figure "
            f"(fewer than {RELIABLE_VALIDATION})"
        )
    return found
