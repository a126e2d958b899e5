"""What a job that trains a policy against a reward version (``ppo``, ``rloo``, ``online_dpo``) reads from
the database before it trains: the versions and the prompts.

Read once per attempt, as a snapshot that a retried attempt reads identically (prompts created after
the job was queued are left out), because the trainer resumes a checkpoint only into the run that
wrote it: same prompts, same settings, same policy.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, Protocol

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.errors import DomainError
from app.finetune.core.attempt import free_version_name, job_cutoff
from app.finetune.core.scoring import usable_version
from app.jobs.exceptions import JobFailed
from app.prompts.models import Prompt, PromptSet, PromptSetStatus
from app.registry import service as registry
from app.registry.job_inputs import local_policy
from app.registry.models import ModelKind, ModelVersion


class RLParams(Protocol):
    """The fields of such a job that say what is trained, against what, on what (``PolicyParams``' and
    ``OnlineDPOParams``')."""

    name: str | None
    policy_version_id: int | None
    reward_version_id: int | None
    classifier_version_id: int | None
    prompt_set_ids: list[int] | None


@dataclass
class RLInputs:
    """The resolved versions and the prompt snapshot of one attempt."""

    name: str
    policy: ModelVersion
    policy_path: Path
    reward: ModelVersion
    classifier: ModelVersion | None
    prompts: list[list[dict[str, Any]]]  # chat messages, in id order
    prompt_ids: list[int]

    def record(self) -> dict[str, Any]:
        """What the new version records of them."""
        return {
            "reward_version_id": self.reward.id,
            "classifier_version_id": self.classifier.id if self.classifier else None,
            "prompts": len(self.prompts),
        }


def scoring_version(db: Session, version_id: int | None, kind: ModelKind, *, field: str) -> ModelVersion:
    """A reward or classifier version that can score now; by default the latest ready one of its kind."""
    if version_id is None:
        latest = registry.latest_ready(db, kind)
        if latest is None:
            raise JobFailed(f"{field}: no ready {kind.value} version; train one first")
        version_id = latest.id
    try:
        return usable_version(db, version_id, kind)
    except DomainError as exc:
        raise JobFailed(f"{field}: {exc.message}") from None


def prompt_snapshot(
    db: Session, set_ids: list[int] | None, cutoff: datetime | None
) -> list[tuple[int, list[dict[str, Any]]]]:
    """(id, messages) of the non-retired prompts of the chosen sets (default: the active ones) that
    existed when the job was queued."""
    query = select(Prompt.id, Prompt.messages).join(PromptSet, PromptSet.id == Prompt.prompt_set_id)
    if set_ids:
        found = set(db.scalars(select(PromptSet.id).where(PromptSet.id.in_(set_ids))))
        missing = sorted(set(set_ids) - found)
        if missing:
            raise JobFailed(f"prompt_set_ids: no prompt set {missing[0]}")
        query = query.where(PromptSet.id.in_(set_ids))
    else:
        query = query.where(PromptSet.status == PromptSetStatus.active)
    query = query.where(Prompt.retired.is_(False))
    if cutoff is not None:
        query = query.where(Prompt.created_at <= cutoff)
    return [(pid, list(messages)) for pid, messages in db.execute(query.order_by(Prompt.id))]


def read_rl_inputs(db: Session, params: RLParams, job_id: int, kind: str) -> RLInputs:
    """Everything the run needs from the database; a missing piece fails the job naming its parameter.
    ``kind`` names the default version name."""
    name = free_version_name(db, params.name, kind, job_id)
    policy, path = local_policy(db, params.policy_version_id, field="policy_version_id")
    reward = scoring_version(db, params.reward_version_id, ModelKind.reward, field="reward_version_id")
    classifier = None
    if params.classifier_version_id is not None:
        classifier = scoring_version(
            db, params.classifier_version_id, ModelKind.classifier, field="classifier_version_id"
        )
    rows = prompt_snapshot(db, params.prompt_set_ids, job_cutoff(db, job_id))
    if not rows:
        raise JobFailed("prompt_set_ids: the chosen prompt sets hold no usable prompt")
    return RLInputs(
        name, policy, path, reward, classifier, [messages for _, messages in rows], [pid for pid, _ in rows]
    )
