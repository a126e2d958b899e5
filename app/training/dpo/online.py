"""Online (iterative) DPO: the policy makes its own pairs, a reward model ranks them, DPO learns from them.

Each round draws ``prompts_per_round`` prompts (a fresh shuffle per pass, a pure function of (seed, round)),
samples ``samples_per_prompt`` answers to each from the *current* policy with PPO's batched KV-cache
sampler (one random stream per answer, keyed by its global row, so a resumed round samples the same
answers), scores them with the reward model (minus ``safety_weight × P(unsafe)`` with a classifier, as in
PPO) and pairs the best against the worst; a prompt whose best and worst scores tie says nothing about
which is better and gives no pair. Then ``epochs`` passes of the DPO loss over the round's pairs. The
reference stays the starting policy all along (LoRA off), so the KL the loss holds the policy to is to
where it began, not to the last round. A resumable checkpoint is written after every round; at the end
the adapters are merged and the policy saved atomically, like the offline trainer's.

    result = train_online_dpo(prompts, OnlineDPOConfig(policy="/models/policy-3"), "/models/policy-4",
                              reward=RewardScorer("/models/reward-2"))
    result.history[-1]  # {"score_mean": 1.2, "score_best": 2.0, "pairs": 15, "tied_prompts": 1, ...}
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import torch
from accelerate.utils import gather_object
from torch import nn

from app.generation.transformers_backend import left_pad
from app.training.core.batches import LengthGroupedBatchSampler
from app.training.core.card import build_card, default_checkpoint_path, finished_card
from app.training.core.checkpoint import atomic_torch_save, capture_rng_state, load_checkpoint, restore_rng_state
from app.training.core.loop import (
    LinearSchedule,
    NullReporter,
    Reporter,
    TrainingStopped,
    make_accelerator,
    make_optimizer,
)
from app.training.core.result import TrainResult
from app.training.dpo.config import OnlineDPOConfig
from app.training.dpo.data import DPOCollator, PairRow, add_reference_logprobs, pair_row, row_length
from app.training.dpo.policy import build_policy
from app.training.dpo.step import dpo_step
from app.training.dpo.trainer import policy_label, save_merged_policy
from app.training.ppo.rollout import (
    Completion,
    PromptInput,
    as_reward_function,
    decode_completions,
    encode_prompts,
    row_generators,
    sample_responses,
    score_completions,
)
from app.training.ppo.trainer import prompt_indices, run_fingerprint

__all__ = ["OnlineDPOResult", "TrainingStopped", "best_and_worst", "train_online_dpo"]


@dataclass
class OnlineDPOResult(TrainResult[nn.Module]):
    """``steps`` counts rounds; ``metrics`` are the last round's; plus every round's, which the card does not keep."""

    CARD_UNIT: ClassVar[str] = "round"  # the card says "rounds" and "resumed_from_round"

    history: list[dict[str, float]] = field(default_factory=list)  # [] for a run whose card was returned


def train_online_dpo(
    prompts: Sequence[PromptInput],
    config: OnlineDPOConfig,
    output_dir: Path | str,
    *,
    reward: Any,
    classifier: Any = None,
    policy: nn.Module | None = None,
    tokenizer: Any = None,
    reporter: Reporter | None = None,
    checkpoint_path: Path | str | None = None,
) -> OnlineDPOResult:
    """Run the rounds and save the merged policy to ``output_dir`` (which must not exist yet, unless it holds
    this very run).

    ``prompts``: strings, chat message lists or token-id lists. ``reward``: a callable on PPO's
    :class:`~app.training.ppo.rollout.Completion` lists, or a scorer with ``score([(prompt, response)])``.
    ``classifier``: optional ClassifierScorer-like (``labels``, ``probabilities(pairs)``) for the safety
    penalty. Raises :class:`TrainingStopped` after a checkpoint when the reporter asked to stop."""
    if not prompts:
        raise ValueError("prompts: at least one prompt is required")
    output_dir = Path(output_dir)
    label = policy_label(config, policy)
    fingerprint = run_fingerprint(prompts, config, label)  # type: ignore[arg-type] - duck-typed config
    if (card := finished_card(output_dir, fingerprint)) is not None:
        return OnlineDPOResult.from_card(output_dir, card)
    run = _OnlineRun(
        prompts,
        config,
        reward,
        classifier,
        policy,
        tokenizer,
        reporter or NullReporter(),
        Path(checkpoint_path) if checkpoint_path else default_checkpoint_path(output_dir),
        fingerprint,
    )
    resumed_from = run.train()
    return run.finish(output_dir, label, resumed_from)


def best_and_worst(scores: Sequence[float]) -> tuple[int, int] | None:
    """Indices of the highest and the lowest score (the first of equals), or None when they tie."""
    best = max(range(len(scores)), key=lambda i: scores[i])
    worst = min(range(len(scores)), key=lambda i: scores[i])
    return None if scores[best] <= scores[worst] else (best, worst)


class _OnlineRun:
    """One run; the state lives on the instance so each phase of a round reads as a short method."""

    def __init__(
        self,
        prompts: Sequence[PromptInput],
        config: OnlineDPOConfig,
        reward: Any,
        classifier: Any,
        policy: nn.Module | None,
        tokenizer: Any,
        reporter: Reporter,
        checkpoint_path: Path,
        fingerprint: str,
    ) -> None:
        from accelerate.utils import set_seed

        self.config, self.checkpoint_path, self.fingerprint = config, checkpoint_path, fingerprint
        self.accelerator = make_accelerator(config)  # type: ignore[arg-type] - reads the runtime fields only
        self.reporter = reporter if self.accelerator.is_main_process else NullReporter()
        processes = self.accelerator.num_processes
        if config.prompts_per_round % processes:
            raise ValueError(
                f"prompts_per_round: {config.prompts_per_round} does not split across {processes} processes"
            )
        self.local_prompts = config.prompts_per_round // processes
        set_seed(config.seed)
        self.policy, frozen, self.tokenizer = build_policy(config, policy, tokenizer, temperature=config.temperature)
        self.policy.to(self.accelerator.device)
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
        self.collate = DPOCollator(self.tokenizer.pad_token_id)
        optimizer = make_optimizer(self.policy, config)  # type: ignore[arg-type] - reads lr and weight decay
        # At most one pair per prompt: the schedule spans the steps a round of no ties takes, every round.
        total = config.rounds * config.epochs * math.ceil(self.local_prompts / config.batch_size)
        schedule = LinearSchedule(int(config.warmup_ratio * total), total)
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, schedule)
        self.model, self.optimizer = self.accelerator.prepare(self.policy, optimizer)
        self.round, self.step, self.history = 0, 0, []
        self.resumed_step = 0

    def train(self) -> int:
        """Run the remaining rounds; returns the round the run resumed from."""
        resumed_from = self._resume()
        n_params = sum(p.numel() for p in self.policy.parameters() if p.requires_grad)
        self.reporter.log(
            f"online DPO: {len(self.prompts)} prompts, {self.config.rounds} rounds of "
            f"{self.config.prompts_per_round} prompts × {self.config.samples_per_prompt} samples, "
            f"{n_params:,} trainable parameters"
        )
        while self.round < self.config.rounds:
            self.history.append(self._one_round(self.round))
            self.round += 1
            self._after_round()
        return resumed_from

    def _one_round(self, round_index: int) -> dict[str, float]:
        """Sample → rank → pair → DPO; returns the round's statistics over every process."""
        config, learning_rate = self.config, self.scheduler.get_last_lr()[0]
        indices = prompt_indices(len(self.prompts), config.prompts_per_round, config.seed, round_index)
        first = self.accelerator.process_index * self.local_prompts
        local = indices[first : first + self.local_prompts]
        completions, scores = self._sample(local, round_index * config.prompts_per_round + first)
        records = self._pairs(local, completions, scores)
        with self.policy.reference(self.frozen) as reference, self.accelerator.autocast():  # as the training forward
            rows = [record["pair"] for record in records if record["pair"] is not None]
            add_reference_logprobs(reference, rows, self.collate, config.batch_size, self.accelerator.device)
        records = gather_object(records)  # every process trains on every process's pairs, its share of batches
        pairs = [record["pair"] for record in records if record["pair"] is not None]
        losses = self._optimise(pairs, round_index) if pairs else {}
        return {
            **_round_stats(records),
            **{f"train_{name}": value for name, value in losses.items()},
            "learning_rate": learning_rate,
        }

    def _sample(self, local: list[int], first_row: int) -> tuple[list[Completion], list[float]]:
        """k answers to each local prompt from the current policy, and their scores net of the safety penalty."""
        k, device = self.config.samples_per_prompt, self.accelerator.device
        prompts = [self.prompts[i] for i in local for _ in range(k)]
        rows = [self.prompt_rows[i] for i in local for _ in range(k)]
        generators = row_generators(self.config.seed, first_row * k, len(rows), device)
        prompt_ids, prompt_mask = left_pad(rows, self.tokenizer.pad_token_id, device)
        self.model.eval()
        with self.accelerator.autocast():
            sampled = sample_responses(
                self.policy,
                prompt_ids,
                prompt_mask,
                generators,
                max_new_tokens=self.config.response_length,
                eos_id=self.tokenizer.eos_token_id,
                pad_id=self.tokenizer.pad_token_id,
            )
        self.model.train()
        completions = decode_completions(self.tokenizer, prompts, rows, sampled)
        scores, penalties = self.score(completions)
        return completions, (scores - penalties).tolist()

    def _pairs(self, local: list[int], completions: list[Completion], scores: list[float]) -> list[dict[str, Any]]:
        """Per prompt: its best-vs-worst pair (None on a tie) and what the round's statistics need."""
        k, records = self.config.samples_per_prompt, []
        for j, prompt_index in enumerate(local):
            group, answers = scores[j * k : (j + 1) * k], completions[j * k : (j + 1) * k]
            ranked = best_and_worst(group)
            pair = None
            if ranked is not None:
                pair = pair_row(
                    self.prompt_rows[prompt_index], answers[ranked[0]].response_ids, answers[ranked[1]].response_ids
                )
            records.append(
                {
                    "pair": pair,
                    "best": max(group),
                    "worst": min(group),
                    "mean": sum(group) / k,
                    "length": sum(len(a.response_ids) for a in answers) / k,
                    "ended": sum(a.ended for a in answers) / k,
                }
            )
        return records

    def _optimise(self, pairs: list[PairRow], round_index: int) -> dict[str, float]:
        """``epochs`` passes over the round's pairs, this process's share of each batch order; the means of
        the step metrics over the round, across processes."""
        config, accelerator = self.config, self.accelerator
        sampler = LengthGroupedBatchSampler(
            [row_length(row) for row in pairs],
            config.batch_size,
            seed=config.seed,
            group_by_length=config.group_by_length,
            num_replicas=accelerator.num_processes,
            rank=accelerator.process_index,
        )
        totals: dict[str, torch.Tensor] = {}
        steps = 0
        for epoch in range(config.epochs):
            for batch_indices in sampler.batches(round_index * config.epochs + epoch):
                rows = self.collate([pairs[i] for i in batch_indices])
                batch = {k: v.to(accelerator.device) for k, v in rows.items()}
                loss, metrics = dpo_step(self.model, batch, beta=config.beta, loss_type=config.loss_type)
                accelerator.backward(loss)
                if config.max_grad_norm > 0:
                    accelerator.clip_grad_norm_(self.model.parameters(), config.max_grad_norm)
                self.optimizer.step()
                self.scheduler.step()
                self.optimizer.zero_grad(set_to_none=True)
                self.step, steps = self.step + 1, steps + 1
                metrics = {name: accelerator.reduce(value.detach().float(), "mean") for name, value in metrics.items()}
                if self.step % config.log_every == 0:
                    for name, value in metrics.items():
                        self.reporter.metric(self.step, f"train_{name}", float(value))
                for name, value in metrics.items():
                    totals[name] = totals.get(name, 0) + value
        return {name: float(total) / steps for name, total in totals.items()}

    def _after_round(self) -> None:
        config, done = self.config, self.round
        self._report(self.history[-1])
        if self.accelerator.is_main_process and self.reporter.should_stop():
            self.accelerator.set_trigger()
        if self.accelerator.check_trigger():  # every process sees the stop, so all leave together
            self._save()
            raise TrainingStopped(done)
        if done < config.rounds:
            self._save()

    def _report(self, metrics: dict[str, float]) -> None:
        """The round's statistics as curves over rounds; the ``train_`` ones, already reported at every
        optimizer step, only as the round's means in the history and the card."""
        for name, value in metrics.items():
            if not name.startswith("train_"):
                self.reporter.metric(self.round, name, value)
        summary = " ".join(
            f"{name} {metrics.get(name, float('nan')):.4g}"
            for name in ("score_mean", "score_best", "pairs", "train_reward_accuracy")
        )
        self.reporter.progress(self.round / self.config.rounds, f"round {self.round}/{self.config.rounds} {summary}")

    def _save(self) -> None:
        if self.accelerator.is_main_process:
            self.reporter.flush()  # the curves up to this checkpoint first: a resume starts after them
            atomic_torch_save(
                {
                    "trainable": self.policy.trainable_state(),
                    "optimizer": self.optimizer.state_dict(),
                    "scheduler": self.scheduler.state_dict(),
                    "round": self.round,
                    "step": self.step,
                    "history": self.history,
                    "rng": capture_rng_state(),
                    "fingerprint": self.fingerprint,
                },
                self.checkpoint_path,
            )
            self.reporter.log(f"checkpoint written after round {self.round}")
        self.accelerator.wait_for_everyone()

    def _resume(self) -> int:
        """Load a matching checkpoint into the prepared objects; returns the round it was written after."""
        checkpoint = load_checkpoint(self.checkpoint_path)
        if checkpoint is None:
            return 0
        if checkpoint.get("fingerprint") != self.fingerprint:
            self.reporter.log("ignoring a checkpoint written for other prompts or settings; starting afresh")
            return 0
        self.policy.load_trainable_state(checkpoint["trainable"])
        self.optimizer.load_state_dict(checkpoint["optimizer"])
        self.scheduler.load_state_dict(checkpoint["scheduler"])
        self.round, self.step = int(checkpoint["round"]), int(checkpoint["step"])
        self.resumed_step = self.step
        self.history = list(checkpoint["history"])
        restore_rng_state(checkpoint["rng"])
        self.reporter.log(f"resumed from the checkpoint after round {self.round}/{self.config.rounds}")
        return self.round

    def finish(self, output_dir: Path, label: str, resumed_from: int) -> OnlineDPOResult:
        """Merge the adapters and save policy + tokenizer + card (main process)."""
        metrics = self.history[-1] if self.history else {}
        data = {"prompts": len(self.prompts), "pairs": int(sum(h.get("pairs", 0) for h in self.history))}
        card = {
            **build_card(
                kind="online_dpo",
                backbone=label,
                labels=[],
                config=self.config,  # type: ignore[arg-type]
                data=data,
                fingerprint=self.fingerprint,
                metrics=metrics,
                steps=self.step,
                resumed_from=self.resumed_step,
            ),
            "rounds": self.round,
            "resumed_from_round": resumed_from,
        }
        model = save_merged_policy(
            self.accelerator, self.reporter, self.policy, self.tokenizer, output_dir, self.checkpoint_path, card
        )
        return OnlineDPOResult(output_dir, metrics, self.round, resumed_from, card, model, history=self.history)


def _round_stats(records: Sequence[dict[str, Any]]) -> dict[str, float]:
    """Means over the round's prompts of their samples' scores, lengths and EOS share; pairs made and ties."""
    n = len(records)
    pairs = sum(record["pair"] is not None for record in records)
    means = {f"score_{key}": sum(r[key] for r in records) / n for key in ("mean", "best", "worst")}
    return {
        **means,
        "response_length": sum(r["length"] for r in records) / n,
        "eos_fraction": sum(r["ended"] for r in records) / n,
        "pairs": float(pairs),
        "tied_prompts": float(n - pairs),
    }
