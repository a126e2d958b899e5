"""Bradley–Terry ratings of models (policy versions) from head-to-head battles, with bootstrap CIs.

P(a beats b) = σ(θ_a − θ_b). The θ are fitted by maximum likelihood, as public chatbot leaderboards
do, rather than by online Elo: the result does not depend on the order the battles were judged in,
and resampling the battles (bootstrap) gives honest confidence intervals.

Details that matter:
- a tie counts as half a win for each side (outcome y = ½ in the likelihood);
- θ is only defined up to a constant, so a tiny L2 penalty anchors the fit; at its optimum the
  ratings sum to zero, and it keeps them finite when one model wins every battle;
- on the Elo-like scale a rating is 400/ln 10 · θ + 1000, so 400 points mean 10:1 odds.

Run ``leaderboard(battles)`` for the usual table; the pieces are public for tests and plots.
"""

from __future__ import annotations

import math
from collections.abc import Hashable, Iterable
from dataclasses import dataclass
from typing import Literal

import numpy as np
from scipy.optimize import minimize
from scipy.special import expit

Outcome = Literal["a", "b", "tie"]
Scale = Literal["logit", "elo"]

ELO_PER_LOGIT = 400.0 / math.log(10.0)  # 173.72 Elo points per unit of θ
ELO_BASE = 1000.0  # the Elo-scale rating of θ = 0 (the average model)
_OUTCOME_SCORE = {"a": 1.0, "b": 0.0, "tie": 0.5}


@dataclass(frozen=True)
class Battle:
    """One human verdict between answers from two models to the same prompt."""

    model_a: Hashable
    model_b: Hashable
    outcome: Outcome  # a: model_a won, b: model_b won, tie


BattleLike = Battle | tuple[Hashable, Hashable, Outcome]  # a Battle or (model_a, model_b, outcome)


@dataclass(frozen=True)
class ModelRating:
    """One row of the leaderboard."""

    model: Hashable
    rating: float  # on the leaderboard's scale
    lower: float | None  # lower end of the bootstrap interval (None without bootstrap)
    upper: float | None  # upper end of the bootstrap interval
    battles: int  # how many battles the model took part in


@dataclass(frozen=True)
class Leaderboard:
    """Models rated by Bradley–Terry MLE, best first."""

    ratings: tuple[ModelRating, ...]
    scale: Scale  # "logit" (θ, mean 0) or "elo" (400/ln 10 · θ + 1000)
    level: float  # confidence level of the intervals, e.g. 0.95
    n_battles: int

    def as_dict(self) -> dict[Hashable, float]:
        """Model → rating, for plots and JSON."""
        return {row.model: row.rating for row in self.ratings}


@dataclass(frozen=True)
class WinRates:
    """Observed head-to-head results; ``wins[i, j]`` counts row i's wins over column j, ties ½."""

    models: tuple[Hashable, ...]
    wins: np.ndarray  # (n, n) float
    games: np.ndarray  # (n, n) int, symmetric: battles between i and j

    def matrix(self) -> np.ndarray:
        """Row's win rate against column; NaN where the two never met (and on the diagonal)."""
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(self.games > 0, self.wins / self.games, np.nan)


@dataclass(frozen=True)
class _Tally:
    """Battles grouped into cells (i < j, A's score y) with a count each; fits work on cells."""

    models: tuple[Hashable, ...]
    i: np.ndarray  # (cells,) index of the first model
    j: np.ndarray  # (cells,) index of the second model
    y: np.ndarray  # (cells,) first model's score: 1, ½ or 0
    count: np.ndarray  # (cells,) how many battles fell in the cell


def _as_battle(battle: BattleLike) -> Battle:
    return battle if isinstance(battle, Battle) else Battle(*battle)


def _tally(battles: Iterable[BattleLike]) -> _Tally:
    """Index the models (in order of first appearance) and count battles per cell."""
    index: dict[Hashable, int] = {}
    cells: dict[tuple[int, int, float], int] = {}
    for raw in battles:
        battle = _as_battle(raw)
        if battle.outcome not in _OUTCOME_SCORE:
            raise ValueError(f"unknown outcome {battle.outcome!r}")
        if battle.model_a == battle.model_b:
            raise ValueError("a model cannot battle itself")
        a = index.setdefault(battle.model_a, len(index))
        b = index.setdefault(battle.model_b, len(index))
        y = _OUTCOME_SCORE[battle.outcome]
        key = (a, b, y) if a < b else (b, a, 1.0 - y)
        cells[key] = cells.get(key, 0) + 1
    if not cells:
        raise ValueError("no battles to rate")
    keys = np.array(list(cells), dtype=float).reshape(-1, 3)
    return _Tally(
        models=tuple(index),
        i=keys[:, 0].astype(int),
        j=keys[:, 1].astype(int),
        y=keys[:, 2],
        count=np.array(list(cells.values()), dtype=float),
    )


