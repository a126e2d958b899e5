"""Hyper-parameters of supervised fine-tuning (SFT) on demonstrations.

Each field carries its help text in ``metadata["help"]`` (the convention of ``config_base``, shared
with the other trainers' configs), so the job's stored parameters, a dashboard form and ``--help``
describe a field the same way. The optimisation and runtime fields have the names the shared
training loop (``reward_loop.run_loop``) reads, so SFT runs through that very loop: accelerate, the
resumable checkpoint and the reporter protocol come for free.
"""

from __future__ import annotations

from dataclasses import dataclass

from app.training.core.config import (
    LoRASettings,
    OptimizerSettings,
    RuntimeSettings,
    StoredConfig,
    config_help,
    lora_targets,
)
from app.training.core.config import help_field as _f  # short, so each field stays one readable line


@dataclass
class SFTConfig(StoredConfig, RuntimeSettings, OptimizerSettings, LoRASettings):
    """Fine-tune a causal LM on chat demonstrations, the loss on assistant tokens only."""

    base_model: str = _f(
        "",
        "Hugging Face id or local folder of the policy to fine-tune; the job fills in the "
        "chosen policy version's folder. Ignored when a model object is passed in.",
    )
    # --- LoRA ---
    lora: bool = _f(
        True,
        "Train low-rank adapters (LoRA) instead of every weight; they are merged into the "
        "weights at the end, so the saved version is a plain checkpoint.",
    )
    lora_r: int = _f(16, "Rank of each adapter.")
    lora_alpha: int = _f(32, "Adapter scale numerator: the update is (alpha / r)·B·A.")
    lora_target_modules: str = _f(
        "all-linear",
        "Modules that get adapters: 'all-linear' (peft's shorthand for "
        "every linear layer but the output head) or a comma-separated list of names.",
    )
    # --- optimisation (names the shared loop reads) ---
    learning_rate: float = _f(
        2e-4, "Peak AdamW learning rate, decayed linearly to 0 (LoRA wants ~10x full fine-tuning's)."
    )
    epochs: int = _f(3, "Passes over the training demonstrations.")
    batch_size: int = _f(8, "Conversations per optimizer step and process.")
    max_length: int = _f(
        1024,
        "Tokens per conversation; longer ones are cut at the end, and one left without an assistant token is dropped.",
    )
    seed: int = _f(0, "Seeds the adapters' init, the data order, the validation split and the safety mix.")
    warmup_ratio: float = _f(0.03, "Fraction of the steps over which the learning rate ramps up from 0.")
    validation_fraction: float = _f(
        0.1, "Share of prompts (not conversations) held out to measure the validation loss before and after training."
    )
    gradient_checkpointing: bool = _f(False, "Trade compute for memory; only worth it for large policies.")
    group_by_length: bool = _f(True, "Batch conversations of similar length together so less padding is computed.")
    eval_batch_size: int = _f(16, "Conversations per forward pass during validation.")
    checkpoint_every: int = _f(100, "Write a resumable checkpoint every this many steps; 0 only on stop.")

    def validate(self) -> None:
        """Refuse settings that cannot train, naming the field, before any model is loaded."""
        if self.epochs < 1 or self.batch_size < 1 or self.eval_batch_size < 1:
            raise ValueError("epochs, batch_size and eval_batch_size must be ≥ 1")
        if self.max_length < 16:
            raise ValueError("max_length must be ≥ 16")
        if self.learning_rate <= 0 or not 0.0 <= self.warmup_ratio < 1.0:
            raise ValueError("learning_rate must be > 0 and warmup_ratio in [0, 1)")
        if not 0.0 <= self.validation_fraction < 1.0:
            raise ValueError("validation_fraction must be in [0, 1)")
        if self.lora_r < 1 or self.lora_alpha < 1 or not 0.0 <= self.lora_dropout < 1.0:
            raise ValueError("lora_r and lora_alpha must be ≥ 1 and lora_dropout in [0, 1)")
        if not self.lora_target_modules.strip():
            raise ValueError("lora_target_modules must name some modules (or 'all-linear')")
        if self.mixed_precision not in ("no", "bf16", "fp16"):
            raise ValueError(f"unknown mixed_precision {self.mixed_precision!r}")

    def target_modules(self) -> str | list[str]:
        """peft's ``target_modules``: the shorthand as is, else the list of names (``validate`` refuses '',
        the one value that would mean peft's default)."""
        return lora_targets(self.lora_target_modules) or []


def sft_config_help() -> dict[str, str]:
    """Field name → help text, for forms and ``--help``."""
    return config_help(SFTConfig)
