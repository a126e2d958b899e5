"""The optimisation loop the reward and classifier trainers share, run through accelerate.

The same code trains on the CPU, one GPU, or many processes (``accelerate launch``): accelerate places
the model and synchronises gradients, and the batch sampler gives each process its share of the
batches. Each step the loop asks the trainer's ``compute_loss`` for a loss and a few metrics, steps
AdamW and a linear schedule, reports through a :class:`Reporter`, and every ``checkpoint_every`` steps
(and when asked to stop) writes one resumable checkpoint dict — model, optimizer, scheduler, step,
RNG — atomically. Run again after a crash, the loop loads it and continues at the same batch of the
same epoch, because the batch order is a pure function of (seed, epoch).

The checkpoint is a full (unsharded) state dict written by the main process: right for DDP on models
that fit one device. FSDP/DeepSpeed-sharded runs would need ``accelerator.save_state`` instead.
"""

from __future__ import annotations

import logging
import math
import os
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import torch
from torch import nn

from app.training.core.batches import LengthGroupedBatchSampler
from app.training.core.checkpoint import atomic_torch_save, capture_rng_state, load_checkpoint, restore_rng_state
from app.training.core.config import RuntimeSettings, TrainConfig

logger = logging.getLogger(__name__)

LossFn = Callable[[nn.Module, dict[str, torch.Tensor]], tuple[torch.Tensor, dict[str, torch.Tensor]]]


class Reporter(Protocol):
    """Where a trainer reports; a job handler writes these to the jobs tables. ``should_stop`` is polled
    every step, so it should be cheap (e.g. read a flag a heartbeat thread refreshes)."""

    def progress(self, frac: float, msg: str) -> None: ...
    def metric(self, step: int, name: str, value: float) -> None: ...
    def log(self, line: str) -> None: ...
    def should_stop(self) -> bool: ...
    def flush(self) -> None:
        """Persist what was reported so far; called before each checkpoint is written, so the curves
        up to a checkpoint survive a process killed right after it (a resume starts past them)."""


class NullReporter:
    """Reports to the module logger and never asks to stop: for notebooks and scripts."""

    def progress(self, frac: float, msg: str) -> None:
        logger.debug("%.0f%% %s", 100 * frac, msg)

    def metric(self, step: int, name: str, value: float) -> None:
        logger.debug("step %d %s=%.4f", step, name, value)

    def log(self, line: str) -> None:
        logger.info(line)

    def should_stop(self) -> bool:
        return False

    def flush(self) -> None:
        """Nothing is buffered."""


class TrainingStopped(Exception):
    """Raised after the reporter asked to stop and a checkpoint was written; a re-run resumes there."""

    def __init__(self, step: int) -> None:
        super().__init__(f"training stopped at step {step}; checkpoint written")
        self.step = step


@dataclass
class LoopTask:
    """What a trainer hands the loop: the model, encoded examples, how to batch them and the loss."""

    model: nn.Module
    dataset: Sequence[dict[str, Any]]
    lengths: Sequence[int]
    collate: Callable[[Sequence[dict[str, Any]]], dict[str, torch.Tensor]]
    compute_loss: LossFn
    fingerprint: str  # data + config: a checkpoint written for anything else is not resumed


@dataclass
class LoopResult:
    """What the loop did, before the trainer validates and saves: not a
    :class:`~app.training.core.result.TrainResult`, which has a folder, a card and metrics that do not
    exist yet here (and whose model may be a merged copy of this one, or absent)."""

    steps: int
    resumed_from: int  # 0 for a fresh run
    model: nn.Module  # unwrapped from accelerate's wrappers


class LinearSchedule:
    """LR multiplier: linear warm-up to 1, then linear decay to 0 at ``total`` steps.

    A class rather than a closure so that its state survives the checkpoint round trip."""

    def __init__(self, warmup: int, total: int) -> None:
        self.warmup = warmup
        self.total = max(total, 1)

    def __call__(self, step: int) -> float:
        if step < self.warmup:
            return (step + 1) / (self.warmup + 1)
        return max(0.0, (self.total - step) / max(self.total - self.warmup, 1))


def make_accelerator(config: RuntimeSettings) -> Any:
    """An ``accelerate.Accelerator`` for ``config``, with a sane CPU thread count."""
    from accelerate import Accelerator
    from accelerate.state import AcceleratorState

    # accelerate keeps its settings in a process-wide singleton and refuses different ones later; a
    # worker that runs an fp32 job and then a bf16 one must be able to, so the job's settings win. The
    # process group (PartialState) is kept, so this is safe under `accelerate launch` too.
    AcceleratorState._reset_state(reset_partial_state=False)
    accelerator = Accelerator(cpu=config.use_cpu, mixed_precision=config.mixed_precision)
    if accelerator.device.type == "cpu":
        torch.set_num_threads(cpu_threads(config.num_threads, accelerator.state.num_processes))
    return accelerator


