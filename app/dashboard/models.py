"""The models page's data: versions by kind, and the leaderboard of policy versions.

The leaderboard uses cross-version judgements only (pairs whose two responses come from
different policy versions): each is a battle between the two versions, rated by Bradley–Terry
maximum likelihood with bootstrap intervals (``app.ratings.bradley_terry``). Both-bad verdicts
are not battles (they say nothing about which version is better) and are left out.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session, aliased

from app.annotation.models import Choice, Judgement
from app.pool.models import Pair, Response
from app.ratings.bradley_terry import Battle, leaderboard, win_rate_matrix
from app.registry.models import ModelKind, ModelVersion
from app.registry.service import list_versions

BOOTSTRAP_ROUNDS = 200
LEVEL = 0.95
VALIDATION_ACCURACY_KEYS = ("val_accuracy", "validation_accuracy", "eval_accuracy", "accuracy")


@dataclass(frozen=True)
class RatingRow:
    version_id: int
    name: str
    rating: float
    lower: float | None
    upper: float | None
    battles: int


@dataclass(frozen=True)
class VersionLeaderboard:
    rows: list[RatingRow]  # best first
    names: list[str]  # matrix order (the rows' order)
    win_rates: list[list[float | None]]  # row's win rate against column; None where they never met
    games: list[list[int]]
    battles: int


def _outcome(choice: Choice) -> str | None:
    return {Choice.a: "a", Choice.b: "b", Choice.tie: "tie"}.get(choice)


def cross_version_battles(db: Session) -> list[Battle]:
    """One battle per judgement of a pair whose responses come from two different policy versions."""
    ra, rb = aliased(Response), aliased(Response)
    query = (
        select(ra.policy_version_id, rb.policy_version_id, Judgement.choice)
        .join(Pair, Pair.id == Judgement.pair_id)
        .join(ra, ra.id == Pair.response_a_id)
        .join(rb, rb.id == Pair.response_b_id)
        .where(
            ra.policy_version_id.is_not(None),
            rb.policy_version_id.is_not(None),
            ra.policy_version_id != rb.policy_version_id,
        )
    )
    battles = []
    for version_a, version_b, choice in db.execute(query):
        outcome = _outcome(Choice(choice))
        if outcome is not None:
            battles.append(Battle(version_a, version_b, outcome))  # type: ignore[arg-type]
    return battles


def _finite(value: float) -> float | None:
    return None if math.isnan(value) else float(value)


def version_leaderboard(db: Session, *, rounds: int = BOOTSTRAP_ROUNDS) -> VersionLeaderboard | None:
    """Bradley–Terry ratings (Elo scale) with 95% bootstrap intervals, and the observed win rates."""
    battles = cross_version_battles(db)
    if not battles:
        return None
    names = dict(db.execute(select(ModelVersion.id, ModelVersion.name)).all())
    board = leaderboard(battles, scale="elo", rounds=rounds, level=LEVEL)
    rows = [
        RatingRow(r.model, names.get(r.model, f"#{r.model}"), r.rating, r.lower, r.upper, r.battles)
        for r in board.ratings
    ]  # type: ignore[arg-type]
    observed = win_rate_matrix(battles)
    order = [observed.models.index(row.version_id) for row in rows]
    matrix = observed.matrix()
    return VersionLeaderboard(
        rows=rows,
        names=[row.name for row in rows],
        win_rates=[[_finite(matrix[i, j]) for j in order] for i in order],
        games=[[int(observed.games[i, j]) for j in order] for i in order],
        battles=board.n_battles,
    )


def validation_accuracy(version: ModelVersion) -> float | None:
    for key in VALIDATION_ACCURACY_KEYS:
        value = (version.metrics or {}).get(key)
        if isinstance(value, int | float):
            return float(value)
    return None


def reward_rows(db: Session) -> list[dict[str, Any]]:
    """Reward versions with validation accuracy."""
    return [{"version": v, "val_accuracy": validation_accuracy(v)} for v in list_versions(db, kind=ModelKind.reward)]


def numeric_metrics(version: ModelVersion) -> list[tuple[str, float]]:
    """A version's numeric metrics by name, for the classifier table."""
    return sorted(
        (k, float(v))
        for k, v in (version.metrics or {}).items()
        if isinstance(v, int | float) and not isinstance(v, bool)
    )
