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
from typing import Any, ClassVar

import torch
from torch import nn

from app.training.core.card import default_checkpoint_path, finished_card, write_card
from app.training.core.checkpoint import (
    atomic_torch_save,
    atomic_write_dir,
    capture_rng_state,
    load_checkpoint,
    restore_rng_state,
)
from app.training.core.loop import (
    LinearSchedule,
    NullReporter,
    Reporter,
    TrainingStopped,
    make_accelerator,
    make_optimizer,
)
from app.training.core.result import TrainResult
from app.training.ppo.config import PolicyGradientConfig, PPOConfig
from app.training.ppo.math import AdaptiveKLController, FixedKLController, KLController
from app.training.ppo.policy import ActorCritic, build_actor_critic, load_policy, merged_policy
from app.training.ppo.rollout import (
    PromptInput,
    RewardFunction,
    Rollout,
    as_reward_function,
    collect_rollout,
    encode_prompts,
    row_generators,
    score_completions,
)
from app.training.ppo.stats import update_stats
from app.training.ppo.step import SequenceBatch, StepLoss, make_experience, optimise, ppo_step_loss

__all__ = ["PPOResult", "PPORun", "RewardFunction", "TrainingStopped", "prompt_indices", "train_policy", "train_ppo"]

_NOT_FINGERPRINTED = ("log_every", "checkpoint_every", "num_threads")  # may change between a stop and a resume


@dataclass
class PPOResult(TrainResult[nn.Module]):
    """Where the new policy is and how the run went: ``steps`` counts updates, ``metrics`` are the last
    update's, ``model`` is the merged policy; plus every update's metrics, which the card does not keep."""

    CARD_UNIT: ClassVar[str] = "update"  # the card says "updates" and "resumed_from_update"

    history: list[dict[str, float]] = field(default_factory=list)  # every update's, in order; [] for a finished run


def train_ppo(
    prompts: Sequence[PromptInput],
    config: PPOConfig,
    output_dir: Path | str,
    *,
    reward: Any,
    classifier: Any = None,
    policy: nn.Module | None = None,
    tokenizer: Any = None,
    value_model: nn.Module | str | None = None,
    reporter: Reporter | None = None,
    checkpoint_path: Path | str | None = None,
) -> PPOResult:
    """Run PPO and save the new policy to ``output_dir`` (which must not exist yet, unless it holds this run).

    ``prompts``: strings, chat message lists or token-id lists. ``reward``: a callable on
    :class:`~app.training.ppo.rollout.Completion` lists, or a scorer with ``score([(prompt, response)])``.
    ``classifier``: optional ClassifierScorer-like (``labels``, ``probabilities(pairs)``) for the safety
    penalty. ``policy``/``tokenizer``/``value_model`` replace ``config.policy``/``config.value_model`` with
    built objects. Raises :class:`TrainingStopped` after a checkpoint when the reporter asked to stop.
    """
    return train_policy(
        PPORun,
        prompts,
        config,
        output_dir,
        reward=reward,
        classifier=classifier,
        policy=policy,
        tokenizer=tokenizer,
        value_model=value_model,
        reporter=reporter,
        checkpoint_path=checkpoint_path,
    )


def train_policy(
    run_cls: type[PPORun],
    prompts: Sequence[PromptInput],
    config: PolicyGradientConfig,
    output_dir: Path | str,
    *,
    reward: Any,
    classifier: Any = None,
    policy: nn.Module | None = None,
    tokenizer: Any = None,
    value_model: nn.Module | str | None = None,
    reporter: Reporter | None = None,
    checkpoint_path: Path | str | None = None,
) -> PPOResult:
    """:func:`train_ppo` for the run ``run_cls`` defines: PPO's, or a subclass's (RLOO's) that keeps its
    checkpoints, resume, reporting and saving. Returns the card of an identical finished run unchanged."""
    config.validate()
    if not prompts:
        raise ValueError("prompts: at least one prompt is required")
    output_dir = Path(output_dir)
    label = config.policy or f"in-memory:{getattr(getattr(policy, 'config', None), 'model_type', 'model')}"
    fingerprint = run_fingerprint(prompts, config, label)
    if (card := finished_card(output_dir, fingerprint)) is not None:
        return run_cls.RESULT.from_card(output_dir, card)
    run = run_cls(
        prompts,
        config,
        reward,
        classifier,
        policy,
        tokenizer,
        value_model,
        reporter or NullReporter(),
        Path(checkpoint_path) if checkpoint_path else default_checkpoint_path(output_dir),
        fingerprint,
    )
    resumed_from = run.train()
    return run.finish(output_dir, label, resumed_from)