def setup_accelerator(config: RuntimeSettings, reporter: Reporter | None) -> tuple[Any, Reporter]:
    """(:func:`make_accelerator`, the reporter this process speaks through): ``reporter`` (or a
    :class:`NullReporter`) on the main process, a silent one elsewhere, since one process speaks for all
    (each still trains its shard)."""
    accelerator = make_accelerator(config)
    if not accelerator.is_main_process:
        return accelerator, NullReporter()
    warning = emulated_bf16_warning(config.mixed_precision, accelerator.device.type)
    if warning and reporter is None:
        logger.warning(warning)  # a script's run: no job log to say it in
    elif warning:
        reporter.log(warning)
    return accelerator, reporter or NullReporter()


def cpu_computes_bf16() -> bool:
    """Whether this CPU has bf16 arithmetic (AVX-512 BF16 or AMX tiles); torch's own probes."""
    return bool(torch.cpu._is_avx512_bf16_supported() or torch.cpu._is_amx_tile_supported())


def emulated_bf16_warning(mixed_precision: str, device_type: str) -> str | None:
    """The warning a bf16 run on a CPU without bf16 arithmetic gets, or None.

    The setting is honoured (the user asked for it, and the numbers stay right), but without the
    instructions every bf16 matrix product is emulated: a MiniLM training step measured 52 s under bf16
    autocast against 3.3 s in fp32 on an AVX2-only EPYC."""
    if mixed_precision != "bf16" or device_type != "cpu" or cpu_computes_bf16():
        return None
    return (
        "mixed_precision bf16 on a CPU without AVX-512 BF16 or AMX: bf16 arithmetic is emulated here and "
        "runs many times slower than fp32 (mixed_precision: no)"
    )


