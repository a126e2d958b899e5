"""The ``self_instruct`` job kind: grow a prompt set with SELF-INSTRUCT, for an admin to review.

From a seed prompt set, the chosen policy (default: the promoted one) writes new instructions; those
that pass the filters of :mod:`app.instruct.self_instruct` are stored, batch by batch, as pending
prompts of a new set in the ``review`` state (see :mod:`app.instruct.review`), which feeds the pool
only once an admin approves. The result counts candidates generated, kept and rejected per reason.

Idempotent per job: the output set is named after the job, so a re-run after a crash finds it, counts
its prompts as kept and compares new candidates with them. Each batch is stored in one fenced
transaction (``ctx.transaction``), so a cancelled job stores nothing more. Imported by the web app to
validate parameters, so torch and rouge-score are imported only when the handler runs.
"""

from __future__ import annotations

import random
import secrets
from dataclasses import dataclass
from typing import Any, Self

from pydantic import BaseModel, Field, model_validator
from sqlalchemy import select
from sqlalchemy.orm import Session

from app.bounds import Float, Id, Int, Seed
from app.errors import DomainError
from app.jobs.context import JobContext
from app.jobs.exceptions import JobFailed
from app.jobs.registry import register
from app.lanes import Lane
from app.prompts.models import Prompt, PromptSet, PromptSetStatus

KIND = "self_instruct"
MAX_EXISTING = 20_000  # prompts compared with each candidate; ROUGE-L is pure Python


class SelfInstructParams(BaseModel):
    """Parameters of a ``self_instruct`` job; the defaults follow the paper where it gives one."""

    seed_set_id: Id = Field(description="Prompt set whose (non-retired, non-red-team) prompts are the seeds.")
    policy_version_id: Id | None = Field(
        None, description="Policy that writes the instructions; default: the promoted one."
    )
    target: Int = Field(50, ge=1, le=5000, description="Stop once this many new prompts are kept.")
    max_candidates: Int = Field(600, ge=1, le=100_000, description="... or once this many candidates were looked at.")
    similarity_threshold: Float = Field(
        0.7,
        gt=0,
        le=1,
        description="Keep a candidate only if its ROUGE-L F-measure with every existing prompt is below this.",
    )
    min_words: Int = Field(4, ge=1, le=200, description="Shortest kept instruction, in words.")
    max_words: Int = Field(80, ge=1, le=1000, description="Longest kept instruction, in words.")
    examples_per_request: Int = Field(4, ge=1, le=16, description="Instructions shown to the policy in each request.")
    machine_examples: Int = Field(
        1, ge=0, le=15, description="Of which at most this many are kept machine-written ones."
    )
    batch_size: Int = Field(16, ge=1, le=512, description="Requests per generation call.")
    temperature: Float = Field(0.9, ge=0, le=5, description="Sampling temperature.")
    top_p: Float = Field(0.95, gt=0, le=1, description="Nucleus sampling mass.")
    max_new_tokens: Int = Field(64, ge=8, le=1024, description="Longest response, in tokens.")
    seed: Seed | None = Field(None, description="Makes the run reproducible; default: random.")
    set_name: str = Field(
        "", max_length=150, description="Name of the new prompt set; default: 'self-instruct job <id>'."
    )

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        if self.min_words > self.max_words:
            raise ValueError("min_words must not exceed max_words")
        if self.machine_examples >= self.examples_per_request:
            raise ValueError("machine_examples must be fewer than examples_per_request (seeds must be shown too)")
        return self


@dataclass
class Inputs:
    """What the run reads from the database before any model is loaded."""

    seeds: list[str]
    existing: list[str]
    policy_name: str
    backend_config: dict[str, Any]
    set_name: str
    set_id: int | None  # the output set, when an earlier attempt of this job created it
    kept: list[str]  # its prompts so far


def last_user_text(messages: list[dict[str, str]]) -> str:
    """The instruction of a prompt: its last user message."""
    return next((m["content"] for m in reversed(messages) if m["role"] == "user"), "")


def _policy(db: Session, version_id: int | None) -> Any:
    from app.registry import service as registry
    from app.registry.models import ModelKind, ModelStatus

    if version_id is None:
        version = registry.promoted_policy(db)
        if version is None:
            raise JobFailed("no promoted policy; choose policy_version_id")
        return version
    try:
        version = registry.get_version(db, version_id, kind=ModelKind.policy)
    except DomainError as exc:
        raise JobFailed(exc.message) from None
    if version.status not in (ModelStatus.ready, ModelStatus.promoted):
        raise JobFailed(f"policy {version.name} is {version.status.value}; choose a ready one")
    return version


