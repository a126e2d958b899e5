"""The one interface every generation backend speaks, and the values that cross it.

Callers (the pair pool, PPO rollouts, the playground) hold a ``GenerationBackend`` and never care
whether it is a model in this process or an OpenAI-compatible server elsewhere; a policy
version's config picks which (see ``app.generation.factory``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, Protocol, runtime_checkable

from app.text import storable

# One chat conversation: [{"role": "system" | "user" | "assistant", "content": "..."}, ...]
Messages = list[dict[str, str]]

# "stop": the model ended its turn (EOS); "length": it hit max_new_tokens first.
FinishReason = Literal["stop", "length"]


class GenerationError(RuntimeError):
    """A backend could not produce the requested generations."""


class ServingRefused(GenerationError):
    """The serving side refused the call for a reason retrying cannot fix (a 4xx, a server that serves another
    model): a job should fail with this message instead of being retried."""


@dataclass(frozen=True)
class SamplingParams:
    """How to sample, set per call so one warm backend serves greedy evaluation and sampled
    pair generation alike."""

    temperature: float = 1.0  # 0 means greedy decoding (top_p and seed are then irrelevant)
    top_p: float = 1.0  # nucleus sampling mass; 1.0 keeps the whole distribution
    max_new_tokens: int = 128  # hard cap on generated tokens per response, EOS included
    seed: int | None = None  # same seed + same call gives the same texts; None: fresh randomness
    n: int = 1  # responses per prompt; a preference pair needs 2

    def __post_init__(self) -> None:
        if self.temperature < 0:
            raise ValueError(f"temperature must be >= 0, got {self.temperature}")
        if not 0 < self.top_p <= 1:
            raise ValueError(f"top_p must be in (0, 1], got {self.top_p}")
        if self.max_new_tokens < 1:
            raise ValueError(f"max_new_tokens must be >= 1, got {self.max_new_tokens}")
        if self.n < 1:
            raise ValueError(f"n must be >= 1, got {self.n}")

    @property
    def greedy(self) -> bool:
        return self.temperature == 0


@dataclass(frozen=True)
class Generation:
    """One response: its text (special tokens removed), how many tokens it took, why it ended, and the model
    that wrote it as the serving side named it (a server's reply says; None in process, where the loaded
    folder is the model), so a stored response records what produced it rather than what was asked for."""

    text: str
    token_count: int
    finish_reason: FinishReason
    model: str | None = None

    def __post_init__(self) -> None:
        # Model output is untrusted: a sampled byte token can decode to NUL, which PostgreSQL refuses to
        # store, and a remote server's JSON can carry a lone surrogate. Both become U+FFFD here, the one
        # place every backend's text passes, so a pair or a chat turn is never lost to one odd token.
        object.__setattr__(self, "text", storable(self.text))

    def record(self) -> dict[str, str]:
        """What a stored response keeps of how it ended and, when a server said, which model wrote it."""
        return {"finish_reason": self.finish_reason, **({"served_model": self.model} if self.model else {})}


@runtime_checkable
class GenerationBackend(Protocol):
    """Generates chat responses. ``generate`` returns ``len(prompts) * params.n`` generations,
    prompt-major: the n responses to prompt 0, then the n responses to prompt 1, and so on."""

    def generate(self, prompts: list[Messages], params: SamplingParams) -> list[Generation]: ...

    def close(self) -> None:
        """Release what the backend holds (HTTP connections, model memory)."""
