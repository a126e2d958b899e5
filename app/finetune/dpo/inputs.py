"""What a ``dpo`` job reads from the database before it trains: the policy and the judged pairs.

Read once per attempt, as a snapshot that a retried attempt reads identically (nothing judged after the job
was queued), because the trainer resumes a checkpoint only into the run that wrote it. The pairs are the
reward model's (``preference_examples``: one (prompt, chosen, rejected, strength) per A/B judgement, or per
pair by majority; ties and both-bad left out). An ``online_dpo`` job reads what a ``ppo`` job reads
(:func:`~app.finetune.ppo.inputs.read_inputs`).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.finetune.core.dataset import DataFilters, preference_examples
from app.finetune.core.head_job import MIN_EXAMPLES
from app.finetune.core.head_params import filters_of
from app.finetune.dpo.params import DPOParams
from app.jobs.exceptions import JobFailed
from app.jobs.models import Job
from app.registry.job_inputs import check_name_free, local_policy
from app.registry.models import ModelVersion
from app.training.core.data import PreferenceExample


@dataclass
class DPOInputs:
    """The policy to start from and the judged pairs of one attempt."""

    name: str
    policy: ModelVersion
    policy_path: Path
    examples: list[PreferenceExample]


def read_dpo_inputs(db: Session, params: DPOParams, job_id: int, kind: str) -> DPOInputs:
    """The policy and the pairs; a missing piece fails the job naming its parameter."""
    name = params.name or f"{kind}-job{job_id}"
    check_name_free(db, name, job_id)
    policy, path = local_policy(db, params.policy_version_id, field="policy_version_id")
    cutoff = db.scalar(select(Job.created_at).where(Job.id == job_id))
    filters = DataFilters(**filters_of(params)).capped(cutoff)  # type: ignore[arg-type] - reads params.filters
    examples = preference_examples(db, filters, aggregate=params.aggregate)
    if len(examples) < MIN_EXAMPLES:
        raise JobFailed(
            f"filters: only {len(examples)} judged pairs (A or B preferred) match; at least {MIN_EXAMPLES} are needed"
        )
    return DPOInputs(name, policy, path, examples)
