"""One training run of a backbone-plus-head model, from examples to a saved folder.

The reward and classifier trainers differ only in how examples become rows, the loss of a batch and
the validation metrics; they describe that in a :class:`HeadJob`, and :func:`train_head_model` does
the rest in the same order for both: fingerprint → (already finished?) → split by prompt → build the
model → encode → loop (resumable) → validate → save folder and card atomically → drop the checkpoint.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypedDict, Unpack

import torch
from torch import nn

from app.kernels.linear import use_fast_linears
from app.training.core.card import data_snapshot
from app.training.core.config import TrainConfig
from app.training.core.data import split_by_prompt
from app.training.core.encode import pad_token_id
from app.training.core.freeze import freeze_lower_layers
from app.training.core.heads import PooledHeadModel, build_model, disable_dropout, save_model
from app.training.core.last_layer import reads_only_exactly
from app.training.core.loop import (
    LoopResult,
    LoopTask,
    LossFn,
    NullReporter,
    Reporter,
    run_loop,
    setup_accelerator,
)
from app.training.core.prefix import needs_additive_mask, shares_prefix_exactly
from app.training.core.result import TrainResult
from app.training.core.run import RunTarget, model_label, save_run
from app.training.core.vocab import compact_embedding, renumber_rows
from app.training.core.vocab import plan as compact_plan

Rows = list[dict[str, Any]]


class RunOptions(TypedDict, total=False):
    """The keyword options of :func:`train_head_model`, which each trainer's entry point passes through."""

    reporter: Reporter | None  # progress, metrics and stop requests; default: report nothing
    checkpoint_path: Path | str | None  # default: a hidden file beside the output folder
    backbone: nn.Module | None  # an already built backbone instead of ``config.backbone``
    tokenizer: Any  # required with ``backbone``


@dataclass
class PackedBatches:
    """An optional cheaper batch layout for decoders (see ``data_prefix``): a row's packed length and
    the collator factory ``(pad_id, additive=…) -> collate``; used only where it scores exactly alike."""

    length: Callable[[dict[str, Any]], int]
    collate: Callable[..., Callable[[Sequence[dict[str, Any]]], dict[str, torch.Tensor]]]


@dataclass
class HeadJob:
    """What makes a run a reward run or a classifier run."""

    kind: str  # "reward" | "classifier": written to the card and head.json
    labels: list[str]  # one head output per label
    encode: Callable[[Any, Sequence[Any], bool, int], Rows]  # (tokenizer, examples, encoder, max_length)
    length: Callable[[dict[str, Any]], int]  # a row's padded length, for length grouping
    collate: Callable[[int], Callable[[Sequence[dict[str, Any]]], dict[str, torch.Tensor]]]  # pad id -> collate
    loss: LossFn
    evaluate: Callable[[PooledHeadModel, Rows, int, int, torch.device], dict[str, float]]  # model, rows, pad, bs, dev
    packed: PackedBatches | None = None
    # The training rows as the loop should see them, from the encoded training split (the reward's tie
    # balance, ``reward.pairs.with_ties_balanced``); validation keeps the split as it is.
    training_rows: Callable[[Rows], Rows] | None = None

    @property
    def head_bias(self) -> bool:
        """A reward head has no bias: Bradley–Terry sees only differences of scores, so a bias gets no
        gradient but rounding noise (which Adam turns into drift), and without one a decoder reward model
        is a plain ``AutoModelForSequenceClassification`` (``core.seqcls``). A classifier needs its bias."""
        return self.kind != "reward"


def prepare_backbone(model: PooledHeadModel, config: TrainConfig, reporter: Reporter) -> int:
    """Apply the dropout, frozen-layer and checkpointing settings; return the usable max length."""
    if config.disable_dropout:
        disable_dropout(model)
    frozen = freeze_lower_layers(model.backbone, config.trainable_layers)
    if frozen is not None:
        reporter.log(
            f"training the top {frozen.trained_blocks} of {frozen.blocks} backbone layers: "
            f"{frozen.frozen_parameters:,} parameters frozen, {frozen.trained_parameters:,} trained"
        )
    if config.gradient_checkpointing and hasattr(model.backbone, "gradient_checkpointing_enable"):
        model.backbone.gradient_checkpointing_enable()
    if fast := use_fast_linears(model):
        reporter.log(f"{fast} linear layers compute through oneDNN (faster than the default BLAS on this CPU)")
    positions = getattr(model.backbone.config, "max_position_embeddings", None) or config.max_length
    return min(config.max_length, positions)


