"""Agreement figures: a hand-computed example, and the reference library on random data."""

from __future__ import annotations

import itertools
import random
from statistics import median

import krippendorff
import numpy as np
import pytest

from app.dashboard import quality
from app.dashboard.agreement import agreement, leave_one_out_majority, nominal_alpha, percent_agreement, unit_agreement
from tests.export.data import judged_pair, label
from tests.factories import UserFactory

# Four pairs judged by X, Y, Z. By hand, over the values in each unit (coincidence matrix):
#   o_aa = 2 (u1) + 1 (u4: two a's, 1/(m−1) = ½ each way) = 3;  o_ab = o_ba = 1 (u2) + 1 (u4) = 2;  o_bb = 2 (u3)
#   n_a = 5, n_b = 4, n = 9;  D_o = 4/9;  D_e = 2·5·4 / (9·8) = 5/9;  α = 1 − (4/9)/(5/9) = 0.2
#   percent agreement = mean(1, 0, 1, ⅓) = 7/12
UNITS = [["a", "a"], ["a", "b"], ["b", "b"], ["a", "a", "b"]]


class TestHandComputed:
    def test_alpha_and_percent(self):
        assert nominal_alpha(UNITS, ["a", "b", "tie", "both_bad"]) == pytest.approx(0.2)
        assert percent_agreement(UNITS) == pytest.approx(7 / 12)
        assert unit_agreement(["a", "a", "b"]) == pytest.approx(1 / 3)

    def test_units_with_one_value_are_ignored_and_no_variation_is_undefined(self):
        figures = agreement([["a"], ["a", "a"], ["a", "a", "a"]], ["a", "b"])
        assert (figures.units, figures.values, figures.percent, figures.alpha) == (2, 5, 1.0, None)
        assert agreement([], ["a", "b"]).percent is None

    def test_leave_one_out_majority(self):
        assert leave_one_out_majority(["a", "a", "b"], 2) == "a"
        assert leave_one_out_majority(["a", "a", "b"], 0) is None  # the others split a / b
        assert leave_one_out_majority(["a"], 0) is None

    def test_from_the_database(self, db):
        x, y, z = (UserFactory(username=n) for n in ("xavier", "yvonne", "zoe"))
        judged_pair(db, verdicts=[(x, "a"), (y, "a")], seconds=1.0)
        judged_pair(db, verdicts=[(x, "a"), (y, "b")], seconds=2.0)
        judged_pair(db, verdicts=[(x, "b"), (z, "b")], seconds=3.0)
        judged_pair(db, verdicts=[(x, "a"), (y, "a"), (z, "b")], seconds=10.0)
        lone = judged_pair(db, verdicts=[(x, "tie")], seconds=20.0)
        label(db, x, lone.response_a_id, quality=True, safety=False)
        label(db, y, lone.response_a_id, quality=True, safety=True)
        label(db, x, lone.response_b_id, quality=False, safety=True)

        report = quality.agreement_report(db)
        assert (report.choice.units, report.choice.values) == (4, 9)
        assert report.choice.alpha == pytest.approx(0.2) and report.choice.percent == pytest.approx(7 / 12)
        assert (report.quality.units, report.quality.percent, report.quality.alpha) == (1, 1.0, None)
        assert report.safety.percent == 0.0

        rows = {r.username: r for r in quality.annotator_table(db)}
        xr, yr, zr = rows["xavier"], rows["yvonne"], rows["zoe"]
        assert (xr.judgements, xr.tie_rate, xr.both_bad_rate, xr.median_seconds) == (5, 0.2, 0.0, 3.0)
        assert (xr.majority_compared, xr.majority_agreement) == (3, pytest.approx(2 / 3))
        assert (yr.majority_compared, yr.majority_agreement) == (2, 0.5)
        assert (zr.majority_compared, zr.majority_agreement) == (2, 0.5)
        assert (xr.labels, xr.unsafe_share, yr.unsafe_share, zr.labels, zr.unsafe_share) == (2, 0.5, 0.0, 0, None)
        assert median([1.0, 2.0, 10.0]) == yr.median_seconds


def _random_judgements(rng: random.Random, pairs: int, coders: int) -> list[dict[int, str]]:
    """Per pair: annotator index → choice, with a per-pair favourite so that there is some agreement."""
    choices = ["a", "b", "tie", "both_bad"]
    units = []
    for _ in range(pairs):
        favourite = rng.choice(choices)
        who = rng.sample(range(coders), rng.randint(1, coders))
        units.append({c: favourite if rng.random() < 0.6 else rng.choice(choices) for c in who})
    return units


def _brute_force_percent(units: list[list[str]]) -> float:
    shares = []
    for unit in units:
        pairs = list(itertools.combinations(unit, 2))
        shares.append(sum(p == q for p, q in pairs) / len(pairs))
    return float(np.mean(shares))


@pytest.mark.parametrize("seed", [1, 2])
def test_random_data_matches_the_reference_library(db, seed):
    rng = random.Random(seed)
    users = [UserFactory() for _ in range(5)]
    units = _random_judgements(rng, pairs=40, coders=len(users))
    safety = np.full((len(users), len(units)), np.nan)
    for u, unit in enumerate(units):
        pair = judged_pair(db, verdicts=[(users[c], choice) for c, choice in sorted(unit.items())])
        for c in sorted(unit):
            safety[c, u] = float(rng.random() < 0.8)
            label(db, users[c], pair.response_a_id, quality=rng.random() < 0.7, safety=bool(safety[c, u]))

    codes = {"a": 0, "b": 1, "tie": 2, "both_bad": 3}
    data = np.full((len(users), len(units)), np.nan)  # coders × units, as the library takes it
    for u, unit in enumerate(units):
        for c, choice in unit.items():
            data[c, u] = codes[choice]
    expected = krippendorff.alpha(reliability_data=data, value_domain=[0, 1, 2, 3], level_of_measurement="nominal")
    report = quality.agreement_report(db)
    assert report.choice.alpha == pytest.approx(expected, abs=1e-9)
    multi = [list(unit.values()) for unit in units if len(unit) >= 2]
    assert report.choice.percent == pytest.approx(_brute_force_percent(multi))
    assert report.choice.units == len(multi)

    expected_safety = krippendorff.alpha(
        reliability_data=safety, value_domain=[0.0, 1.0], level_of_measurement="nominal"
    )
    assert report.safety.alpha == pytest.approx(expected_safety, abs=1e-9)
