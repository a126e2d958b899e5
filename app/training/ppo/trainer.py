"""Train a policy with PPO against a reward function, staying near the reference policy.

Per update: take the next ``batch_size`` prompts (global, split across processes), sample a response to
each (KV-cached, tempered, cut at EOS), score it (reward function − safety_weight × P(unsafe)), give every
token the reward −β·(log π − log π_ref) plus the score at its last token, estimate advantages by GAE,
whiten them, and take ``ppo_epochs`` × ``num_minibatches`` clipped-surrogate steps; then adapt β. The run
goes through accelerate, so the same call trains on the CPU, one GPU, or (``accelerate launch`` /
``torchrun``) many processes, each sampling its share of the batch.

Every ``checkpoint_every`` updates (and when the reporter asks to stop) one resumable checkpoint is written
atomically: the trainable tensors (adapters + value head), optimizer, schedule, β, update count and RNG.
Run again with the same arguments, it continues there. At the end the adapters are merged and the policy
is saved as an ordinary Hugging Face folder (model, tokenizer, generation config) with a card.

All of that but the update itself is :class:`SamplingRun`'s, the frame every trainer shares that samples
from the policy it trains (PPO, RLOO, online DPO): one iteration after another, each drawing this
process's share of its prompts with one random stream per sample, then the stop request, the checkpoint
and, at the end, the merged policy with its card.

    result = train_ppo(prompts, PPOConfig(policy="/models/policy-3"), "/models/policy-4",
                       reward=RewardScorer("/models/reward-2"), classifier=ClassifierScorer("/models/cls-1"))
    result.metrics  # {"score": 1.7, "kl": 2.1, "entropy": 1.9, "policy_loss": …, "beta": 0.05, …}
"""

from __future__ import annotations

import datetime as dt
import functools
import hashlib
import json
import random
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, TypedDict, Unpack, cast

import torch
from torch import nn

from app.training.core.checkpoint import atomic_torch_save, capture_rng_state, load_checkpoint, restore_rng_state
from app.training.core.config import StoredConfig
from app.training.core.loop import (
    LinearSchedule,
    Reporter,
    TrainingStopped,
    make_optimizer,
    setup_accelerator,
)
from app.training.core.result import TrainResult
from app.training.core.run import RunTarget, model_label, save_merged_policy
from app.training.ppo.config import PolicyGradientConfig, PPOConfig
from app.training.ppo.math import AdaptiveKLController, FixedKLController, KLController
from app.training.ppo.policy import ActorCritic, build_actor_critic, load_policy
from app.training.ppo.rollout import (
    PromptInput,
    RewardFunction,
    Rollout,
    collect_rollout,
    completion_scorer,
    encode_prompts,
    row_generators,
)
from app.training.ppo.stats import update_stats
from app.training.ppo.step import SequenceBatch, StepLoss, make_experience, optimise, ppo_step_loss

__all__ = [
    "PPOResult",
    "PPORun",
    "RewardFunction",
    "SamplingOptions",
    "SamplingResult",
    "SamplingRun",
    "TrainingStopped",
    "prompt_indices",
    "train_ppo",
    "train_sampling",
]

_NOT_FINGERPRINTED = ("log_every", "checkpoint_every", "num_threads")  # may change between a stop and a resume


@dataclass
class SamplingResult(TrainResult[nn.Module]):
    """Where the new policy is and how a sampling run went: ``steps`` counts its iterations (``CARD_UNIT``s),
    ``metrics`` are the last one's, ``model`` is the merged policy (main process only); plus every
    iteration's metrics, which the card does not keep."""

    history: list[dict[str, float]] = field(default_factory=list)  # every iteration's, in order; [] for a finished run


@dataclass
class PPOResult(SamplingResult):
    """A PPO run's result: ``steps`` counts updates, ``metrics`` are the last update's."""

    CARD_UNIT: ClassVar[str] = "update"  # the card says "updates" and "resumed_from_update"


