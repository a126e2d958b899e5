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
  every time;
- **gold accuracy**: the share of gold pairs (``app.annotation.gold``: a known better answer) answered right
  — a tie or both-bad on one is wrong; a flag when even the 99 % Wilson upper bound of that share is below
  ``GOLD_PASS``: 0 of 4 or 3 of 10, which an annotator right 85 % of the time gives one time in a thousand
  or fewer (a flag costs ``PENALTY``, so bad luck must not earn one; the score sees every miss anyway). Gold
  pairs are checked against their answer, not fitted: the model sees only the other pairs.

The score ranks annotators: their accuracy — the fitted one where pairs they share with others allow a fit
(it rests on many more verdicts than the few gold pairs, whose misses show as a flag); else the gold one,
pulled towards ``PRIOR`` by two pseudo-verdicts; else ``PRIOR`` — less ``PENALTY`` for each flag. Only A/B
verdicts are fitted (ties and both-bad say nothing about which side is better). Pure: it takes votes, never
the database.
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
GOLD_PASS = 0.7
Z99 = 2.5758293035489004  # the standard normal's 99.5 % quantile


@dataclass(frozen=True)
class Vote:
    """One judgement as the model reads it."""

    pair_id: int
    annotator_id: int
    choice: str  # the real side: "a" | "b" | "tie" | "both_bad"
    on_left: bool | None  # the chosen answer was shown on the left (None: a tie, or sides unknown)
    seconds: float | None
    gold: str | None = None  # a gold pair's known better side ("a" | "b"); None on every other pair


@dataclass
class Reliability:
    annotator_id: int
    votes: int = 0  # A/B verdicts
    accuracy: float | None = None  # fitted: P(this annotator picks the better side)
    left_share: float | None = None
    median_seconds: float | None = None
    gold_pairs: int = 0
    gold_accuracy: float | None = None  # share of gold pairs answered with their known side
    flags: list[str] = field(default_factory=list)
    score: float = 0.0


def fit(votes: Iterable[Vote]) -> dict[int, Reliability]:
    """Every annotator who gave a verdict, with their fitted accuracy, signals, flags and score."""
    votes = list(votes)
    table: dict[int, Reliability] = {}
    seconds: dict[int, list[float]] = defaultdict(list)
    left: dict[int, list[bool]] = defaultdict(list)
    gold_right: dict[int, list[bool]] = defaultdict(list)
    for vote in votes:
        row = table.setdefault(vote.annotator_id, Reliability(annotator_id=vote.annotator_id))
        if vote.gold is not None:
            gold_right[vote.annotator_id].append(vote.choice == vote.gold)
        if vote.seconds is not None:
            seconds[vote.annotator_id].append(vote.seconds)
        if vote.choice in ("a", "b"):
            row.votes += 1
            if vote.on_left is not None:
                left[vote.annotator_id].append(vote.on_left)
    accuracy = _accuracies([v for v in votes if v.choice in ("a", "b") and v.gold is None])
    for annotator_id, row in table.items():
        row.accuracy = accuracy.get(annotator_id)
        if gold_right[annotator_id]:
            row.gold_pairs = len(gold_right[annotator_id])
            row.gold_accuracy = sum(gold_right[annotator_id]) / row.gold_pairs
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
        right = sum(gold_right[annotator_id])
        if row.gold_pairs and _wilson_upper(right, row.gold_pairs) < GOLD_PASS:
            row.flags.append(f"gold: {right} of {row.gold_pairs} known answers right")
        row.score = _accuracy_estimate(row, right) - PENALTY * len(row.flags)
    return table


def _wilson_upper(right: int, n: int, z: float = Z99) -> float:
    """The upper end of the Wilson score interval of ``right`` successes in ``n``."""
    p = right / n
    centre = p + z * z / (2 * n)
    spread = z * (p * (1 - p) / n + z * z / (4 * n * n)) ** 0.5
    return (centre + spread) / (1 + z * z / n)


def _accuracy_estimate(row: Reliability, gold_right: int) -> float:
    if row.accuracy is not None:
        return row.accuracy
    if row.gold_pairs:
        return (gold_right + 2 * PRIOR) / (row.gold_pairs + 2)
    return PRIOR


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
