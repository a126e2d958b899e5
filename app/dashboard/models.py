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

from sqlalchemy import Select, and_, func, or_, select
from sqlalchemy.orm import Session, aliased

from app.annotation.models import Choice, Judgement
from app.pool.models import Pair, PairStatus, Response
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


@dataclass(frozen=True)
class HeadToHead:
    """A newer policy against the promoted one in side-by-side (cross-version) pairs."""

    verdicts: int  # judgements of their pairs; both-bad verdicts are left out (they rank neither)
    newer_score: float  # the newer one's wins plus half its ties
    pending: int  # their pairs still waiting for judgements

    @property
    def win_rate(self) -> float | None:
        return self.newer_score / self.verdicts if self.verdicts else None


def head_to_head(db: Session, newer_id: int, promoted_id: int) -> HeadToHead:
    """How the newer version fared against the promoted one, and how many of their pairs wait."""
    ra, rb = aliased(Response), aliased(Response)
    two = or_(
        and_(ra.policy_version_id == newer_id, rb.policy_version_id == promoted_id),
        and_(ra.policy_version_id == promoted_id, rb.policy_version_id == newer_id),
    )

    def sides(query: Select[Any]) -> Select[Any]:
        return query.join(ra, ra.id == Pair.response_a_id).join(rb, rb.id == Pair.response_b_id).where(two)

    judged = db.execute(
        sides(select(Judgement.choice, ra.policy_version_id).join(Pair, Pair.id == Judgement.pair_id))
    ).all()
    verdicts, score = 0, 0.0
    for choice, version_a in judged:
        outcome = _outcome(Choice(choice))
        if outcome is None:
            continue
        verdicts += 1
        newer_is_a = version_a == newer_id
        score += 0.5 if outcome == "tie" else float((outcome == "a") == newer_is_a)
    pending = db.scalar(sides(select(func.count(Pair.id)).where(Pair.status == PairStatus.pending))) or 0
    return HeadToHead(verdicts, score, pending)


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
    """Reward versions with validation accuracy, and for an Elo-target model (``target: elo``) the accuracy of
    the Bradley–Terry head trained beside it on the same held-out pairs."""
    rows = []
    for v in list_versions(db, kind=ModelKind.reward):
        bt = (v.metrics or {}).get("val_bt_accuracy")
        rows.append(
            {"version": v, "val_accuracy": validation_accuracy(v), "bt_accuracy": bt if _number(bt) else None}
        )
    return rows


def _number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def numeric_metrics(version: ModelVersion) -> list[tuple[str, float]]:
    """A version's numeric metrics by name, for the classifier table."""
    return sorted(
        (k, float(v))
        for k, v in (version.metrics or {}).items()
        if isinstance(v, int | float) and not isinstance(v, bool)
    )
