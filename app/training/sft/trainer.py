"""Supervised fine-tuning of a policy on demonstrations: L = −mean log π(answer token | context).

The conversations go through the policy's chat template with the loss on assistant tokens only
(``sft_encode``), the policy gets LoRA adapters by default (peft) that are merged into its weights
at the end, so the saved folder is a plain checkpoint any backend loads. The optimisation runs in the
loop the reward trainer uses (accelerate, AdamW, linear schedule, resumable checkpoint dict written
atomically, reporter protocol), and the folder is written aside and renamed into place. Prompts are
split between training and validation, and the validation loss is measured before and after, so a
run shows whether it learned anything that carries over to prompts it never saw.

    result = train_sft(examples, SFTConfig(base_model="var/models/policy/policy-v0"), "var/models/policy/sft-7")
    result.metrics  # {"val_loss_before": 2.31, "val_loss": 1.87, "train_examples": 45, ...}
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn

from app.kernels.linear import use_fast_linears
from app.training.core.card import data_snapshot
from app.training.core.data import split_by_prompt
from app.training.core.encode import pad_token_id
from app.training.core.loop import LoopTask, NullReporter, Reporter, run_loop, setup_accelerator
from app.training.core.lora import add_lora, merge_adapters
from app.training.core.result import TrainResult
from app.training.core.run import RunTarget, model_label, save_run
from app.training.sft.config import SFTConfig
from app.training.sft.data import SFTExample, kind_counts
from app.training.sft.encode import SFTCollator, encode_examples, sft_step, validation_loss

__all__ = ["load_policy", "train_sft"]


def load_policy(path: str | Path) -> tuple[nn.Module, Any]:
    """(causal LM, tokenizer) from a checkpoint folder or hub id; the tokenizer needs a chat template."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(path))
    if not getattr(tokenizer, "chat_template", None):
        raise ValueError(f"{path} has no chat template; SFT needs one to find the assistant turns")
    # float32 master weights whatever the checkpoint stores: AdamW steps on bf16 weights mostly round to
    # nothing. Mixed precision, where wanted, is accelerate's autocast on top (``mixed_precision``).
    model = AutoModelForCausalLM.from_pretrained(str(path), dtype=torch.float32)
    use_fast_linears(model)
    return model, tokenizer


def _with_lora(model: nn.Module, config: SFTConfig) -> nn.Module:
    """Wrap ``model`` with trainable adapters (the base weights frozen); seeded, so runs repeat."""
    torch.manual_seed(config.seed)
    wrapped = add_lora(model, config)
    if config.gradient_checkpointing:
        wrapped.enable_input_require_grads()  # checkpointed blocks need an input that requires grad
    return wrapped


def train_sft(
    examples: Sequence[SFTExample],
    config: SFTConfig,
    output_dir: Path | str,
    *,
    reporter: Reporter | None = None,
    checkpoint_path: Path | str | None = None,
    model: nn.Module | None = None,
    tokenizer: Any = None,
) -> TrainResult[nn.Module]:
    """Fine-tune, validate and save the merged policy to ``output_dir`` (which must not exist yet).

    ``model``/``tokenizer`` replace ``config.base_model`` with already built objects (the job, tests);
    such a model is changed in place. Re-run with the same arguments after a crash or a stop, it
    resumes from ``checkpoint_path`` (default: a hidden file beside ``output_dir``); when
    ``output_dir`` already holds this very run, its card is returned without training.
    Raises :class:`~app.training.core.loop.TrainingStopped` when the reporter asked to stop."""
    label = model_label(config.base_model, model)
    target = RunTarget.on_examples(examples, config, label, output_dir, checkpoint_path)
    if (finished := target.finished(TrainResult, reporter or NullReporter())) is not None:
        return finished
    train, validation = split_by_prompt(examples, config.validation_fraction, config.seed)
    accelerator, reporter = setup_accelerator(config, reporter)
    if model is None:
        model, tokenizer = load_policy(config.base_model)
    pad_id = pad_token_id(tokenizer)
    rows, dropped = encode_examples(tokenizer, train, config.max_length)
    val_rows, val_dropped = encode_examples(tokenizer, validation, config.max_length)
    if not rows:
        raise ValueError("no training conversation keeps an assistant token; nothing to learn from")
    model.to(accelerator.device)
    before = validation_loss(model, val_rows, pad_id, config.eval_batch_size, accelerator.device)
    trainee = _with_lora(model, config) if config.lora else model
    _describe(reporter, trainee, train, validation, dropped + val_dropped, label, accelerator.device)
    lengths = [len(r["input_ids"]) for r in rows]
    task = LoopTask(trainee, rows, lengths, SFTCollator(pad_id), sft_step, target.fingerprint)
    result = run_loop(task, config, accelerator, target.checkpoint, reporter)  # type: ignore[arg-type]
    final = merge_adapters(result.model).eval()
    after = validation_loss(final, val_rows, pad_id, config.eval_batch_size, accelerator.device)
    metrics = _metrics(before, after, train, validation, dropped + val_dropped)
    data = {**data_snapshot(examples, train, validation), "kinds": kind_counts(examples)}
    card = target.card("sft", config, data, metrics, result)
    _finish(accelerator, reporter, final, tokenizer, target, card)
    return TrainResult(target.output_dir, metrics, result.steps, result.resumed_from, card, final)  # the merged policy


def _metrics(
    before: float | None,
    after: float | None,
    train: Sequence[SFTExample],
    validation: Sequence[SFTExample],
    dropped: int,
) -> dict[str, float]:
    """The card's numbers; the validation losses only when there was a validation split."""
    metrics: dict[str, float] = {
        "train_examples": float(len(train)),
        "validation_examples": float(len(validation)),
        "dropped_examples": float(dropped),
    }
    if before is not None and after is not None:
        metrics.update(val_loss_before=before, val_loss=after)
    return metrics


def _describe(
    reporter: Reporter,
    model: nn.Module,
    train: Sequence[SFTExample],
    validation: Sequence[SFTExample],
    dropped: int,
    label: str,
    device: Any,
) -> None:
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    total = sum(p.numel() for p in model.parameters())
    reporter.log(
        f"sft: {len(train)} train / {len(validation)} validation conversations ({dropped} dropped: "
        f"nothing of the answer within max_length), base {label}, {trainable:,} of {total:,} "
        f"parameters trained on {device}"
    )


def _finish(
    accelerator: Any,
    reporter: Reporter,
    model: nn.Module,
    tokenizer: Any,
    target: RunTarget,
    card: dict[str, Any],
) -> None:
    """Report the validation metrics, write the folder atomically (main process), drop the checkpoint."""
    validation = {name: value for name, value in card["metrics"].items() if name.startswith("val_")}
    for name, value in validation.items():  # a silent reporter but on the main process
        reporter.metric(card["steps"], name, value)
    summary = ", ".join(f"{k} {v:.4f}" for k, v in validation.items()) or "no validation split"

    def write(folder: Path) -> None:
        model.save_pretrained(str(folder))
        tokenizer.save_pretrained(str(folder))

    save_run(
        accelerator, reporter, target, card, write, f"saved {target.output_dir} after {card['steps']} steps: {summary}"
    )