class SamplingOptions(TypedDict, total=False):
    """The keyword arguments of a sampling trainer's entry point (``train_ppo``, ``train_rloo``, …)."""

    reward: Any  # required: a callable on Completion lists, or a scorer with ``score([(prompt, response)])``
    classifier: Any  # optional ClassifierScorer-like (``labels``, ``probabilities(pairs)``): the safety penalty
    policy: nn.Module | None  # a built causal LM instead of ``config.policy`` (with ``tokenizer``)
    tokenizer: Any
    reporter: Reporter | None  # progress, metrics and stop requests; default: report nothing
    checkpoint_path: Path | str | None  # default: a hidden file beside the output folder


class PPOOptions(SamplingOptions, total=False):
    """``train_ppo``'s: a sampling trainer's, plus the value model."""

    value_model: nn.Module | str | None  # a built value model (or its folder) instead of ``config.value_model``


def train_ppo(
    prompts: Sequence[PromptInput], config: PPOConfig, output_dir: Path | str, **options: Unpack[PPOOptions]
) -> PPOResult:
    """Run PPO and save the new policy to ``output_dir`` (which must not exist yet, unless it holds this run).

    ``prompts``: strings, chat message lists or token-id lists. ``reward``: a callable on
    :class:`~app.training.ppo.rollout.Completion` lists, or a scorer with ``score([(prompt, response)])``.
    ``classifier``: optional ClassifierScorer-like (``labels``, ``probabilities(pairs)``) for the safety
    penalty. ``policy``/``tokenizer``/``value_model`` replace ``config.policy``/``config.value_model`` with
    built objects. Raises :class:`TrainingStopped` after a checkpoint when the reporter asked to stop.
    """
    return cast(PPOResult, train_sampling(PPORun, prompts, config, output_dir, **options))  # PPORun.RESULT


def train_sampling(
    run_cls: type[SamplingRun],
    prompts: Sequence[PromptInput],
    config: Any,
    output_dir: Path | str,
    *,
    reward: Any,
    policy: nn.Module | None = None,
    reporter: Reporter | None = None,
    checkpoint_path: Path | str | None = None,
    **inputs: Any,
) -> SamplingResult:
    """Train with the run ``run_cls`` defines (PPO's, RLOO's, online DPO's) and save the merged policy to
    ``output_dir``; the arguments are :class:`SamplingOptions` (``inputs``: the rest of them, which go to
    the run as they are). Returns the result of an identical finished run unchanged."""
    config.validate()
    if not prompts:
        raise ValueError("prompts: at least one prompt is required")
    label = run_cls.label(config, policy)
    target = RunTarget.of(label, run_fingerprint(prompts, config, label), output_dir, checkpoint_path)
    if (finished := target.finished(run_cls.RESULT)) is not None:
        return finished
    run = run_cls(prompts, config, target, reporter, reward=reward, policy=policy, **inputs)
    return run.finish(run.train())


def run_fingerprint(prompts: Sequence[PromptInput], config: StoredConfig, label: str) -> str:
    """sha256 of (prompts, settings, policy): a checkpoint resumes only into the run that wrote it."""
    settings = {k: v for k, v in config.to_dict().items() if k not in _NOT_FINGERPRINTED}
    payload = json.dumps({"prompts": list(prompts), "config": settings, "policy": label}, sort_keys=True, default=str)
    return hashlib.sha256(payload.encode()).hexdigest()


@functools.lru_cache(maxsize=4)
def _pass_order(n: int, seed: int, pass_index: int) -> tuple[int, ...]:
    order = list(range(n))
    random.Random(seed * 1_000_003 + pass_index).shuffle(order)
    return tuple(order)


