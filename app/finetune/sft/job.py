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

from typing import Any

from pydantic import BaseModel, Field

from app.jobs.context import JobContext
from app.jobs.exceptions import JobCancelled, JobFailed
from app.jobs.registry import register
from app.finetune.core.reporter import TrainerReporter
from app.training.sft.config import SFTConfig, sft_config_help

KIND = "sft"
NAME_PATTERN = r"^(?:|[A-Za-z0-9][A-Za-z0-9._-]{0,99})$"  # empty: the default name
_HELP = sft_config_help()
TRAINING_FIELDS = ("epochs", "learning_rate", "batch_size", "max_length", "lora", "lora_r", "lora_alpha",
                   "validation_fraction", "seed", "checkpoint_every", "log_every")


class SFTParams(BaseModel):
    """Parameters of an ``sft`` job; the training fields are those of :class:`SFTConfig`."""

    base_version_id: int | None = Field(None, ge=1, description="Policy version to fine-tune; default: the promoted one.")
    name: str = Field("", max_length=100, pattern=NAME_PATTERN,
                      description="Name of the new version (letters, digits, . _ -); default: 'sft-<job id>'.")
    use_demonstrations: bool = Field(True, description="Train on the annotators' demonstrations (ideal and safe answers).")
    jsonl_files: list[str] = Field(default_factory=list, max_length=20,
                                   description='SFT JSONL files ({"messages": [...]} per line) in <data_dir>/sft/, by name.')
    safety_share: float | None = Field(None, ge=0, le=1, description="Share of safety demonstrations (safe answers) in the mix; "
                                       "empty: use the data as it is. Too much teaches the model to refuse harmless requests.")
    refusal_prompts: int = Field(40, ge=0, le=1000, description="Held-out harmless prompts the refusal rate is measured on; 0 skips it.")
    refusal_prompt_set_id: int | None = Field(None, ge=1, description="Take them from this set (non-red-team prompts); default: the shipped starter prompts.")
    refusal_max_new_tokens: int = Field(32, ge=4, le=512, description="Answer length when measuring refusals (only the first sentence is judged).")
    epochs: int = Field(3, ge=1, le=100, description=_HELP["epochs"])
    learning_rate: float = Field(2e-4, gt=0, le=1, description=_HELP["learning_rate"])
    batch_size: int = Field(8, ge=1, le=1024, description=_HELP["batch_size"])
    max_length: int = Field(1024, ge=16, le=131_072, description=_HELP["max_length"])
    lora: bool = Field(True, description=_HELP["lora"])
    lora_r: int = Field(16, ge=1, le=1024, description=_HELP["lora_r"])
    lora_alpha: int = Field(32, ge=1, le=4096, description=_HELP["lora_alpha"])
    validation_fraction: float = Field(0.1, ge=0, lt=1, description=_HELP["validation_fraction"])
    seed: int = Field(0, ge=0, description=_HELP["seed"])
    checkpoint_every: int = Field(100, ge=0, description=_HELP["checkpoint_every"])
    log_every: int = Field(10, ge=1, description=_HELP["log_every"])

    def sft_config(self, base_model: str) -> SFTConfig:
        """The trainer's config: these fields, the rest at their defaults."""
        return SFTConfig(base_model=base_model, **{name: getattr(self, name) for name in TRAINING_FIELDS})


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
        raise JobFailed(f"{len(examples)} demonstration(s) after the safety mix; SFT needs at least 2 "
                        f"(available: {kind_counts(inputs.examples)})")
    ctx.reporter.log(f"fine-tuning {inputs.base.name} into {name} on {len(examples)} conversations "
                     f"{kind_counts(examples)}; refusals on {len(inputs.harmless)} held-out harmless prompts")
    trained, refusal = _train_and_measure(ctx, inputs, examples, name)
    version_id = _register(ctx, inputs, name, trained, refusal)
    for key in ("before", "after"):
        ctx.reporter.metric(trained.steps, f"refusal_rate_{key}", refusal[key])
    ctx.reporter.progress(1.0, f"registered {name}: refusal rate {refusal['before']:.0%} → {refusal['after']:.0%}")
    return {"version_id": version_id, "version": name, "parent_id": inputs.base.id, "base": inputs.base.name,
            "examples": {**inputs.counts, **kind_counts(examples), "used": len(examples)},
            "safety_share": ctx.params.safety_share, "metrics": trained.metrics, "steps": trained.steps,
            "refusal": refusal}


def _train_and_measure(ctx: JobContext[SFTParams], inputs: Any, examples: list, name: str) -> tuple[Any, dict[str, Any]]:  # noqa: ANN401
    """Refusals of the base model, training, refusals of the result (greedy, so a re-run repeats them)."""
    from app.registry import store
    from app.registry.models import ModelKind
    from app.training.sft.refusal import RULE, measure_refusals
    from app.training.core.loop import TrainingStopped
    from app.training.sft.trainer import load_policy, train_sft

    p = ctx.params
    output = store.version_dir(ctx.settings, ModelKind.policy.value, name)
    model, tokenizer = load_policy(inputs.base_path)
    ctx.reporter.progress(0.02, "measuring refusals of the base policy")
    before = measure_refusals(model, tokenizer, inputs.harmless, max_new_tokens=p.refusal_max_new_tokens)
    try:
        trained = train_sft(examples, p.sft_config(str(inputs.base_path)), output,
                            reporter=TrainerReporter(ctx.reporter, span=(0.1, 0.9)),  # refusals before and after
                            model=model, tokenizer=tokenizer)
    except TrainingStopped as exc:
        raise JobCancelled(str(exc)) from None
    except FileExistsError as exc:
        raise JobFailed(f"{exc}; choose another name") from None
    ctx.reporter.progress(0.92, "measuring refusals of the fine-tuned policy")
    after_model = trained.model if trained.model is not None else load_policy(output)[0]
    after = measure_refusals(after_model, tokenizer, inputs.harmless, max_new_tokens=p.refusal_max_new_tokens)
    ctx.reporter.log(f"refusal rate on {before.prompts} harmless prompts: {before.rate:.1%} before, {after.rate:.1%} after")
    refusal = {"rule": RULE, "before": before.rate, "after": after.rate, "prompts": before.prompts,
               "refused_before": before.refused, "refused_after": after.refused, "source": inputs.harmless_source}
    return trained, refusal


def _register(ctx: JobContext[SFTParams], inputs: Any, name: str, trained: Any, refusal: dict[str, Any]) -> int:  # noqa: ANN401
    """The new ready policy version, child of the base; registered once per job, however often it runs."""
    from app.errors import Conflict
    from app.registry import service as registry
    from app.registry.job_inputs import child_serving_config
    from app.registry.models import ModelKind

    base = inputs.base
    metrics = {**trained.metrics, "refusal_rate_before": refusal["before"], "refusal_rate_after": refusal["after"],
               "refusal_prompts": refusal["prompts"]}
    config = child_serving_config(base, trained.output_dir)
    try:
        with ctx.transaction() as db:
            version = registry.register(db, name=name, kind=ModelKind.policy, path=str(trained.output_dir.resolve()),
                                        base_model=base.base_model or base.name, parent_id=base.id, metrics=metrics,
                                        config=config, job_id=ctx.job_id)
            return version.id
    except Conflict as exc:
        raise JobFailed(exc.message) from None
