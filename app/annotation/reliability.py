"""How far each annotator's verdicts can be trusted, from all of them at once.

Agreement with the majority misjudges a careful annotator who disagrees with a careless crowd, and says
nothing where pairs have one judgement each. A one-coin Dawid–Skene model fits every annotator's accuracy
and every pair's likely better side together (EM: a pair's side is weighed by its judges' accuracies, an
annotator's accuracy by how often they pick the side their pair likely has). crowd-kit's implementation
does the fitting (a maintained library of crowdsourcing aggregation); this module adds the plain signals
a model of accuracy cannot see:

- **speed**: a median under ``FAST_SECONDS`` per pair is faster than anyone can read two answers;
- **position bias**: sides are randomised when shown, so an honest annotator picks the left answer about
  half the time; a share beyond ``BIAS`` either way (with ``MIN_VOTES`` A/B verdicts) is a pattern, not
  taste — an "always A" clicker is as accurate as a coin on the real responses and picks the left side
  every time.

The score ranks annotators: the fitted accuracy, less ``PENALTY`` for each flag. Only A/B verdicts count
(ties and both-bad say nothing about which side is better). Pure: it takes votes, never the database.
"""

from __future__ import annotations

import statistics
import warnings
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field

FAST_SECONDS = 1.0
BIAS = 0.8  # a left share above this, or below 1 - this, is a position bias
MIN_VOTES = 10  # A/B verdicts before the position share means anything
PENALTY = 0.5
PRIOR = 0.7  # the accuracy assumed of an annotator whose verdicts no pair can check (no shared pairs)


@dataclass(frozen=True)
class Vote:
    """One judgement as the model reads it."""

    pair_id: int
    annotator_id: int
    choice: str  # the real side: "a" | "b" | "tie" | "both_bad"
    on_left: bool | None  # the chosen answer was shown on the left (None: a tie, or sides unknown)
    seconds: float | None


@dataclass
class Reliability:
    annotator_id: int
    votes: int = 0  # A/B verdicts
    accuracy: float | None = None  # fitted: P(this annotator picks the better side)
    left_share: float | None = None
    median_seconds: float | None = None
    flags: list[str] = field(default_factory=list)
    score: float = 0.0


def fit(votes: Iterable[Vote]) -> dict[int, Reliability]:
    """Every annotator who gave a verdict, with their fitted accuracy, signals, flags and score."""
    votes = list(votes)
    table: dict[int, Reliability] = {}
    seconds: dict[int, list[float]] = defaultdict(list)
    left: dict[int, list[bool]] = defaultdict(list)
    for vote in votes:
        row = table.setdefault(vote.annotator_id, Reliability(annotator_id=vote.annotator_id))
        if vote.seconds is not None:
            seconds[vote.annotator_id].append(vote.seconds)
        if vote.choice in ("a", "b"):
            row.votes += 1
            if vote.on_left is not None:
                left[vote.annotator_id].append(vote.on_left)
    accuracy = _accuracies([v for v in votes if v.choice in ("a", "b")])
    for annotator_id, row in table.items():
        row.accuracy = accuracy.get(annotator_id)
        if seconds[annotator_id]:
            row.median_seconds = statistics.median(seconds[annotator_id])
        if left[annotator_id]:
            row.left_share = sum(left[annotator_id]) / len(left[annotator_id])
        if row.median_seconds is not None and row.median_seconds < FAST_SECONDS:
            row.flags.append(f"fast: median {row.median_seconds:.1f} s a pair")
        if (
            row.left_share is not None
            and len(left[annotator_id]) >= MIN_VOTES
            and abs(row.left_share - 0.5) > BIAS - 0.5
        ):
            row.flags.append(f"position bias: picks the left answer {row.left_share:.0%} of the time")
        base = row.accuracy if row.accuracy is not None else PRIOR
        row.score = base - PENALTY * len(row.flags)
    return table


def _accuracies(votes: list[Vote]) -> dict[int, float]:
    """One-coin Dawid–Skene accuracies over A/B verdicts on pairs that more than one annotator judged."""
    judges: dict[int, set[int]] = defaultdict(set)
    for vote in votes:
        judges[vote.pair_id].add(vote.annotator_id)
    shared = [v for v in votes if len(judges[v.pair_id]) > 1]
    if not shared:
        return {}
    # Imported only when a fit runs: loading them costs seconds that the pages which never fit should not pay.
    import pandas as pd
    from crowdkit.aggregation import OneCoinDawidSkene

    frame = pd.DataFrame(
        {
            "task": [v.pair_id for v in shared],
            "worker": [v.annotator_id for v in shared],
            "label": [v.choice for v in shared],
        }
    )
    with warnings.catch_warnings():  # crowd-kit 1.4 still uses pandas keywords pandas 3 deprecates
        warnings.filterwarnings("ignore", module=r"crowdkit\.")
        model = OneCoinDawidSkene(n_iter=100, tol=1e-6).fit(frame)
    return {int(worker): float(skill) for worker, skill in model.skills_.items()}
