"""What a ``dpo`` job reads from the database before it trains: the policy and the judged pairs.

Read once per attempt, as a snapshot that a retried attempt reads identically (nothing judged after the job
was queued), because the trainer resumes a checkpoint only into the run that wrote it. The pairs are the
reward model's (``preference_examples``: one (prompt, chosen, rejected, strength) per A/B judgement, or per
pair by majority; ties and both-bad left out). An ``online_dpo`` job reads what a ``ppo`` job reads
(:func:`~app.finetune.core.rl_inputs.read_rl_inputs`).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy.orm import Session

from app.finetune.core.attempt import MIN_EXAMPLES, free_version_name, job_cutoff
from app.finetune.core.dataset import DataFilters, preference_examples
from app.finetune.core.head_params import filters_of
from app.finetune.dpo.params import DPOParams
from app.jobs.exceptions import JobFailed
from app.registry.job_inputs import local_policy
from app.registry.models import ModelVersion
from app.training.core.data import PreferenceExample


@dataclass
class DPOInputs:
    """The policy to start from and the judged pairs of one attempt."""

    name: str
    policy: ModelVersion
    policy_path: Path
    examples: list[PreferenceExample]

    def record(self) -> dict[str, Any]:
        """What the new version records of them."""
        return {"pairs": len(self.examples)}


def read_dpo_inputs(db: Session, params: DPOParams, job_id: int, kind: str) -> DPOInputs:
    """The policy and the pairs; a missing piece fails the job naming its parameter."""
    name = free_version_name(db, params.name, kind, job_id)
    policy, path = local_policy(db, params.policy_version_id, field="policy_version_id")
    filters = DataFilters(**filters_of(params)).capped(job_cutoff(db, job_id))  # type: ignore[arg-type] - reads params.filters
    examples = preference_examples(db, filters, aggregate=params.aggregate)
    if len(examples) < MIN_EXAMPLES:
        raise JobFailed(
            f"filters: only {len(examples)} judged pairs (A or B preferred) match; at least {MIN_EXAMPLES} are needed"
        )
    return DPOInputs(name, policy, path, examples)