def prompt_indices(n_prompts: int, batch_size: int, seed: int, update: int) -> list[int]:
    """The global batch of ``update``: the next ``batch_size`` of a fresh shuffle per pass over the prompts.

    A pure function of (seed, update), so a resumed run draws the same prompts an uninterrupted one would."""
    out = []
    for slot in range(update * batch_size, (update + 1) * batch_size):
        pass_index, position = divmod(slot, n_prompts)
        out.append(_pass_order(n_prompts, seed, pass_index)[position])
    return out


def split_across(name: str, total: int, processes: int) -> int:
    """``total`` (the config field ``name``) split evenly across ``processes``."""
    if total % processes:
        raise ValueError(f"{name}: {total} does not split across {processes} processes")
    return total // processes


def make_controller(config: PolicyGradientConfig) -> KLController:
    """Fixed β, or β adapted toward ``target_kl``."""
    if config.target_kl > 0:
        return AdaptiveKLController(config.kl_coef, config.target_kl, config.kl_horizon)
    return FixedKLController(config.kl_coef)


@dataclass(frozen=True)
class Iterations:
    """How a sampling run proceeds: ``total`` iterations of ``prompts`` prompts each (across all processes),
    reported every ``report_every`` and checkpointed every ``checkpoint_every`` (0: only on stop), the last
    one always reported and never checkpointed (the saved policy follows it)."""

    total: int
    prompts: int
    report_every: int = 1
    checkpoint_every: int = 1


@dataclass
class PromptDraw:
    """This process's share of an iteration's prompts, each repeated k times (a prompt's samples adjacent)."""

    indices: list[int]  # the local prompts, once each
    prompts: list[PromptInput]  # k times each
    rows: list[list[int]]  # their token ids, k times each
    generators: list[torch.Generator]  # one random stream per sample, keyed by its global row


