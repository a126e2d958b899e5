"""Bradley–Terry MLE over models: hand-computed fits, and recovery of known strengths."""

import math

import numpy as np
import pytest
from scipy.special import expit

from app.ratings.bradley_terry import (
    Battle,
    bootstrap_bradley_terry,
    fit_bradley_terry,
    leaderboard,
    to_elo_scale,
    win_rate_matrix,
)

LN3 = math.log(3.0)  # 1.0986123


def test_two_models_three_wins_in_four() -> None:
    battles = [("A", "B", "a")] * 3 + [("A", "B", "b")]
    theta = fit_bradley_terry(battles)
    # MLE: σ(θ_A − θ_B) = 3/4, so θ_A − θ_B = ln(3/4 / 1/4) = ln 3; mean 0 puts them at ±ln3/2
    assert theta["A"] == pytest.approx(LN3 / 2, abs=1e-4)
    assert theta["B"] == pytest.approx(-LN3 / 2, abs=1e-4)


def test_a_tie_is_half_a_win_each() -> None:
    # A: 2 wins + 2 ties = 3 points of 4, the same as 3 wins in 4, so θ_A − θ_B = ln 3 again
    theta = fit_bradley_terry([Battle("A", "B", "a")] * 2 + [Battle("B", "A", "tie")] * 2)
    assert theta["A"] - theta["B"] == pytest.approx(LN3, abs=1e-4)
    # one win each and two ties: even
    even = fit_bradley_terry([("A", "B", "a"), ("B", "A", "a")] + [("A", "B", "tie")] * 2)
    assert even["A"] == pytest.approx(0.0, abs=1e-6)


def test_elo_scale_on_hand_numbers() -> None:
    # 400/ln10 · (ln3/2) = 200·log10(3) = 200 · 0.4771213 = 95.42425
    assert to_elo_scale(LN3 / 2) == pytest.approx(1095.42425, abs=1e-4)
    # ln 10 in θ is 10:1 odds, which is 400 points
    assert to_elo_scale(math.log(10.0)) - to_elo_scale(0.0) == pytest.approx(400.0)
    board = leaderboard([("A", "B", "a")] * 3 + [("B", "A", "a")], rounds=0)
    assert [row.model for row in board.ratings] == ["A", "B"]
    assert board.as_dict()["A"] == pytest.approx(1095.424, abs=0.02)
    assert board.as_dict()["B"] == pytest.approx(904.576, abs=0.02)
    assert board.ratings[0].lower is None and board.ratings[0].battles == 4
    assert board.n_battles == 4


def test_win_rate_matrix_by_hand() -> None:
    battles = [("A", "B", "a"), ("A", "B", "tie"), ("B", "A", "a")]
    battles += [("A", "C", "a"), ("C", "B", "b")]
    rates = win_rate_matrix(battles)
    assert rates.models == ("A", "B", "C")
    # A–B: A 1 + ½, B ½ + 1 of 3 games; A–C: A 1 of 1; B–C: B 1 of 1
    np.testing.assert_allclose(rates.wins, [[0, 1.5, 1], [1.5, 0, 1], [0, 0, 0]])
    np.testing.assert_array_equal(rates.games, [[0, 3, 1], [3, 0, 1], [1, 1, 0]])
    np.testing.assert_allclose(rates.matrix(), [[np.nan, 0.5, 1.0], [0.5, np.nan, 1.0], [0.0, 0.0, np.nan]])


def test_a_model_that_always_wins_stays_finite() -> None:
    theta = fit_bradley_terry([("A", "B", "a")] * 20)
    assert math.isfinite(theta["A"]) and theta["A"] > 3.0 > -3.0 > theta["B"]


def test_bad_battles_are_refused() -> None:
    with pytest.raises(ValueError):
        fit_bradley_terry([("A", "B", "draw")])  # type: ignore[list-item]
    with pytest.raises(ValueError):
        fit_bradley_terry([("A", "A", "a")])
    with pytest.raises(ValueError):
        fit_bradley_terry([])
    with pytest.raises(ValueError):
        leaderboard([("A", "B", "a")], scale="glicko")  # type: ignore[arg-type]


TRUE_THETA = np.linspace(-1.5, 1.5, 6)  # −1.5, −0.9, −0.3, 0.3, 0.9, 1.5: mean 0, as the fit's
MODELS = [f"policy-v{k}" for k in range(6)]


def _synthetic_battles(n: int, seed: int, tie_rate: float = 0.08) -> list[tuple[str, str, str]]:
    """Battles between random pairs whose expected score for A is σ(θ_a − θ_b).

    A tie (½ each) comes with probability ``tie_rate``; otherwise A wins with q such that
    tie_rate/2 + (1 − tie_rate)·q = σ(θ_a − θ_b), so "a tie is half a win" is the true model.
    """
    rng = np.random.default_rng(seed)
    a = rng.integers(0, 6, n)
    b = (a + rng.integers(1, 6, n)) % 6  # a different model, uniformly
    p = expit(TRUE_THETA[a] - TRUE_THETA[b])
    q = (p - tie_rate / 2) / (1 - tie_rate)
    tie, a_wins = rng.random(n) < tie_rate, rng.random(n) < q
    outcome = np.where(tie, "tie", np.where(a_wins, "a", "b"))
    return [(MODELS[i], MODELS[j], str(o)) for i, j, o in zip(a, b, outcome, strict=True)]


def test_recovers_known_strengths_with_honest_intervals() -> None:
    battles = _synthetic_battles(10_000, seed=20240601)
    board = leaderboard(battles, scale="logit", rounds=200, seed=1)
    # the order, best first, is the true one
    assert [row.model for row in board.ratings] == MODELS[::-1]
    estimated = np.array([board.as_dict()[m] for m in MODELS])
    # each log-strength within 0.1 of the truth (its standard error here is about 0.04)
    np.testing.assert_allclose(estimated, TRUE_THETA, atol=0.1)
    truth = dict(zip(MODELS, TRUE_THETA, strict=True))
    covered = [row.lower <= truth[row.model] <= row.upper for row in board.ratings]
    assert sum(covered) >= 5, covered
    for row in board.ratings:
        assert row.lower < row.rating < row.upper
        assert row.upper - row.lower < 0.25


def test_bootstrap_is_reproducible_and_centred() -> None:
    battles = _synthetic_battles(2_000, seed=3)
    models, first = bootstrap_bradley_terry(battles, rounds=20, seed=9)
    _, second = bootstrap_bradley_terry(battles, rounds=20, seed=9)
    _, other = bootstrap_bradley_terry(battles, rounds=20, seed=10)
    assert first.shape == (20, len(models))
    np.testing.assert_array_equal(first, second)
    assert not np.array_equal(first, other)
    np.testing.assert_allclose(first.mean(axis=1), 0.0, atol=1e-9)
