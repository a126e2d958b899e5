"""Offline DPO: fit the policy to judged pairs directly, with no reward model and no sampling.

L = −log σ(β·(Δ_θ − Δ_ref)) (or IPO's squared form, ``losses``) over (prompt, chosen, rejected) pairs, the
log-probs summed over response tokens, the prompt encoded as the policy sees it when generating. The
reference is the starting policy: with LoRA (the default) the same module with its adapters off, whose
log-probs are taken once per pair before training, since it never changes. The optimisation is the shared
loop's (accelerate, AdamW, linear schedule, a resumable checkpoint every ``checkpoint_every`` steps, the
reporter protocol), so a run killed mid-way continues at the same batch. Prompts are split between training
and validation, and the card records the implicit-reward accuracy and margin on the held-out ones. At the
end the adapters are merged and the policy written aside and renamed into place, with its card.

    result = train_dpo(examples, DPOConfig(policy="var/models/policy/policy-3"), "var/models/policy/dpo-4")
    result.metrics  # {"train_pairs": 180, "val_reward_accuracy": 0.68, "val_margin": 0.41, ...}
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from torch import nn

from app.training.core.card import data_snapshot
from app.training.core.data import PreferenceExample, split_by_prompt
from app.training.core.loop import (
    LoopTask,
    NullReporter,
    Reporter,
    TrainingStopped,
    run_loop,
    setup_accelerator,
)
from app.training.core.result import TrainResult
from app.training.core.run import RunTarget, model_label, save_merged_policy
from app.training.dpo.config import DPOConfig
from app.training.dpo.data import add_reference_logprobs, encode_pairs, pair_collator
from app.training.dpo.policy import DPOPolicy, build_policy
from app.training.dpo.step import dpo_step, evaluate

__all__ = ["TrainingStopped", "train_dpo"]


def train_dpo(
    examples: Sequence[PreferenceExample],
    config: DPOConfig,
    output_dir: Path | str,
    *,
    policy: nn.Module | None = None,
    tokenizer: Any = None,
    reporter: Reporter | None = None,
    checkpoint_path: Path | str | None = None,
) -> TrainResult[nn.Module]:
    """Train on the pairs and save the merged policy to ``output_dir`` (which must not exist yet, unless it
    holds this very run: then its card is returned without training).

    ``policy``/``tokenizer`` replace ``config.policy`` with built objects (changed in place). Re-run with the
    same arguments after a crash or a stop, it resumes from ``checkpoint_path`` (default: a hidden file
    beside ``output_dir``). Raises :class:`TrainingStopped` after a checkpoint when the reporter asked to stop."""
    if not examples:
        raise ValueError("examples: at least one judged pair is required")
    target = RunTarget.on_examples(examples, config, model_label(config.policy, policy), output_dir, checkpoint_path)
    if (finished := target.finished(TrainResult, reporter or NullReporter())) is not None:
        return finished
    train, validation = split_by_prompt(examples, config.validation_fraction, config.seed)
    accelerator, reporter = setup_accelerator(config, reporter)
    model, frozen, tokenizer = build_policy(config, policy, tokenizer)
    model.to(accelerator.device)
    frozen = frozen.to(accelerator.device) if frozen is not None else None
    encode = functools.partial(
        encode_pairs,
        tokenizer,
        max_prompt_length=config.max_prompt_length,
        max_response_length=config.max_response_length,
        strength_margin=config.strength_margin,
    )
    rows, val_rows = encode(train), encode(validation)
    if not rows:
        raise ValueError("validation_fraction: every pair's prompt was held out; lower it or judge more prompts")
    collate = pair_collator(model, rows, tokenizer.pad_token_id)
    # Under the autocast the training forward runs in, so that log π − log π_ref is exactly 0 at the start.
    with model.reference(frozen) as reference, accelerator.autocast():
        add_reference_logprobs(reference, rows + val_rows, collate, config.eval_batch_size, accelerator.device)
    _describe(reporter, model, len(rows), len(val_rows), target.label, accelerator.device)
    step = functools.partial(dpo_step, beta=config.beta, loss_type=config.loss_type)
    task = LoopTask(model, rows, [collate.length(row) for row in rows], collate, step, target.fingerprint)
    result = run_loop(task, config, accelerator, target.checkpoint, reporter)  # type: ignore[arg-type] - duck-typed
    trained: DPOPolicy = result.model  # type: ignore[assignment] - the loop hands back what it was given
    with accelerator.autocast():
        validation_metrics = evaluate(
            trained,
            val_rows,
            collate,
            config.eval_batch_size,
            accelerator.device,
            beta=config.beta,
            loss_type=config.loss_type,
        )
    metrics = {
        "train_pairs": float(len(rows)),
        "validation_pairs": float(len(val_rows)),
        **{f"val_{name}": value for name, value in validation_metrics.items()},
    }
    card = target.card("dpo", config, data_snapshot(examples, train, validation), metrics, result)
    for name, value in validation_metrics.items():
        reporter.metric(result.steps, f"val_{name}", value)
    merged = save_merged_policy(accelerator, reporter, trained.lm, tokenizer, target, card, f"{result.steps} steps")
    return TrainResult(target.output_dir, metrics, result.steps, result.resumed_from, card, merged)


def _describe(reporter: Reporter, model: nn.Module, pairs: int, held_out: int, label: str, device: Any) -> None:
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    reporter.log(
        f"DPO: {pairs} training / {held_out} validation pairs, policy {label}, "
        f"{trainable:,} trainable parameters on {device}"
    )