def run_fingerprint(prompts: Sequence[PromptInput], config: PolicyGradientConfig, label: str) -> str:
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


def make_controller(config: PolicyGradientConfig) -> KLController:
    """Fixed β, or β adapted toward ``target_kl``."""
    if config.target_kl > 0:
        return AdaptiveKLController(config.kl_coef, config.target_kl, config.kl_horizon)
    return FixedKLController(config.kl_coef)


class PPORun:
    """One training run; the state lives on the instance so each phase reads as a short method.

    A trainer that differs from PPO only in its models and its update (RLOO) subclasses it, overriding
    ``build_models``, ``local_batch_size`` and ``_one_update`` and reusing ``_rollout`` and ``_optimise``."""

    LABEL: ClassVar[str] = "PPO"  # names the algorithm in the run's log
    RESULT: ClassVar[type[PPOResult]] = PPOResult

    def __init__(
        self,
        prompts: Sequence[PromptInput],
        config: PolicyGradientConfig,
        reward: Any,
        classifier: Any,
        policy: nn.Module | None,
        tokenizer: Any,
        value_model: nn.Module | str | None,
        reporter: Reporter,
        checkpoint_path: Path,
        fingerprint: str,
    ) -> None:
        from accelerate.utils import set_seed

        self.config, self.checkpoint_path, self.fingerprint = config, checkpoint_path, fingerprint
        self.accelerator = make_accelerator(config)
        self.reporter = reporter if self.accelerator.is_main_process else NullReporter()
        self.local_batch = self.local_batch_size(self.accelerator.num_processes)
        set_seed(config.seed)
        lm, self.tokenizer = load_policy(config, policy, tokenizer)
        actor, frozen = self.build_models(lm, value_model)
        self.frozen = frozen.to(self.accelerator.device) if frozen is not None else None
        self.prompts = list(prompts)
        self.prompt_rows = encode_prompts(self.tokenizer, self.prompts, config.max_prompt_length)
        self.score = functools.partial(
            score_completions,
            reward=as_reward_function(reward),
            classifier=classifier,
            safety_weight=config.safety_weight,
            safety_head=config.safety_head,
        )
        optimizer = make_optimizer(actor, config)
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, LinearSchedule(0, config.updates))
        self.model, self.optimizer = self.accelerator.prepare(actor, optimizer)
        self.actor: ActorCritic = self.accelerator.unwrap_model(self.model)
        self.controller = make_controller(config)
        self.update, self.history = 0, []

    def local_batch_size(self, processes: int) -> int:
        """Prompts each process samples per update."""
        return _local_batch(self.config, processes)

    def build_models(self, lm: nn.Module, value_model: nn.Module | str | None) -> tuple[nn.Module, nn.Module | None]:
        """(the trained module, a frozen reference or None): the actor-critic."""
        return build_actor_critic(self.config, lm, value_model, len(self.tokenizer))

    @property
    def batch_description(self) -> str:
        return str(self.config.batch_size)

    def reduce_sum(self, tensor: torch.Tensor) -> torch.Tensor:
        return self.accelerator.reduce(tensor, "sum")

    def train(self) -> int:
        """Run the remaining updates; returns the update the run resumed from."""
        resumed_from = self._resume()
        n_params = sum(p.numel() for p in self.actor.parameters() if p.requires_grad)
        self.reporter.log(
            f"{self.LABEL}: {len(self.prompts)} prompts, {self.config.updates} updates of "
            f"{self.batch_description} on {self.accelerator.num_processes} process(es), "
            f"{n_params:,} trainable parameters"
        )
        while self.update < self.config.updates:
            self.history.append(self._one_update(self.update))
            self.update += 1
            self._after_update()
        return resumed_from

    def _one_update(self, update: int) -> dict[str, float]:
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
        """This process's share of the update's prompts, each sampled ``samples_per_prompt`` times (a prompt's
        samples adjacent), and scored; global row r draws from its own stream whatever the split."""
        config, rank = self.config, self.accelerator.process_index
        indices = prompt_indices(len(self.prompts), config.batch_size, config.seed, update)
        first = rank * self.local_batch
        local = [i for i in indices[first : first + self.local_batch] for _ in range(samples_per_prompt)]
        generators = row_generators(
            config.seed, (update * config.batch_size + first) * samples_per_prompt, len(local), self.accelerator.device
        )
        self.model.eval()  # no dropout either way; eval also skips training-only branches in some models
        with self.accelerator.autocast():
            return collect_rollout(
                self.actor,
                self.frozen,
                self.tokenizer,
                [self.prompts[i] for i in local],
                [self.prompt_rows[i] for i in local],
                generators,
                config.response_length,
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

    def _after_update(self) -> None:
        config, update = self.config, self.update
        if update % config.log_every == 0 or update == config.updates:
            self._report(self.history[-1])
        if self.accelerator.is_main_process and self.reporter.should_stop():
            self.accelerator.set_trigger()
        if self.accelerator.check_trigger():  # every process sees the stop, so all leave together
            self._save()
            raise TrainingStopped(update)
        if config.checkpoint_every and update % config.checkpoint_every == 0 and update < config.updates:
            self._save()

    def _report(self, metrics: dict[str, float]) -> None:
        for name, value in metrics.items():
            self.reporter.metric(self.update, name, value)
        summary = " ".join(f"{name} {metrics[name]:.4g}" for name in ("score", "kl", "entropy", "beta"))
        done = f"update {self.update}/{self.config.updates}"
        self.reporter.progress(self.update / self.config.updates, f"{done} {summary}")

    def _save(self) -> None:
        if self.accelerator.is_main_process:
            self.reporter.flush()  # the curves up to this checkpoint first: a resume starts after them
            atomic_torch_save(
                {
                    "trainable": self.actor.trainable_state(),
                    "optimizer": self.optimizer.state_dict(),
                    "scheduler": self.scheduler.state_dict(),
                    "beta": float(self.controller.value),
                    "update": self.update,
                    "history": self.history,
                    "rng": capture_rng_state(),
                    "fingerprint": self.fingerprint,
                },
                self.checkpoint_path,
            )
            self.reporter.log(f"checkpoint written at update {self.update}")
        self.accelerator.wait_for_everyone()

    def _resume(self) -> int:
        """Load a matching checkpoint into the prepared objects; returns the update it was written at."""
        checkpoint = load_checkpoint(self.checkpoint_path)
        if checkpoint is None:
            return 0
        if checkpoint.get("fingerprint") != self.fingerprint:
            self.reporter.log("ignoring a checkpoint written for other prompts or settings; starting afresh")
            return 0
        self.actor.load_trainable_state(checkpoint["trainable"])
        self.optimizer.load_state_dict(checkpoint["optimizer"])
        self.scheduler.load_state_dict(checkpoint["scheduler"])
        self.controller.value = float(checkpoint["beta"])
        self.update, self.history = int(checkpoint["update"]), list(checkpoint["history"])
        restore_rng_state(checkpoint["rng"])
        self.reporter.log(f"resumed from the checkpoint at update {self.update}/{self.config.updates}")
        return self.update

    def finish(self, output_dir: Path, label: str, resumed_from: int) -> PPOResult:
        """Merge the adapters and save policy + tokenizer + generation config + card (main process)."""
        metrics = self.history[-1] if self.history else {}
        card = {
            "kind": "policy",
            "base_policy": label,
            "config": self.config.to_dict(),
            "fingerprint": self.fingerprint,
            "updates": self.update,
            "resumed_from_update": resumed_from,
            "metrics": metrics,
            "created_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        }
        model = None
        if self.accelerator.is_main_process:
            model = merged_policy(self.actor)
            with atomic_write_dir(output_dir) as tmp:
                save_policy(model, self.tokenizer, tmp)
                write_card(tmp, card)
            self.checkpoint_path.unlink(missing_ok=True)
            self.reporter.log(f"saved the new policy to {output_dir} after {self.update} updates")
            self.reporter.progress(1.0, "done")
        self.accelerator.wait_for_everyone()
        return self.RESULT(output_dir, metrics, self.update, resumed_from, card, model, history=self.history)


def _local_batch(config: PPOConfig, processes: int) -> int:
    """Prompts per process; the global batch must split evenly into processes and minibatches."""
    if config.batch_size % processes:
        raise ValueError(f"batch_size: {config.batch_size} does not split across {processes} processes")
    local = config.batch_size // processes
    if local % config.num_minibatches:
        raise ValueError(
            f"num_minibatches: {local} prompts per process do not split into {config.num_minibatches} minibatches"
        )
    return local


def save_policy(model: nn.Module, tokenizer: Any, folder: Path) -> None:
    """An ordinary Hugging Face checkpoint: weights, config, tokenizer and a generation config whose pad
    and EOS tokens are the tokenizer's."""
    generation = getattr(model, "generation_config", None)
    if generation is not None:
        generation.pad_token_id = tokenizer.pad_token_id
        generation.eos_token_id = tokenizer.eos_token_id
    model.config.pad_token_id = tokenizer.pad_token_id
    model.save_pretrained(str(folder))
    tokenizer.save_pretrained(str(folder))