class SamplingRun:
    """One run of a trainer that samples from the policy it trains; the state lives on the instance so each
    phase reads as a short method.

    A subclass says how the run proceeds (``iterations``), how its models are built (``load_models``), how
    the learning rate is scheduled (``schedule``), what one iteration does (``_iterate``) and what the card
    says (``card``). The rest is here: accelerate, the prompts (encoded once) and their scoring, this
    process's share of each iteration's prompts, the reports, the stop request, the resumable checkpoint
    (loaded only by the run that wrote it) and the merged policy saved atomically with its card."""

    LABEL: ClassVar[str]  # names the algorithm in the run's log
    RESULT: ClassVar[type[SamplingResult]]  # its CARD_UNIT names an iteration in the log and the checkpoint
    CHECKPOINT_AT: ClassVar[str] = "at"  # "checkpoint written at update 3"; "after": "… after round 3"
    SUMMARY: ClassVar[tuple[str, ...]]  # the metrics the progress line shows
    policy: ActorCritic  # the trained module, unwrapped from accelerate's wrappers

    def __init__(
        self,
        prompts: Sequence[PromptInput],
        config: Any,
        target: RunTarget,
        reporter: Reporter | None,
        *,
        reward: Any,
        classifier: Any = None,
        **models: Any,
    ) -> None:
        from accelerate.utils import set_seed

        self.config, self.target, self.plan = config, target, self.iterations(config)
        self.accelerator, self.reporter = setup_accelerator(config, reporter)
        self.local_batch = self.local_batch_size(self.accelerator.num_processes)
        set_seed(config.seed)
        module, frozen, self.tokenizer = self.load_models(**models)
        self.frozen = frozen.to(self.accelerator.device) if frozen is not None else None
        self.prompts = list(prompts)
        self.prompt_rows = encode_prompts(self.tokenizer, self.prompts, config.max_prompt_length)
        self.score = completion_scorer(reward, classifier, config.safety_weight, config.safety_head)
        optimizer = make_optimizer(module, config)
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, self.schedule())
        self.model, self.optimizer = self.accelerator.prepare(module, optimizer)
        self.policy = self.accelerator.unwrap_model(self.model)
        self.done, self.history = 0, []

    @classmethod
    def label(cls, config: Any, policy: nn.Module | None) -> str:
        """How the card (and the fingerprint) name the starting policy."""
        return model_label(config.policy, policy)

    @classmethod
    def iterations(cls, config: Any) -> Iterations:
        raise NotImplementedError

    def local_batch_size(self, processes: int) -> int:
        """Prompts each process samples per iteration."""
        raise NotImplementedError

    def load_models(self, **models: Any) -> tuple[nn.Module, nn.Module | None, Any]:
        """(the trained module, a frozen reference or None, the tokenizer) from the run's model arguments."""
        raise NotImplementedError

    def schedule(self) -> LinearSchedule:
        """The learning-rate multiplier over the run's optimizer steps."""
        raise NotImplementedError

    def _iterate(self, index: int) -> dict[str, float]:
        """Iteration ``index``; returns its global metrics."""
        raise NotImplementedError

    def card(self, metrics: dict[str, float], resumed_from: int) -> dict[str, Any]:
        """What is saved beside the policy."""
        raise NotImplementedError

    @property
    def batch_description(self) -> str:
        """An iteration's batch, as the run's first log line says it."""
        raise NotImplementedError

    @property
    def unit(self) -> str:
        return self.RESULT.CARD_UNIT

    @property
    def saved_after(self) -> str:
        """How far the run got, as the log line of the saved policy says."""
        return f"{self.done} {self.unit}s"

    def ended(self) -> bool:
        """True once the run has decided to stop before its last iteration (online DPO's KL budget)."""
        return False

    def extra_state(self) -> dict[str, Any]:
        """What the subclass adds to the checkpoint."""
        return {}

    def load_extra_state(self, checkpoint: dict[str, Any]) -> None:
        """Take back what :meth:`extra_state` wrote."""

    def draw(self, index: int, samples_per_prompt: int = 1, row_stride: int | None = None) -> PromptDraw:
        """This process's share of iteration ``index``'s prompts, each to be sampled ``samples_per_prompt``
        times; global row r draws from its own stream whatever the split across processes. ``row_stride``
        (≥ ``samples_per_prompt``): the rows set aside per prompt, so a run whose k changes from one iteration
        to the next never draws one stream twice."""
        first, batch = self.accelerator.process_index * self.local_batch, self.plan.prompts
        local = prompt_indices(len(self.prompts), batch, self.config.seed, index)[first : first + self.local_batch]
        repeated = [i for i in local for _ in range(samples_per_prompt)]
        stride = row_stride or samples_per_prompt
        starts = [(index * batch + first + j) * stride for j in range(len(local))]  # each local prompt's first row
        generators = [
            g
            for start in starts
            for g in row_generators(self.config.seed, start, samples_per_prompt, self.accelerator.device)
        ]
        prompts, rows = [self.prompts[i] for i in repeated], [self.prompt_rows[i] for i in repeated]
        return PromptDraw(local, prompts, rows, generators)

    def train(self) -> int:
        """Run the remaining iterations; returns the one the run resumed from."""
        resumed_from = self._resume()
        n_params = sum(p.numel() for p in self.policy.parameters() if p.requires_grad)
        self.reporter.log(
            f"{self.LABEL}: {len(self.prompts)} prompts, {self.plan.total} {self.unit}s of {self.batch_description}, "
            f"{n_params:,} trainable parameters"
        )
        while self.done < self.plan.total and not self.ended():
            self.history.append(self._iterate(self.done))
            self.done += 1
            self._after_iteration()
        return resumed_from

    def _after_iteration(self) -> None:
        done, plan = self.done, self.plan
        if done % plan.report_every == 0 or done == plan.total:
            self._report(self.history[-1])
        if self.accelerator.is_main_process and self.reporter.should_stop():
            self.accelerator.set_trigger()
        if self.accelerator.check_trigger():  # every process sees the stop, so all leave together
            self._save()
            raise TrainingStopped(done)
        if plan.checkpoint_every and done % plan.checkpoint_every == 0 and done < plan.total:
            self._save()

    def _report(self, metrics: dict[str, float]) -> None:
        """The iteration's metrics as curves over iterations, but the ``train_`` ones: a subclass that has
        them (online DPO) reports them at every optimizer step, and keeps their means in the history."""
        for name, value in metrics.items():
            if not name.startswith("train_"):
                self.reporter.metric(self.done, name, value)
        summary = " ".join(f"{name} {metrics.get(name, float('nan')):.4g}" for name in self.SUMMARY)
        done, total = self.done, self.plan.total
        self.reporter.progress(done / total, f"{self.unit} {done}/{total} {summary}")

    def _save(self) -> None:
        if self.accelerator.is_main_process:
            self.reporter.flush()  # the curves up to this checkpoint first: a resume starts after them
            atomic_torch_save(
                {
                    "trainable": self.policy.trainable_state(),
                    "optimizer": self.optimizer.state_dict(),
                    "scheduler": self.scheduler.state_dict(),
                    self.unit: self.done,
                    **self.extra_state(),
                    "history": self.history,
                    "rng": capture_rng_state(),
                    "fingerprint": self.target.fingerprint,
                },
                self.target.checkpoint,
            )
            self.reporter.log(f"checkpoint written {self.CHECKPOINT_AT} {self.unit} {self.done}")
        self.accelerator.wait_for_everyone()

    def _resume(self) -> int:
        """Load a matching checkpoint into the prepared objects; returns the iteration it was written at."""
        checkpoint = load_checkpoint(self.target.checkpoint)
        if checkpoint is None:
            return 0
        if checkpoint.get("fingerprint") != self.target.fingerprint:
            self.reporter.log("ignoring a checkpoint written for other prompts or settings; starting afresh")
            return 0
        self.policy.load_trainable_state(checkpoint["trainable"])
        self.optimizer.load_state_dict(checkpoint["optimizer"])
        self.scheduler.load_state_dict(checkpoint["scheduler"])
        self.load_extra_state(checkpoint)
        self.done, self.history = int(checkpoint[self.unit]), list(checkpoint["history"])
        restore_rng_state(checkpoint["rng"])
        self.reporter.log(f"resumed from the checkpoint {self.CHECKPOINT_AT} {self.unit} {self.done}/{self.plan.total}")
        return self.done

    def finish(self, resumed_from: int) -> SamplingResult:
        """Merge the adapters and save policy + tokenizer + generation config + card (main process)."""
        metrics = self.history[-1] if self.history else {}
        card = self.card(metrics, resumed_from)
        model = save_merged_policy(
            self.accelerator, self.reporter, self.policy.lm, self.tokenizer, self.target, card, self.saved_after
        )
        return self.RESULT(self.target.output_dir, metrics, self.done, resumed_from, card, model, history=self.history)


