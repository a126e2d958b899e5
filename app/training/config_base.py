"""What every trainer's config dataclass shares: documented fields, a JSON round trip, field-named errors.

The PPO, SFT, reward and classifier configs each declare their own fields; this module is the one
place that says how a field carries its help text (``metadata["help"]``, read by forms and ``--help``
through :func:`config_help`), how a config becomes a job's stored parameters and back
(:class:`StoredConfig`), and how validation names the offending field (:func:`require`).

    @dataclass
    class MyConfig(StoredConfig):
        steps: int = help_field(10, "Optimizer steps.")

        def validate(self) -> None:
            require("steps", self.steps >= 1, "must be ≥ 1")
"""

from __future__ import annotations

from dataclasses import asdict, field, fields
from typing import Any, Literal, Self

MixedPrecision = Literal["no", "bf16", "fp16"]  # accelerate's autocast modes, one field in every config


def help_field(default: Any, help: str) -> Any:  # noqa: A002 - the name the metadata convention uses
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
