"""Hyper-parameters of direct preference optimisation, offline (judged pairs) and online (sampled, ranked).

Each field carries its help text in ``metadata["help"]`` (``help_field``), so the job's parameters, the
dashboard form and the card describe it alike. The optimisation and runtime fields have the names the
shared loop (``app.training.core.loop.run_loop``) reads, so offline DPO runs through that loop.

The defaults are general rather than tuned to one preference (β 0.1, LoRA r 16 at a learning rate of
5e-4). Online DPO's (8 rounds × 16 prompts × 8 samples of 48 tokens, 2 epochs per round) were set by
``bench/closed_loop.py``: against PPO's defaults it lifted the ``list`` rule, a trait the policy rarely
shows, from a 50.8 % to a 75.0 % win rate; the rule-suite table is in ``app/finetune/dpo/job.py``.

    config = DPOConfig(policy="/models/policy-3", loss_type="ipo", beta=0.5)
    OnlineDPOConfig(policy="/models/policy-3", rounds=8, samples_per_prompt=6)
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from app.training.core.config import OptimizerSettings, PolicySettings, RuntimeSettings, StoredConfig, require
from app.training.core.config import help_field as _f  # short, so each field stays one readable line

LossType = Literal["sigmoid", "ipo"]
LOSS_TYPES: tuple[LossType, ...] = ("sigmoid", "ipo")


@dataclass
class DPOBaseConfig(StoredConfig, RuntimeSettings, OptimizerSettings, PolicySettings):
    """What offline and online DPO share: the policy and its adapters, the loss, the optimisation."""

    # --- models (the policy itself and pad_token: PolicySettings)
    use_lora: bool = _f(
        True,
        "Train LoRA adapters; the reference is the same weights with the adapters disabled, "
        "so no second copy exists. False fine-tunes every weight against a frozen copy.",
    )
    lora_dropout: float = _f(0.0, "Dropout on the LoRA input. Keep 0: dropout makes log π noisy against π_ref.")
    # --- loss
    loss_type: LossType = _f(
        "sigmoid",
        "'sigmoid': −log σ(β·(Δ_θ − Δ_ref)), DPO's Bradley–Terry likelihood; 'ipo': "
        "(Δ_θ − Δ_ref − 1/(2β))², which stops pushing once the gap reaches its target. "
        "Δ = log π(chosen) − log π(rejected), summed over response tokens.",
    )
    beta: float = _f(
        0.1,
        "β: the implicit reward is β·(log π − log π_ref). Larger keeps the policy nearer the "
        "reference (sigmoid); for IPO it sets the target gap 1/(2β).",
    )
    max_prompt_length: int = _f(256, "Prompt tokens kept (from the end: the answer follows it).")
    # --- optimisation (names the shared loop reads)
    learning_rate: float = _f(
        5e-4, "Peak AdamW learning rate, decayed linearly to 0 (LoRA wants ~10× full fine-tuning's, ~5e-7 to 5e-6)."
    )
    epochs: int = _f(1, "Passes over the pairs (online: over each round's pairs).")
    batch_size: int = _f(8, "Pairs per optimizer step and process.")
    warmup_ratio: float = _f(0.0, "Fraction of the steps over which the learning rate ramps up from 0.")
    group_by_length: bool = _f(True, "Batch pairs of similar length together so less padding is computed.")
    # --- runtime
    seed: int = _f(0, "Seeds the adapters' init, the data order, the validation split and (online) the sampling.")
    log_every: int = _f(1, "Report the training metrics (averaged over the window) every this many steps.")

    def validate(self) -> None:
        """Raise ``ValueError("<field>: <why>")`` for the first setting that cannot train."""
        for name in ("lora_r", "lora_alpha", "max_prompt_length", "epochs", "batch_size", "log_every"):
            require(name, getattr(self, name) >= 1, "must be ≥ 1")
        for name in ("beta", "learning_rate"):
            require(name, getattr(self, name) > 0, "must be > 0")
        for name in ("weight_decay", "max_grad_norm", "num_threads"):
            require(name, getattr(self, name) >= 0, "must be ≥ 0")
        require("lora_dropout", 0.0 <= self.lora_dropout < 1.0, "must be in [0, 1)")
        require("warmup_ratio", 0.0 <= self.warmup_ratio < 1.0, "must be in [0, 1)")
        require("loss_type", self.loss_type in LOSS_TYPES, "must be sigmoid or ipo")
        require("mixed_precision", self.mixed_precision in ("no", "bf16", "fp16"), "must be no, bf16 or fp16")
        require("pad_token", bool(self.pad_token), "must not be empty")


@dataclass
class DPOConfig(DPOBaseConfig):
    """Offline DPO: the policy learns straight from judged (prompt, chosen, rejected) pairs."""

    strength_margin: float = _f(
        0.0,
        "Margin of the strongest preference (strength 3), in implicit-reward units: "
        "a pair of strength s must win by m = margin·(s − 1)/2 (sigmoid: β·(Δ_θ − Δ_ref) − m; "
        "IPO: target gap (½ + m)/β). 0 treats every strength alike.",
    )
    max_response_length: int = _f(256, "Response tokens kept (from the start; EOS counts as one).")
    validation_fraction: float = _f(
        0.1,
        "Share of prompts (not pairs) held out to measure the reward accuracy "
        "and margin on pairs the policy never trained on.",
    )
    eval_batch_size: int = _f(16, "Pairs per forward pass for the reference log-probs and the validation.")
    checkpoint_every: int = _f(50, "Write a resumable checkpoint every this many steps; 0 only on stop.")

    def validate(self) -> None:
        super().validate()
        require("strength_margin", self.strength_margin >= 0, "must be ≥ 0")
        for name in ("max_response_length", "eval_batch_size"):
            require(name, getattr(self, name) >= 1, "must be ≥ 1")
        require("checkpoint_every", self.checkpoint_every >= 0, "must be ≥ 0")
        require("validation_fraction", 0.0 <= self.validation_fraction < 1.0, "must be in [0, 1)")


@dataclass
class OnlineDPOConfig(DPOBaseConfig):
    """Online (iterative) DPO: each round samples answers from the current policy, ranks them with a reward
    model and trains on best-vs-worst pairs; the reference stays the starting policy throughout."""

    rounds: int = _f(8, "Rounds of sample → rank → train; a resumable checkpoint is written after each.")
    prompts_per_round: int = _f(16, "Training prompts per round, across all processes (a fresh shuffle per pass).")
    samples_per_prompt: int = _f(
        8,
        "Answers sampled per prompt (k ≥ 4); the best and the worst by score make the "
        "pair. A prompt whose best and worst scores tie gives none. More samples find a trait "
        "the policy rarely shows more often (1 − (1 − p)^k of the prompts).",
    )
    max_samples_per_prompt: int = _f(
        0,
        "0: every round samples samples_per_prompt answers per prompt. Above it: while a round makes pairs of "
        "fewer than a quarter of its prompts, the next samples twice as many, up to this many, and half as many "
        "again once half of them make pairs. It finds a trait the policy shows in one answer of a hundred in 28 % "
        "of the prompts at 32 instead of 8 % at 8, but only a reward model that knows the trait turns those into "
        "pairs: under a reward trained on 9 decided verdicts (bench/closed_loop.py --rule courteous) 32 samples "
        "took the run 718 s against 406 s at a fixed 8 and trained no better policy.",
    )
    min_confidence: float = _f(
        0.7,
        "A prompt's best-vs-worst pair trains only when the reward model gives the best at least this "
        "probability of being preferred, σ(score_best − score_worst) as under Bradley–Terry. Below it the "
        "answers differ in ways the reward cannot tell apart (none of them shows what the judgements "
        "reward, say) and the pair would teach the policy noise. 0.5 keeps every pair that does not tie. "
        "A reward model's scores are put on the Bradley–Terry log-odds scale first: the pairwise target's "
        "already are; the 'elo' target's, each answer's chance of beating its prompt's average answer, "
        "become their log-odds. A reward function given in code is read as log-odds.",
    )
    epochs: int = _f(2, "Passes over each round's pairs.")
    response_length: int = _f(48, "Most tokens sampled per answer; an answer stops at EOS.")
    temperature: float = _f(0.7, "Sampling temperature of the answers (the loss reads the untempered policy).")
    safety_weight: float = _f(1.0, "With a classifier: score = reward − safety_weight × P(unsafe).")
    safety_head: str = _f("safety", "Classifier head whose label 1 means safe; P(unsafe) = 1 − P(head = 1).")
    max_kl_per_token: float = _f(
        0.5,
        "KL budget, nats per response token to the starting policy, as each round's samples measure it "
        "(and one more sampling pass after the last round): the first round that finds the policy over it "
        "ends the run and keeps the policy of the round before. 0 turns the check off.",
    )

    @property
    def widest_samples_per_prompt(self) -> int:
        """The most answers a round may sample per prompt."""
        return max(self.max_samples_per_prompt, self.samples_per_prompt)

    def validate(self) -> None:
        super().validate()
        require("max_kl_per_token", self.max_kl_per_token >= 0, "must be ≥ 0")
        for name in ("rounds", "prompts_per_round", "response_length"):
            require(name, getattr(self, name) >= 1, "must be ≥ 1")
        require("samples_per_prompt", self.samples_per_prompt >= 4, "must be ≥ 4")
        require(
            "max_samples_per_prompt",
            self.max_samples_per_prompt == 0 or self.max_samples_per_prompt >= self.samples_per_prompt,
            f"must be 0 or ≥ samples_per_prompt ({self.samples_per_prompt})",
        )
        require("min_confidence", 0.5 <= self.min_confidence < 1, "must be in [0.5, 1)")
        require("temperature", self.temperature > 0, "must be > 0")
        require("safety_weight", self.safety_weight >= 0, "must be ≥ 0")
        require("safety_head", bool(self.safety_head), "must not be empty")