class PPORun(SamplingRun):
    """A PPO run. A trainer that differs from PPO only in its models and its update (RLOO) subclasses it,
    overriding ``build_models``, ``local_batch_size`` and ``_iterate`` and reusing ``_rollout`` and
    ``_optimise``."""

    LABEL: ClassVar[str] = "PPO"
    RESULT: ClassVar[type[SamplingResult]] = PPOResult
    SUMMARY: ClassVar[tuple[str, ...]] = ("score", "kl", "entropy", "beta")
    config: PolicyGradientConfig

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.controller = make_controller(self.config)

    @classmethod
    def label(cls, config: Any, policy: nn.Module | None) -> str:
        """The configured folder even when a built policy is passed (as the fingerprints of existing runs say)."""
        return config.policy or f"in-memory:{getattr(getattr(policy, 'config', None), 'model_type', 'model')}"

    @classmethod
    def iterations(cls, config: PolicyGradientConfig) -> Iterations:
        return Iterations(config.updates, config.batch_size, config.log_every, config.checkpoint_every)

    def local_batch_size(self, processes: int) -> int:
        """Prompts per process; the global batch must split evenly into processes and minibatches."""
        local = split_across("batch_size", self.config.batch_size, processes)
        if local % self.config.num_minibatches:
            raise ValueError(
                f"num_minibatches: {local} prompts per process do not split into {self.config.num_minibatches} "
                "minibatches"
            )
        return local

    def load_models(
        self, policy: nn.Module | None = None, tokenizer: Any = None, value_model: nn.Module | str | None = None
    ) -> tuple[nn.Module, nn.Module | None, Any]:
        lm, tokenizer = load_policy(self.config, policy, tokenizer)
        module, frozen = self.build_models(lm, value_model, len(tokenizer))
        return module, frozen, tokenizer

    def build_models(
        self, lm: nn.Module, value_model: nn.Module | str | None, vocab_size: int
    ) -> tuple[nn.Module, nn.Module | None]:
        """(the trained module, a frozen reference or None): the actor-critic."""
        return build_actor_critic(self.config, lm, value_model, vocab_size)

    def schedule(self) -> LinearSchedule:
        return LinearSchedule(0, self.config.updates)

    @property
    def batch_description(self) -> str:
        return f"{self.config.batch_size} on {self.accelerator.num_processes} process(es)"

    def extra_state(self) -> dict[str, Any]:
        return {"beta": float(self.controller.value)}

    def load_extra_state(self, checkpoint: dict[str, Any]) -> None:
        self.controller.value = float(checkpoint["beta"])

    def reduce_sum(self, tensor: torch.Tensor) -> torch.Tensor:
        return self.accelerator.reduce(tensor, "sum")

    def _iterate(self, update: int) -> dict[str, float]:
        """Rollout → advantages → optimisation → β; returns the update's global metrics."""
        config = self.config
        rollout = self._rollout(update)
        beta = self.controller.value
        experience, kl = make_experience(rollout, beta, config, self.reduce_sum)
        losses, learning_rate = self._optimise(experience, update)
        stats = update_stats(rollout, kl, losses, beta, config, self.reduce_sum, self.accelerator.num_processes)
        self.controller.update(stats["kl"], config.batch_size)
        return {**stats, "learning_rate": learning_rate}

    def _rollout(self, update: int, samples_per_prompt: int = 1) -> Rollout:
        """This process's share of the update's prompts, each sampled ``samples_per_prompt`` times, and scored."""
        draw = self.draw(update, samples_per_prompt)
        self.model.eval()  # no dropout either way; eval also skips training-only branches in some models
        with self.accelerator.autocast():
            return collect_rollout(
                self.policy,
                self.frozen,
                self.tokenizer,
                draw.prompts,
                draw.rows,
                draw.generators,
                self.config.response_length,
                self.score,
            )

    def _optimise(
        self, experience: SequenceBatch, update: int, loss_fn: StepLoss = ppo_step_loss
    ) -> tuple[dict[str, torch.Tensor], float]:
        """The update's optimizer steps on ``experience``, then the schedule's; returns (losses, learning rate)."""
        self.model.train()
        shuffle = torch.Generator().manual_seed(self.config.seed * 1_000_003 + update)
        losses = optimise(
            self.model, self.optimizer, self.accelerator, experience, self.config, shuffle, self.reduce_sum, loss_fn
        )
        learning_rate = self.scheduler.get_last_lr()[0]
        self.scheduler.step()
        return losses, learning_rate

    def card(self, metrics: dict[str, float], resumed_from: int) -> dict[str, Any]:
        return {
            "kind": "policy",
            "method": self.LABEL.lower(),  # ppo | rloo: the model card's tags
            "base_policy": self.target.label,
            "config": self.config.to_dict(),
            "fingerprint": self.target.fingerprint,
            "updates": self.done,
            "resumed_from_update": resumed_from,
            "metrics": metrics,
            "created_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        }