def _fit(tally: _Tally, weights: np.ndarray, l2: float, start: np.ndarray | None = None) -> np.ndarray:
    """θ minimising mean NLL + l2·‖θ‖² over the cells, each weighted by its battle count.

    Per battle, −[y·log σ(d) + (1−y)·log σ(−d)] = softplus(d) − y·d with d = θ_i − θ_j, whose
    derivative in d is σ(d) − y: this gives L-BFGS the exact gradient. ``start`` warm-starts
    the search (bootstrap refits start from the full-data fit and need a few steps only).
    """
    n = len(tally.models)
    total = weights.sum()

    def objective(theta: np.ndarray) -> tuple[float, np.ndarray]:
        d = theta[tally.i] - theta[tally.j]  # (cells,)
        nll = weights @ (np.logaddexp(0.0, d) - tally.y * d) / total
        g = weights * (expit(d) - tally.y) / total  # (cells,)
        grad = np.bincount(tally.i, g, n) - np.bincount(tally.j, g, n)
        return nll + l2 * theta @ theta, grad + 2.0 * l2 * theta

    x0 = np.zeros(n) if start is None else start
    result = minimize(
        objective, x0, jac=True, method="L-BFGS-B", options={"gtol": 1e-9, "ftol": 1e-13, "maxiter": 10_000}
    )
    return result.x - result.x.mean()


def fit_bradley_terry(battles: Iterable[BattleLike], *, l2: float = 1e-6) -> dict[Hashable, float]:
    """Maximum-likelihood log-strengths θ (mean 0) of every model in ``battles``."""
    tally = _tally(battles)
    return dict(zip(tally.models, _fit(tally, tally.count, l2).tolist(), strict=True))


def _bootstrap(tally: _Tally, theta: np.ndarray, rounds: int, seed: int, l2: float) -> np.ndarray:
    """θ refitted on ``rounds`` resamples of the battles: (rounds, models)."""
    if rounds < 1:
        raise ValueError("the bootstrap needs at least one round")
    rng = np.random.default_rng(seed)
    total = int(tally.count.sum())
    resampled = rng.multinomial(total, tally.count / total, size=rounds)  # (rounds, cells)
    samples = [_fit(tally, w.astype(float), l2, start=theta) for w in resampled]
    return np.stack(samples).reshape(rounds, len(tally.models))


def bootstrap_bradley_terry(
    battles: Iterable[BattleLike], *, rounds: int = 200, seed: int = 0, l2: float = 1e-6
) -> tuple[tuple[Hashable, ...], np.ndarray]:
    """Refit on ``rounds`` resamples of the battles (with replacement); returns (models, θ).

    Resampling battles is resampling cells by a multinomial over their counts, which is the same
    distribution and far cheaper. θ is (rounds, models), each row with mean 0; the generator is
    seeded, so the same battles and seed give the same intervals.
    """
    tally = _tally(battles)
    return tally.models, _bootstrap(tally, _fit(tally, tally.count, l2), rounds, seed, l2)


def to_elo_scale(theta: float | np.ndarray) -> float | np.ndarray:
    """400/ln 10 · θ + 1000: the θ gap of ln 10 (10:1 odds) becomes 400 points."""
    return ELO_PER_LOGIT * theta + ELO_BASE


def _win_rates(tally: _Tally) -> WinRates:
    n = len(tally.models)
    wins, games = np.zeros((n, n)), np.zeros((n, n), dtype=int)
    np.add.at(wins, (tally.i, tally.j), tally.y * tally.count)
    np.add.at(wins, (tally.j, tally.i), (1.0 - tally.y) * tally.count)
    np.add.at(games, (tally.i, tally.j), tally.count.astype(int))
    return WinRates(models=tally.models, wins=wins, games=games + games.T)


def win_rate_matrix(battles: Iterable[BattleLike]) -> WinRates:
    """Who beat whom how often, as observed (no model): the table beside the leaderboard."""
    return _win_rates(_tally(battles))


def leaderboard(
    battles: Iterable[BattleLike],
    *,
    scale: Scale = "elo",
    rounds: int = 200,
    level: float = 0.95,
    seed: int = 0,
    l2: float = 1e-6,
) -> Leaderboard:
    """Bradley–Terry ratings with percentile bootstrap intervals (``rounds=0`` skips them)."""
    if scale not in ("elo", "logit") or not 0.0 < level < 1.0:
        raise ValueError("scale must be 'elo' or 'logit' and level within (0, 1)")
    tally = _tally(battles)
    theta = _fit(tally, tally.count, l2)
    convert = to_elo_scale if scale == "elo" else (lambda x: x)
    ratings = convert(theta)
    lower: list[float | None] = [None] * len(theta)
    upper: list[float | None] = [None] * len(theta)
    if rounds > 0:
        samples = _bootstrap(tally, theta, rounds, seed, l2)
        low, high = np.quantile(samples, [(1 - level) / 2, (1 + level) / 2], axis=0)
        lower, upper = convert(low).tolist(), convert(high).tolist()
    played = _win_rates(tally).games.sum(axis=1)
    rows = [
        ModelRating(model, float(ratings[k]), lower[k], upper[k], int(played[k]))
        for k, model in enumerate(tally.models)
    ]
    rows.sort(key=lambda row: row.rating, reverse=True)
    return Leaderboard(tuple(rows), scale, level, n_battles=int(tally.count.sum()))