def cpu_threads(requested: int, processes: int = 1) -> int:
    """``requested`` if set, else half this process's share of the cores: the other half keeps the OS,
    the tokenizer and a neighbour's job from stalling the intra-op threads (which spin, not sleep)."""
    if requested > 0:
        return requested
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    return max(1, cores // (2 * max(processes, 1)))


def make_optimizer(model: nn.Module, config: TrainConfig) -> torch.optim.Optimizer:
    """AdamW over the trainable parameters, fused where the build supports it (fewer kernel launches)."""
    params = [p for p in model.parameters() if p.requires_grad]
    kwargs: dict[str, Any] = {"lr": config.learning_rate, "weight_decay": config.weight_decay}
    try:
        return torch.optim.AdamW(params, fused=True, **kwargs)
    except (RuntimeError, ValueError):
        return torch.optim.AdamW(params, **kwargs)


def planned_epochs(config: Any, steps_per_epoch: int) -> int:
    """``config.epochs``, or the fewest passes that reach ``config.min_steps`` optimizer steps when a config
    has that floor. A first reward model sees a few hundred pairs, a few optimizer steps an epoch: one or two
    passes leave it near chance where more reach the accuracy the data allows (``bench/reward_layers.py``)."""
    floor = getattr(config, "min_steps", 0)
    return max(config.epochs, math.ceil(floor / steps_per_epoch)) if steps_per_epoch else config.epochs


def run_loop(
    task: LoopTask, config: TrainConfig, accelerator: Any, checkpoint_path: Path, reporter: Reporter
) -> LoopResult:
    """Train ``task.model`` for ``config.epochs``, resuming from ``checkpoint_path`` when it matches."""
    return _Loop(task, config, accelerator, Path(checkpoint_path), reporter).run()


class _Loop:
    """One training run; state lives on the instance so each step reads as a few short methods."""

    def __init__(
        self, task: LoopTask, config: TrainConfig, accelerator: Any, checkpoint_path: Path, reporter: Reporter
    ) -> None:
        from accelerate.utils import set_seed

        self.task, self.config, self.accelerator = task, config, accelerator
        self.checkpoint_path, self.reporter = checkpoint_path, reporter
        set_seed(config.seed)
        self.sampler = LengthGroupedBatchSampler(
            task.lengths,
            config.batch_size,
            seed=config.seed,
            group_by_length=config.group_by_length,
            num_replicas=accelerator.num_processes,
            rank=accelerator.process_index,
        )
        self.steps_per_epoch = len(self.sampler)
        self.total_steps = self.steps_per_epoch * planned_epochs(config, self.steps_per_epoch)
        optimizer = make_optimizer(task.model, config)
        # The scheduler is not handed to accelerate: it steps once per optimizer step on every process.
        schedule = LinearSchedule(int(config.warmup_ratio * self.total_steps), self.total_steps)
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, schedule)
        # One process without a loss scaler has nothing to synchronise or unscale: step the optimizer and
        # clip directly rather than through accelerate's wrappers, whose checks cost time every step.
        self.direct = accelerator.num_processes == 1 and accelerator.scaler is None
        if self.direct:
            self.model, self.optimizer = accelerator.prepare_model(task.model), optimizer
        else:
            self.model, self.optimizer = accelerator.prepare(task.model, optimizer)
        self.params = [p for p in task.model.parameters() if p.requires_grad]
        self.step = 0
        self.window: dict[str, torch.Tensor] = {}
        self.window_steps = 0

    def run(self) -> LoopResult:
        rng = self._resume()
        if rng is not None:
            restore_rng_state(rng)
        resumed_from = self.step
        self.reporter.log(
            f"training steps {self.step + 1}-{self.total_steps} ({self.steps_per_epoch} steps an epoch, "
            f"{self.config.batch_size} examples a step per process)"
        )
        self.model.train()
        while self.step < self.total_steps:
            epoch, skip = divmod(self.step, self.steps_per_epoch)
            for batch in self._epoch_batches(epoch, skip):
                self._train_step(batch)
                self._after_step()
        return LoopResult(self.step, resumed_from, self.accelerator.unwrap_model(self.model))

    def _epoch_batches(self, epoch: int, skip: int) -> Iterator[dict[str, torch.Tensor]]:
        """This process's collated batches of ``epoch`` after the first ``skip``, on the device.

        Collated in the loop rather than by a DataLoader: with encoded rows in memory a batch costs
        ~0.1 ms, and nothing here draws from the RNG, so a resumed run's RNG state stays exact."""
        from accelerate.utils import send_to_device

        for indices in self.sampler.batches(epoch)[skip:]:
            batch = self.task.collate([self.task.dataset[i] for i in indices])
            yield send_to_device(batch, self.accelerator.device)

    def _train_step(self, batch: dict[str, torch.Tensor]) -> None:
        loss, metrics = self.task.compute_loss(self.model, batch)
        if self.direct:
            loss.backward()
            if self.config.max_grad_norm > 0:
                torch.nn.utils.clip_grad_norm_(self.params, self.config.max_grad_norm, foreach=True)
        else:
            self.accelerator.backward(loss)
            if self.config.max_grad_norm > 0:
                self.accelerator.clip_grad_norm_(self.model.parameters(), self.config.max_grad_norm)
        self.optimizer.step()
        self.scheduler.step()
        self.optimizer.zero_grad(set_to_none=True)
        self.step += 1
        for name, value in metrics.items():  # summed on device: no host sync until a report
            self.window[name] = self.window.get(name, 0) + value.detach().float()
        self.window_steps += 1

    def _after_step(self) -> None:
        if self.step % max(self.config.log_every, 1) == 0 or self.step == self.total_steps:
            self._report()
        if self._stop_requested():
            self._save()
            raise TrainingStopped(self.step)
        every = self.config.checkpoint_every
        if every > 0 and self.step % every == 0 and self.step < self.total_steps:
            self._save()

    def _stop_requested(self) -> bool:
        """The reporter asked to stop; polled on the main process, then shared so all processes leave together
        (a lone process skips that all-reduce: on a GPU it would wait for the device every step)."""
        if self.direct:
            return self.reporter.should_stop()
        if self.accelerator.is_main_process and self.reporter.should_stop():
            self.accelerator.set_trigger()
        return self.accelerator.check_trigger()

    def _report(self) -> None:
        if self.accelerator.num_processes == 1:  # nothing to average across: skip accelerate's gather per metric
            means = {name: (total / self.window_steps).item() for name, total in self.window.items()}
        else:
            means = {
                name: self.accelerator.reduce(total / self.window_steps, "mean").item()
                for name, total in self.window.items()
            }
        self.window, self.window_steps = {}, 0
        if not self.accelerator.is_main_process:
            return
        for name, value in means.items():
            self.reporter.metric(self.step, f"train_{name}", value)
        self.reporter.metric(self.step, "learning_rate", self.scheduler.get_last_lr()[0])
        summary = " ".join(f"{name} {value:.4f}" for name, value in means.items())
        self.reporter.progress(self.step / self.total_steps, f"step {self.step}/{self.total_steps} {summary}")

    def _save(self) -> None:
        if self.accelerator.is_main_process:
            self.reporter.flush()
            atomic_torch_save(
                {
                    "model": self.accelerator.unwrap_model(self.model).state_dict(),
                    "optimizer": self.optimizer.state_dict(),
                    "scheduler": self.scheduler.state_dict(),
                    "step": self.step,
                    "rng": capture_rng_state(),
                    "fingerprint": self.task.fingerprint,
                },
                self.checkpoint_path,
            )
            self.reporter.log(f"checkpoint written at step {self.step}")
        self.accelerator.wait_for_everyone()

    def _resume(self) -> dict[str, Any] | None:
        """Load a matching checkpoint into the prepared objects; return its RNG state to restore."""
        checkpoint = load_checkpoint(self.checkpoint_path)
        if checkpoint is None:
            return None
        if checkpoint.get("fingerprint") != self.task.fingerprint:
            self.reporter.log("ignoring a checkpoint written for other data or settings; starting afresh")
            return None
        self.accelerator.unwrap_model(self.model).load_state_dict(checkpoint["model"])
        self.optimizer.load_state_dict(checkpoint["optimizer"])
        self.scheduler.load_state_dict(checkpoint["scheduler"])
        self.step = int(checkpoint["step"])
        self.reporter.log(f"resumed from the checkpoint at step {self.step}/{self.total_steps}")
        return checkpoint["rng"]