def train_head_model(
    job: HeadJob, examples: Sequence[Any], config: TrainConfig, output_dir: Path | str, **options: Unpack[RunOptions]
) -> TrainResult[PooledHeadModel]:
    """Train ``job`` on ``examples`` and save it to ``output_dir``; see ``train_reward_model`` for the contract."""
    backbone, reporter = options.get("backbone"), options.get("reporter") or NullReporter()
    label = model_label(config.backbone, backbone)
    target = RunTarget.on_examples(examples, config, label, output_dir, options.get("checkpoint_path"))
    if (finished := target.finished(TrainResult, reporter)) is not None:
        return finished
    train, validation = split_by_prompt(examples, config.validation_fraction, config.seed)
    if not train:
        raise ValueError(f"no training examples for the {job.kind} model")
    accelerator, reporter = setup_accelerator(config, reporter)
    model, tokenizer = build_model(
        backbone if backbone is not None else config.backbone,
        job.labels,
        pooling=config.pooling,
        tokenizer=options.get("tokenizer"),
        seed=config.seed,
        bias=job.head_bias,
    )
    max_length = prepare_backbone(model, config, reporter)
    rows, pad_id = job.encode(tokenizer, train, model.encoder, max_length), pad_token_id(tokenizer)
    if job.training_rows is not None:
        rows = job.training_rows(rows)
    reporter.log(
        f"{job.kind} model: {len(train)} train / {len(validation)} validation examples, backbone "
        f"{label}, {sum(p.numel() for p in model.parameters()):,} parameters on {accelerator.device}"
    )
    result = _train(job, config, model, rows, pad_id, target, accelerator, reporter)
    val_rows = job.encode(tokenizer, validation, model.encoder, max_length) if validation else []
    evaluated = job.evaluate(result.model, val_rows, pad_id, config.eval_batch_size, accelerator.device)
    metrics = {f"val_{name}": value for name, value in evaluated.items()}
    card = target.card(job.kind, config, data_snapshot(examples, train, validation), metrics, result, job.labels)
    _finish(accelerator, reporter, result.model, tokenizer, target, card, max_length)
    return TrainResult(target.output_dir, metrics, result.steps, result.resumed_from, card, result.model)


def _train(
    job: HeadJob,
    config: TrainConfig,
    model: PooledHeadModel,
    rows: Rows,
    pad_id: int,
    target: RunTarget,
    accelerator: Any,
    reporter: Reporter,
) -> LoopResult:
    """Run the loop on the embedding rows the data uses (see ``vocab_compact``); the full matrix is
    whole again when this returns."""
    vocab = compact_plan(model.backbone, rows, pad_id=pad_id, weight_decay=config.weight_decay)
    if vocab is not None:
        rows, pad_id = renumber_rows(rows, vocab), int(vocab.table[pad_id])
        reporter.log(f"training the {len(vocab.used):,} embedding rows the data uses of {len(vocab.table):,}")
    with compact_embedding(model.backbone, vocab):
        length, collate = job.length, job.collate(pad_id)
        if job.packed is not None and shares_prefix_exactly(model, rows, pad_id, collate):
            length, collate = job.packed.length, job.packed.collate(pad_id, additive=needs_additive_mask(model))
            reporter.log("decoder backbone: each pair's shared prefix is computed once (packed rows)")
            if reads_only_exactly(model, rows[:4], collate):
                model.reads_only = True
                reporter.log("decoder backbone: its last layer runs only where the rewards are read")
        task = LoopTask(model, rows, [length(row) for row in rows], collate, job.loss, target.fingerprint)
        try:
            return run_loop(task, config, accelerator, target.checkpoint, reporter)
        finally:
            model.reads_only = False


def _finish(
    accelerator: Any,
    reporter: Reporter,
    model: PooledHeadModel,
    tokenizer: Any,
    target: RunTarget,
    card: dict[str, Any],
    max_length: int,
) -> None:
    """Report the validation metrics, write the folder atomically (main process), drop the checkpoint."""
    for name, value in card["metrics"].items():  # a silent reporter but on the main process
        reporter.metric(card["steps"], name, value)
    summary = ", ".join(f"{k} {v:.4f}" for k, v in card["metrics"].items()) or "no validation split"
    save_run(
        accelerator,
        reporter,
        target,
        card,
        lambda folder: save_model(model, tokenizer, folder, {"kind": card["kind"], "max_length": max_length}),
        f"saved {target.output_dir} after {card['steps']} steps: {summary}",
    )
