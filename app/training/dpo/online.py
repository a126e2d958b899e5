"""Online (iterative) DPO: the policy makes its own pairs, a reward model ranks them, DPO learns from them.

Each round draws ``prompts_per_round`` prompts (a fresh shuffle per pass, a pure function of (seed, round)),
samples ``samples_per_prompt`` answers to each from the *current* policy with PPO's batched KV-cache
sampler (one random stream per answer, keyed by its global row, so a resumed round samples the same
answers), scores them with the reward model (minus ``safety_weight × P(unsafe)`` with a classifier, as in
PPO) and pairs the best against the worst; a prompt whose best and worst scores tie, or lie so close that
the reward gives the best less than ``min_confidence`` chance of being preferred, says nothing about which
is better and gives no pair. Then ``epochs`` passes of the DPO loss over the round's pairs. The
reference stays the starting policy all along (LoRA off), so the KL the loss holds the policy to is to
where it began, not to the last round. A resumable checkpoint is written after every round; at the end
the adapters are merged and the policy saved atomically, like the offline trainer's.

    result = train_online_dpo(prompts, OnlineDPOConfig(policy="/models/policy-3"), "/models/policy-4",
                              reward=RewardScorer("/models/reward-2"))
    result.history[-1]  # {"score_mean": 1.2, "score_best": 2.0, "pairs": 15, "tied_prompts": 1, ...}
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Unpack, cast

import torch
from accelerate.utils import gather_object
from torch import nn

from app.training.core.batches import LengthGroupedBatchSampler
from app.training.core.card import build_card
from app.training.core.loop import LinearSchedule, TrainingStopped
from app.training.dpo.config import OnlineDPOConfig
from app.training.dpo.data import (
    PairCollate,
    PairRow,
    add_reference_logprobs,
    pair_collator,
    pair_row,
    sequence_logprobs,
)
from app.training.dpo.policy import DPOPolicy, build_policy
from app.training.dpo.step import dpo_step
from app.training.ppo.rollout import Completion, PromptInput, decode_completions, sample_batch
from app.training.ppo.trainer import (
    Iterations,
    PromptDraw,
    SamplingOptions,
    SamplingResult,
    SamplingRun,
    split_across,
    train_sampling,
)

__all__ = ["OnlineDPOResult", "TrainingStopped", "best_and_worst", "next_samples_per_prompt", "train_online_dpo"]


@dataclass
class OnlineDPOResult(SamplingResult):
    """``steps`` counts rounds; ``metrics`` are the last round's; plus every round's, which the card does not keep."""

    CARD_UNIT: ClassVar[str] = "round"  # the card says "rounds" and "resumed_from_round"


def train_online_dpo(
    prompts: Sequence[PromptInput], config: OnlineDPOConfig, output_dir: Path | str, **options: Unpack[SamplingOptions]
) -> OnlineDPOResult:
    """Run the rounds and save the merged policy to ``output_dir`` (which must not exist yet, unless it holds
    this very run).

    ``prompts``: strings, chat message lists or token-id lists. ``reward``: a callable on PPO's
    :class:`~app.training.ppo.rollout.Completion` lists, or a scorer with ``score([(prompt, response)])``.
    ``classifier``: optional ClassifierScorer-like (``labels``, ``probabilities(pairs)``) for the safety
    penalty. Raises :class:`TrainingStopped` after a checkpoint when the reporter asked to stop."""
    return cast(OnlineDPOResult, train_sampling(_OnlineRun, prompts, config, output_dir, **options))


def best_and_worst(
    scores: Sequence[float],
    min_confidence: float = 0.5,
    log_odds: Callable[[Sequence[float]], Sequence[float]] | None = None,
) -> tuple[int, int] | None:
    """Indices of the highest and the lowest score (the first of equals), or None when they tie or the
    reward's Bradley–Terry probability that the best wins, σ(best − worst), is under ``min_confidence``.
    ``log_odds`` puts a reward on another scale (an Elo target's win probabilities) on that one first."""
    best = max(range(len(scores)), key=lambda i: scores[i])
    worst = min(range(len(scores)), key=lambda i: scores[i])
    high, low = log_odds([scores[best], scores[worst]]) if log_odds is not None else (scores[best], scores[worst])
    gap = high - low
    return None if gap <= 0 or 1 / (1 + math.exp(-gap)) < min_confidence else (best, worst)


WIDEN_BELOW = 0.25  # share of a round's prompts that made a pair, under which the next round samples twice k
NARROW_FROM = 0.5  # and from which half k (never under samples_per_prompt)


def next_samples_per_prompt(k: int, paired_share: float, config: OnlineDPOConfig) -> int:
    """The next round's k after a round in which ``paired_share`` of the prompts made a pair.

    A prompt makes a pair when one of its k answers shows what the reward favours and another does not
    (1 − (1 − p)^k of the prompts for a trait one answer in 1/p shows). Where that is rare the rounds train
    on a handful of pairs and the policy barely moves, so k doubles; once the policy shows the trait often
    enough for half the prompts to pair, the extra samples find nothing new and k halves back."""
    if paired_share < WIDEN_BELOW:
        return min(2 * k, config.widest_samples_per_prompt)
    if paired_share >= NARROW_FROM:
        return max(k // 2, config.samples_per_prompt)
    return k


class _OnlineRun(SamplingRun):
    """One online DPO run: PPO's sampling run whose iteration is a round of sample → rank → pair → DPO."""

    LABEL: ClassVar[str] = "online DPO"
    RESULT: ClassVar[type[SamplingResult]] = OnlineDPOResult
    CHECKPOINT_AT: ClassVar[str] = "after"  # a round's checkpoint is written once it is over
    SUMMARY: ClassVar[tuple[str, ...]] = ("score_mean", "score_best", "pairs", "train_reward_accuracy")
    config: OnlineDPOConfig
    policy: DPOPolicy

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # σ of a score gap is a probability only on the Bradley–Terry log-odds scale; a RewardScorer says how
        # to put its scores there (an Elo target's are win probabilities), a reward function is taken as is.
        self.log_odds = getattr(kwargs.get("reward"), "log_odds", None)
        self.collate: PairCollate | None = None  # chosen on the first round's pairs (``pair_collator``)
        self.step = self.resumed_step = 0  # optimizer steps, over all rounds
        # The KL budget: the trainable state before the last round's update and the KL its samples measured,
        # to go back to when the next measurement finds the policy over budget; and why the run ended early.
        self.kept: dict[str, torch.Tensor] | None = None
        self.kept_kl = 0.0
        self.budget_stop: dict[str, float] = {}
        self.k = self.config.samples_per_prompt  # this round's samples per prompt (``next_samples_per_prompt``)

    @classmethod
    def iterations(cls, config: OnlineDPOConfig) -> Iterations:
        return Iterations(config.rounds, config.prompts_per_round)  # reported and checkpointed after each

    def local_batch_size(self, processes: int) -> int:
        return split_across("prompts_per_round", self.config.prompts_per_round, processes)

    def load_models(
        self, policy: nn.Module | None = None, tokenizer: Any = None
    ) -> tuple[nn.Module, nn.Module | None, Any]:
        config = self.config
        model, frozen, tokenizer = build_policy(config, policy, tokenizer, temperature=config.temperature)
        return model.to(self.accelerator.device), frozen, tokenizer

    def schedule(self) -> LinearSchedule:
        """At most one pair per prompt: the schedule spans the steps a round of no ties takes, every round."""
        config = self.config
        total = config.rounds * config.epochs * math.ceil(self.local_batch / config.batch_size)
        return LinearSchedule(int(config.warmup_ratio * total), total)

    @property
    def batch_description(self) -> str:
        config = self.config
        widest, k = config.widest_samples_per_prompt, config.samples_per_prompt
        wider = f" (up to {widest} while few make pairs)" if widest > k else ""
        return f"{config.prompts_per_round} prompts × {k}{wider} samples"

    @property
    def saved_after(self) -> str:
        return f"{self.step} steps"

    def extra_state(self) -> dict[str, Any]:
        return {
            "step": self.step,
            "kept": self.kept,
            "kept_kl": self.kept_kl,
            "budget_stop": self.budget_stop,
            "samples_per_prompt": self.k,
        }

    def load_extra_state(self, checkpoint: dict[str, Any]) -> None:
        self.step = self.resumed_step = int(checkpoint["step"])
        self.kept, self.kept_kl = checkpoint.get("kept"), float(checkpoint.get("kept_kl", 0.0))
        self.budget_stop = dict(checkpoint.get("budget_stop") or {})
        self.k = int(checkpoint.get("samples_per_prompt", self.config.samples_per_prompt))

    def ended(self) -> bool:
        return bool(self.budget_stop)

    @property
    def rounds_kept(self) -> int:
        """Rounds whose update the saved policy holds: the one before the measurement over budget undid its own."""
        return int(self.budget_stop["round"]) - 1 if self.budget_stop else self.done

    def train(self) -> int:
        """The rounds, then (with a KL budget) one more sampling pass: the last round's update is measured
        like every other before its policy is saved."""
        resumed_from = super().train()
        if self.config.max_kl_per_token and not self.ended():
            stats = self._measure(self.plan.total)[1]
            within = self._within_budget(stats, self.plan.total)
            measured = stats.get("kl_per_token")
            if measured is not None:  # absent when every prompt tied: nothing was scored
                self.reporter.metric(self.done + 1, "kl_per_token", measured)
            kept = measured if within and measured is not None else self.kept_kl
            self.history[-1]["policy_kl_per_token"] = kept
            self.reporter.metric(self.done, "policy_kl_per_token", kept)
        return resumed_from

    def _iterate(self, round_index: int) -> dict[str, float]:
        """Sample → rank → pair → DPO; returns the round's statistics over every process."""
        config, learning_rate, k = self.config, self.scheduler.get_last_lr()[0], self.k
        records, stats = self._measure(round_index)
        stats["samples_per_prompt"] = float(k)
        self.k = next_samples_per_prompt(k, stats["pairs"] / len(records), config)
        if not self._within_budget(stats, round_index):
            return {**stats, "policy_kl_per_token": self.kept_kl, "learning_rate": learning_rate}
        if config.max_kl_per_token:
            self.kept, self.kept_kl = self.policy.trainable_state(), stats.get("kl_per_token", 0.0)
        pairs = [record["pair"] for record in records if record["pair"] is not None]
        losses = self._optimise(pairs, round_index) if pairs else {}
        return {**stats, **{f"train_{name}": value for name, value in losses.items()}, "learning_rate": learning_rate}

    def _measure(self, round_index: int) -> tuple[list[dict[str, Any]], dict[str, float]]:
        """Sample → rank → pair, with the reference's log-probs of the pairs and the KL of the current policy;
        every process's records (each trains on all of them, its share of the batches) and their statistics."""
        config = self.config
        draw = self.draw(round_index, self.k, row_stride=config.widest_samples_per_prompt)
        completions, scores = self._sample(draw)
        records = self._pairs(draw.indices, completions, scores)
        with self.policy.reference(self.frozen) as reference, self.accelerator.autocast():  # as the training forward
            rows = [record["pair"] for record in records if record["pair"] is not None]
            if self.collate is None and rows:
                self.collate = pair_collator(reference, rows, self.tokenizer.pad_token_id)
            add_reference_logprobs(reference, rows, self.collate, config.batch_size, self.accelerator.device)
        self._add_sampled_kl(records)
        records = gather_object(records)
        return records, _round_stats(records)

    def _within_budget(self, stats: dict[str, float], round_index: int) -> bool:
        """False (after going back to the kept policy) when this measurement finds the policy over the budget.

        The first round samples the starting policy itself (KL 0), so there is always a policy to keep."""
        budget, kl = self.config.max_kl_per_token, stats.get("kl_per_token")
        if not budget or kl is None or kl <= budget or self.kept is None:
            return True
        self.policy.load_trainable_state(self.kept)
        self.budget_stop = {"round": float(round_index), "kl_per_token": kl, "kept_kl_per_token": self.kept_kl}
        self.reporter.log(
            f"KL budget: after {round_index} rounds the policy is {kl:.3f} nats per token from the starting one "
            f"(budget {budget:g}); keeping the policy after {round_index - 1} rounds ({self.kept_kl:.3f}) and stopping"
        )
        return False

    def _sample(self, draw: PromptDraw) -> tuple[list[Completion], list[float]]:
        """k answers to each local prompt from the current policy, and their scores net of the safety penalty."""
        self.model.eval()
        with self.accelerator.autocast():
            _, _, sampled = sample_batch(
                self.policy, self.tokenizer, draw.rows, draw.generators, self.config.response_length
            )
        self.model.train()
        completions = decode_completions(self.tokenizer, draw.prompts, draw.rows, sampled)
        scores, penalties = self.score(completions)
        return completions, (scores - penalties).tolist()

    def _pairs(self, local: list[int], completions: list[Completion], scores: list[float]) -> list[dict[str, Any]]:
        """Per prompt: its best-vs-worst pair (None on a tie) and what the round's statistics need."""
        k, records = self.k, []
        for j, prompt_index in enumerate(local):
            group, answers = scores[j * k : (j + 1) * k], completions[j * k : (j + 1) * k]
            ranked = best_and_worst(group, self.config.min_confidence, self.log_odds)
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

    @torch.no_grad()
    def _add_sampled_kl(self, records: list[dict[str, Any]]) -> None:
        """Each paired record's Σ (log π − log π_ref) over both answers' tokens, and their token count.

        The answers were sampled from the current policy, so the mean of log π − log π_ref over their
        tokens estimates the KL per token to the starting policy (k1, as PPO reports it), before this
        round's update; only the paired (best and worst) answers are scored, at no extra reference cost."""
        paired = [record for record in records if record["pair"] is not None]
        size, device = self.config.batch_size, self.accelerator.device
        self.model.eval()
        with self.accelerator.autocast():
            for start in range(0, len(paired), size):
                chunk = paired[start : start + size]
                batch = {k: v.to(device) for k, v in self.collate([r["pair"] for r in chunk]).items()}
                chosen, rejected = sequence_logprobs(self.model, batch).float().cpu().split(len(chunk))
                tokens = batch["mask"].sum(-1).float().cpu().split(len(chunk))
                for i, record in enumerate(chunk):
                    pair = record["pair"]
                    record["kl"] = float(chosen[i] - pair["ref_chosen"] + rejected[i] - pair["ref_rejected"])
                    record["kl_tokens"] = float(tokens[0][i] + tokens[1][i])
        self.model.train()

    def _optimise(self, pairs: list[PairRow], round_index: int) -> dict[str, float]:
        """``epochs`` passes over the round's pairs, this process's share of each batch order; the means of
        the step metrics over the round, across processes."""
        config, accelerator = self.config, self.accelerator
        sampler = LengthGroupedBatchSampler(
            [self.collate.length(row) for row in pairs],
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

    def card(self, metrics: dict[str, float], resumed_from: int) -> dict[str, Any]:
        data = {"prompts": len(self.prompts), "pairs": int(sum(h.get("pairs", 0) for h in self.history))}
        return {
            **build_card(
                kind="online_dpo",
                backbone=self.target.label,
                labels=[],
                config=self.config,
                data=data,
                fingerprint=self.target.fingerprint,
                metrics=metrics,
                steps=self.step,
                resumed_from=self.resumed_step,
            ),
            "rounds": self.rounds_kept,
            "resumed_from_round": resumed_from,
            "kl_budget": {"max_kl_per_token": self.config.max_kl_per_token, **self.budget_stop},
        }


def _round_stats(records: Sequence[dict[str, Any]]) -> dict[str, float]:
    """Means over the round's prompts of their samples' scores, lengths and EOS share; pairs made and the
    prompts that gave none (``tied_prompts``: tied, or too close to call); the KL per token to the starting
    policy over the paired answers (absent in a round without pairs)."""
    n = len(records)
    pairs = sum(record["pair"] is not None for record in records)
    means = {f"score_{key}": sum(r[key] for r in records) / n for key in ("mean", "best", "worst")}
    kl_tokens = sum(r.get("kl_tokens", 0.0) for r in records)
    kl = {"kl_per_token": sum(r.get("kl", 0.0) for r in records) / kl_tokens} if kl_tokens else {}
    return {
        **means,
        **kl,
        "response_length": sum(r["length"] for r in records) / n,
        "eos_fraction": sum(r["ended"] for r in records) / n,
        "pairs": float(pairs),
        "tied_prompts": float(n - pairs),
    }
