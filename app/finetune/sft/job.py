"""The ``sft`` job kind: fine-tune a policy version on demonstrations and register the result.

Demonstrations are the ideal and safe answers annotators wrote (plus conversations from SFT JSONL
files in ``<data_dir>/sft/``), mixed to the requested share of safety data. The trainer
(:mod:`app.training.sft.trainer`) fits LoRA adapters with the loss on assistant tokens only, reports
the validation loss before and after, and saves the merged policy atomically into the model store;
the job then registers it as a new ready policy version whose parent is the base version.

Because the source notes warn that too much safety data makes a model refuse harmless requests, the
job measures the refusal rate on held-out harmless prompts before and after training, by the rule
in :mod:`app.training.sft.refusal`, and stores it in the result under ``refusal`` and as job metrics.

Idempotent per job: the output folder is named after the version, the trainer resumes from its
checkpoint or returns the finished run's card, and ``register`` is keyed by the job id.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from app.finetune.core.processes import call_trainer
from app.finetune.core.reporter import TrainerReporter
from app.finetune.sft.params import SFTParams
from app.jobs.context import JobContext
from app.jobs.exceptions import JobCancelled, JobFailed
from app.jobs.registry import register
from app.training.core.result import TrainResult

if TYPE_CHECKING:  # the handler imports these when it runs, not when the job kind is registered
    from app.finetune.sft.inputs import SFTInputs
    from app.training.sft.data import SFTExample

KIND = "sft"


@register(KIND, SFTParams)
def run_sft(ctx: JobContext[SFTParams]) -> dict[str, Any]:
    """Fine-tune, measure refusals before and after, register the new policy version."""
    from app.finetune.sft.inputs import load_sft_inputs
    from app.registry.job_inputs import check_name_free
    from app.training.sft.data import kind_counts, mix_safety

    name = ctx.params.name or f"sft-{ctx.job_id}"
    with ctx.sessions() as db:
        check_name_free(db, name, ctx.job_id)
        inputs = load_sft_inputs(db, ctx.settings, ctx.params)
    examples = mix_safety(inputs.examples, ctx.params.safety_share, seed=ctx.params.seed)
    if len(examples) < 2:
        raise JobFailed(
            f"{len(examples)} demonstration(s) after the safety mix; SFT needs at least 2 "
            f"(available: {kind_counts(inputs.examples)})"
        )
    ctx.reporter.log(
        f"fine-tuning {inputs.base.name} into {name} on {len(examples)} conversations "
        f"{kind_counts(examples)}; refusals on {len(inputs.harmless)} held-out harmless prompts"
    )
    trained, refusal = _train_and_measure(ctx, inputs, examples, name)
    version_id = _register(ctx, inputs, name, trained, refusal)
    for key in ("before", "after"):
        ctx.reporter.metric(trained.steps, f"refusal_rate_{key}", refusal[key])
    ctx.reporter.progress(1.0, f"registered {name}: refusal rate {refusal['before']:.0%} → {refusal['after']:.0%}")
    return {
        "version_id": version_id,
        "version": name,
        "parent_id": inputs.base.id,
        "base": inputs.base.name,
        "examples": {**inputs.counts, **kind_counts(examples), "used": len(examples)},
        "safety_share": ctx.params.safety_share,
        "metrics": trained.metrics,
        "steps": trained.steps,
        "refusal": refusal,
    }


def _train_and_measure(
    ctx: JobContext[SFTParams], inputs: SFTInputs, examples: list[SFTExample], name: str
) -> tuple[TrainResult, dict[str, Any]]:
    """Refusals of the base model, training, refusals of the result (greedy, so a re-run repeats them)."""
    from app.registry import store
    from app.registry.models import ModelKind
    from app.training.core.loop import TrainingStopped
    from app.training.sft.refusal import RULE, measure_refusals
    from app.training.sft.trainer import load_policy, train_sft

    p = ctx.params
    output = store.version_dir(ctx.settings, ModelKind.policy.value, name)
    model, tokenizer = load_policy(inputs.base_path)
    ctx.reporter.progress(0.02, "measuring refusals of the base policy")
    before = measure_refusals(model, tokenizer, inputs.harmless, max_new_tokens=p.refusal_max_new_tokens)
    # The loaded policy is handed over in one process; launched processes each load the base folder.
    loaded = {} if p.launched else {"model": model, "tokenizer": tokenizer}
    try:
        trained = call_trainer(
            ctx,
            train_sft,
            examples,
            p.sft_config(str(inputs.base_path)),
            output,
            reporter=TrainerReporter(ctx.reporter, span=(0.1, 0.9)),  # refusals before and after
            **loaded,
        )
    except TrainingStopped as exc:
        raise JobCancelled(str(exc)) from None
    except FileExistsError as exc:
        raise JobFailed(f"{exc}; choose another name") from None
    ctx.reporter.progress(0.92, "measuring refusals of the fine-tuned policy")
    after_model = trained.model if trained.model is not None else load_policy(output)[0]
    after = measure_refusals(after_model, tokenizer, inputs.harmless, max_new_tokens=p.refusal_max_new_tokens)
    ctx.reporter.log(
        f"refusal rate on {before.prompts} harmless prompts: {before.rate:.1%} before, {after.rate:.1%} after"
    )
    refusal = {
        "rule": RULE,
        "before": before.rate,
        "after": after.rate,
        "prompts": before.prompts,
        "refused_before": before.refused,
        "refused_after": after.refused,
        "source": inputs.harmless_source,
    }
    return trained, refusal


def _register(
    ctx: JobContext[SFTParams], inputs: SFTInputs, name: str, trained: TrainResult, refusal: dict[str, Any]
) -> int:
    """The new ready policy version, child of the base; registered once per job, however often it runs."""
    from app.errors import Conflict
    from app.finetune.core.policy_job import register_child

    metrics = {
        **trained.metrics,
        "refusal_rate_before": refusal["before"],
        "refusal_rate_after": refusal["after"],
        "refusal_prompts": refusal["prompts"],
    }
    try:
        with ctx.transaction() as db:
            version = register_child(
                db, ctx.job_id, parent=inputs.base, name=name, folder=trained.output_dir, metrics=metrics
            )
            return version.id
    except Conflict as exc:
        raise JobFailed(exc.message) from None
