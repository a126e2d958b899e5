"""Inter-annotator agreement as pure functions: percent agreement and Krippendorff's alpha.

A *unit* is one thing several annotators judged (a pair, or a response's label) and holds the
values they gave; units with fewer than two values carry no agreement information and are
left out, as Krippendorff's alpha leaves them out.

- Percent agreement: for each unit, the share of annotator pairs within it that gave the same
  value; then the mean over units (each unit counts once, however many annotators it had).
- Alpha (nominal): 1 − D_o / D_e from the coincidence matrix, computed by the maintained
  ``krippendorff`` package from per-unit value counts. Nominal alpha depends only on the
  values within each unit, not on who gave them, so counts (units × values) are all it needs:
  compact even for a million judgements by hundreds of annotators. It is undefined (None) when
  every value in the data is the same: there is no variation to agree on.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Hashable, Iterable, Sequence
from dataclasses import dataclass

import krippendorff
import numpy as np


@dataclass(frozen=True)
class Agreement:
    """Agreement figures for one question (the choice, or one binary label)."""

    units: int  # units with two or more values
    values: int  # values in those units
    percent: float | None  # mean pairwise agreement, 0-1
    alpha: float | None  # Krippendorff's alpha, nominal


def unit_agreement(values: Sequence[Hashable]) -> float:
    """Share of the unit's annotator pairs that agree: Σ n_v(n_v − 1) / n(n − 1)."""
    n = len(values)
    if n < 2:
        raise ValueError("a unit needs two or more values")
    same = sum(k * (k - 1) for k in Counter(values).values())
    return same / (n * (n - 1))


def percent_agreement(units: Iterable[Sequence[Hashable]]) -> float | None:
    shares = [unit_agreement(unit) for unit in units if len(unit) >= 2]
    return float(np.mean(shares)) if shares else None


def value_counts(units: Iterable[Sequence[Hashable]], domain: Sequence[Hashable]) -> np.ndarray:
    """(units, len(domain)) matrix of how often each value was given in each unit of two or more."""
    index = {value: i for i, value in enumerate(domain)}
    rows = []
    for unit in units:
        if len(unit) >= 2:
            row = np.zeros(len(domain))
            for value in unit:
                row[index[value]] += 1
            rows.append(row)
    return np.array(rows).reshape(len(rows), len(domain))


def nominal_alpha(units: Iterable[Sequence[Hashable]], domain: Sequence[Hashable]) -> float | None:
    """Krippendorff's alpha (nominal) over the units; None when undefined (too few units or no variation)."""
    counts = value_counts(units, domain)
    if counts.shape[0] == 0 or np.count_nonzero(counts.sum(axis=0)) < 2:
        return None
    return float(krippendorff.alpha(value_counts=counts, level_of_measurement="nominal"))


def agreement(units: Sequence[Sequence[Hashable]], domain: Sequence[Hashable]) -> Agreement:
    """Both figures for one question; ``domain`` lists every value an annotator could give."""
    kept = [unit for unit in units if len(unit) >= 2]
    return Agreement(
        units=len(kept),
        values=sum(len(unit) for unit in kept),
        percent=percent_agreement(kept),
        alpha=nominal_alpha(kept, domain),
    )


def leave_one_out_majority(values: Sequence[Hashable], position: int) -> Hashable | None:
    """The strict majority of the unit's *other* values, or None when they are split or absent.

    An annotator's own verdict is left out, so agreeing with the majority is not agreeing with
    oneself; with two annotators it is simply agreeing with the other one."""
    others = Counter(v for i, v in enumerate(values) if i != position).most_common(2)
    if not others or (len(others) == 2 and others[0][1] == others[1][1]):
        return None
    return others[0][0]
