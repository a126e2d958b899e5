"""What the next pairs will be: which prompts, from which policy versions.

Prompts come from the active prompt sets, never from retired prompts; those with the fewest pending
pairs go first (ties broken at random), so a small pool spreads over the prompts instead of piling
onto the first ones, and a prompt repeats only when the pool is larger than the prompt list.
A share of pairs is cross-version: response A from the promoted policy, B from another ready
policy version, so human win rates between versions feed the leaderboard.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, replace
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from app.config import Settings
from app.pool.models import Pair, PairStatus
from app.prompts.models import Prompt, PromptSet, PromptSetStatus
from app.registry.models import ModelKind, ModelStatus, ModelVersion


@dataclass(frozen=True)
class PolicyRef:
    """A policy version as generation needs it, detached from any session."""

    id: int
    name: str
    config: dict[str, Any]  # the serving config: backend, path or endpoint, batch size …

    @property
    def backend(self) -> str:
        return str(self.config.get("backend", "transformers"))


@dataclass(frozen=True)
class PlannedPair:
    prompt_id: int
    messages: list[dict[str, str]]
    judgements_needed: int  # k of the prompt's set, else the global setting
    other: PolicyRef | None = None  # set for a cross-version pair: B comes from this version


def serving_config(version: ModelVersion) -> dict[str, Any]:
    """The config a backend is built from; an in-process model's folder defaults to the version's path."""
    config = dict(version.config or {})
    config.setdefault("backend", "transformers")
    if config["backend"] == "transformers":
        config.setdefault("path", version.path)
    return config


def policy_ref(version: ModelVersion) -> PolicyRef:
    return PolicyRef(id=version.id, name=version.name, config=serving_config(version))


def other_policies(db: Session, *, promoted_id: int) -> list[PolicyRef]:
    """Ready policy versions besides the promoted one: the B side of cross-version pairs."""
    versions = db.scalars(
        select(ModelVersion)
        .where(
            ModelVersion.kind == ModelKind.policy,
            ModelVersion.status == ModelStatus.ready,
            ModelVersion.id != promoted_id,
        )
        .order_by(ModelVersion.id)
    )
    return [policy_ref(v) for v in versions]


def active_prompt_count(db: Session) -> int:
    query = (
        select(func.count())
        .select_from(Prompt)
        .join(PromptSet, PromptSet.id == Prompt.prompt_set_id)
        .where(PromptSet.status == PromptSetStatus.active, Prompt.retired.is_(False))
    )
    return db.scalar(query) or 0


def choose_prompts(db: Session, settings: Settings, *, count: int, rng: random.Random) -> list[PlannedPair]:
    """``count`` prompts for new pairs, least-covered first; empty when no active prompt exists."""
    pending = (
        select(Pair.prompt_id, func.count().label("n"))
        .where(Pair.status == PairStatus.pending)
        .group_by(Pair.prompt_id)
        .subquery()
    )
    rows = db.execute(
        select(Prompt.id, func.coalesce(pending.c.n, 0))
        .join(PromptSet, PromptSet.id == Prompt.prompt_set_id)
        .outerjoin(pending, pending.c.prompt_id == Prompt.id)
        .where(PromptSet.status == PromptSetStatus.active, Prompt.retired.is_(False))
    ).all()
    if not rows or count <= 0:
        return []
    ranked = sorted(rows, key=lambda row: (row[1], rng.random()))
    chosen = [ranked[i % len(ranked)][0] for i in range(count)]
    details = _details(db, set(chosen), settings.judgements_per_pair)
    return [PlannedPair(prompt_id=pid, messages=details[pid][0], judgements_needed=details[pid][1]) for pid in chosen]


def _details(db: Session, ids: set[int], default_k: int) -> dict[int, tuple[list[dict[str, str]], int]]:
    rows = db.execute(
        select(Prompt.id, Prompt.messages, PromptSet.judgements_per_pair)
        .join(PromptSet, PromptSet.id == Prompt.prompt_set_id)
        .where(Prompt.id.in_(ids))
    )
    return {pid: (list(messages), k or default_k) for pid, messages, k in rows}


def cross_count(planned_before: int, batch: int, share: float) -> int:
    """How many of the next ``batch`` pairs are cross-version, so the running total stays at
    ``round(total × share)`` whatever the batch sizes."""
    return round((planned_before + batch) * share) - round(planned_before * share)


def assign_cross(
    items: list[PlannedPair], others: list[PolicyRef], *, count: int, rng: random.Random
) -> list[PlannedPair]:
    """Mark ``count`` of ``items`` (chosen at random) as cross-version, each with a random other version."""
    if not others or count <= 0:
        return items
    picked = set(rng.sample(range(len(items)), min(count, len(items))))
    return [replace(item, other=rng.choice(others)) if i in picked else item for i, item in enumerate(items)]