def load_inputs(db: Session, params: SelfInstructParams, job_id: int) -> Inputs:
    """Seeds, the prompts candidates must differ from, the policy, and this job's set if it exists."""
    seed_set = db.get(PromptSet, params.seed_set_id)
    if seed_set is None:
        raise JobFailed(f"prompt set {params.seed_set_id} not found")
    seeds = [
        last_user_text(m)
        for m in db.scalars(
            select(Prompt.messages)
            .where(Prompt.prompt_set_id == seed_set.id, Prompt.retired.is_(False), Prompt.red_team.is_(False))
            .order_by(Prompt.id)
        )
    ]
    if not seeds:
        raise JobFailed(f"prompt set {seed_set.name!r} has no usable seed (non-retired, non-red-team) prompt")
    in_use = (PromptSet.status.in_((PromptSetStatus.active, PromptSetStatus.review))) | (PromptSet.id == seed_set.id)
    existing = [
        last_user_text(m)
        for m in db.scalars(
            select(Prompt.messages)
            .join(PromptSet, PromptSet.id == Prompt.prompt_set_id)
            .where(in_use)
            .order_by(Prompt.id.desc())
            .limit(MAX_EXISTING)
        )
    ]
    version = _policy(db, params.policy_version_id)
    name = params.set_name.strip() or f"self-instruct job {job_id}"
    own = db.scalar(select(PromptSet).where(PromptSet.name == name))
    kept = (
        [last_user_text(m) for m in db.scalars(select(Prompt.messages).where(Prompt.prompt_set_id == own.id))]
        if own
        else []
    )
    return Inputs(seeds, existing, version.name, dict(version.config or {}), name, own.id if own else None, kept)


@register(KIND, SelfInstructParams, lane=Lane.generation)
def run_self_instruct(ctx: JobContext[SelfInstructParams]) -> dict[str, Any]:
    """Generate, filter and store new instructions in a set awaiting review."""
    with ctx.sessions() as db:
        inputs = load_inputs(db, ctx.params, ctx.job_id)
    ctx.reporter.log(
        f"{len(inputs.seeds)} seeds, {len(inputs.existing)} existing prompts, policy {inputs.policy_name}"
        + (f", resuming with {len(inputs.kept)} kept" if inputs.kept else "")
    )
    from app.generation.factory import InvalidBackendConfig, backend_from_config

    try:
        backend = backend_from_config(inputs.backend_config)
    except InvalidBackendConfig as exc:
        raise JobFailed(f"policy {inputs.policy_name} cannot be served: {exc}") from None
    try:
        return _run(ctx, inputs, backend)
    finally:
        backend.close()


def _run(ctx: JobContext[SelfInstructParams], inputs: Inputs, backend: Any) -> dict[str, Any]:
    from app.generation.types import SamplingParams
    from app.instruct.self_instruct import Bounds, Plan, SimilarityIndex, Tally, generate_instructions

    p = ctx.params
    plan = Plan(
        sampling=SamplingParams(temperature=p.temperature, top_p=p.top_p, max_new_tokens=p.max_new_tokens),
        target=p.target,
        max_candidates=p.max_candidates,
        batch_size=p.batch_size,
        examples_per_request=p.examples_per_request,
        machine_examples=p.machine_examples,
        threshold=p.similarity_threshold,
        bounds=Bounds(min_words=p.min_words, max_words=p.max_words),
    )
    index = SimilarityIndex(dict.fromkeys([*inputs.existing, *inputs.kept]))
    tally = Tally(kept=len(inputs.kept))
    store = _Store(ctx, inputs)
    rng = random.Random(p.seed if p.seed is not None else secrets.randbits(32))
    generate_instructions(
        backend, inputs.seeds, index, plan, rng=rng, tally=tally, kept=list(inputs.kept), on_batch=store
    )
    ctx.reporter.progress(1.0, f"kept {tally.kept} of {tally.generated} candidates")
    return {
        "prompt_set_id": store.set_id,
        "prompt_set": inputs.set_name,
        "policy": inputs.policy_name,
        "seeds": len(inputs.seeds),
        "similarity_threshold": p.similarity_threshold,
        **tally.as_dict(),
    }


class _Store:
    """Called after each batch: stores what it kept (fenced) and reports the counts."""

    def __init__(self, ctx: JobContext[SelfInstructParams], inputs: Inputs) -> None:
        self.ctx, self.inputs, self.set_id = ctx, inputs, inputs.set_id

    def __call__(self, new: list[str], tally: Any) -> None:
        from app.instruct import review

        if new:
            with self.ctx.transaction() as db:
                if self.set_id is None:
                    seed_name = db.get(PromptSet, self.ctx.params.seed_set_id).name
                    created = review.create_review_set(
                        db,
                        name=self.inputs.set_name,
                        description=(
                            f"SELF-INSTRUCT candidates from seed set {seed_name!r} by {self.inputs.policy_name} "
                            f"(job {self.ctx.job_id}); approve to use them."
                        ),
                    )
                    self.set_id = created.id
                review.add_candidates(db, set_id=self.set_id, texts=new)
        reporter, step = self.ctx.reporter, tally.requests
        reporter.metric(step, "generated", tally.generated)
        reporter.metric(step, "kept", tally.kept)
        for reason, count in tally.rejected.items():
            reporter.metric(step, f"rejected_{reason}", count)
        target = self.ctx.params.target
        reporter.progress(
            max(tally.kept / target, tally.generated / self.ctx.params.max_candidates),
            f"kept {tally.kept}/{target} of {tally.generated} candidates",
        )
