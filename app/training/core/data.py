"""The plain-Python examples the trainers take, and the train/validation split by prompt.

A job handler builds these from the database; a notebook or a script builds them by hand. Nothing
here knows about the ORM.
"""

from __future__ import annotations

import hashlib
import json
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Protocol, TypeVar

Message = dict[str, str]  # {"role": ..., "content": ...}
Prompt = str | Sequence[Message]


@dataclass(frozen=True)
class PreferenceExample:
    """One judged pair: ``chosen`` was preferred to ``rejected`` as an answer to ``prompt``.

    ``strength`` is the annotator's 1–3 ("slightly" … "much" better) and sets the margin; ``prompt_key``
    groups examples of one prompt for the split (default: a hash of the prompt); ``id`` (e.g. the
    judgement id) names the example in the model card's data snapshot. ``tie``: the annotator found the
    two equally good (``chosen`` and ``rejected`` are then just the pair's two answers); a reward model
    learns from it that whatever tells them apart does not matter.
    """

    prompt: Prompt
    chosen: str
    rejected: str
    strength: int = 1
    prompt_key: str | None = None
    id: str | int | None = None
    tie: bool = False

    def __post_init__(self) -> None:
        if not 1 <= self.strength <= 3:
            raise ValueError(f"strength must be 1–3, got {self.strength}")


@dataclass(frozen=True)
class LabelledResponse:
    """A response with binary labels per classifier head (e.g. quality, safety).

    A label is 0 or 1, a fraction when several annotators disagree (their mean), or None when this
    response was not labelled for that head, in which case the head ignores it.
    """

    prompt: Prompt
    response: str
    labels: dict[str, float | None]
    prompt_key: str | None = None
    id: str | int | None = None


class _Keyed(Protocol):
    prompt: Prompt
    prompt_key: str | None
    id: str | int | None


K = TypeVar("K", bound=_Keyed)


def prompt_key_of(example: _Keyed) -> str:
    """The example's prompt group: its explicit key, else a hash of the prompt's text."""
    if example.prompt_key is not None:
        return str(example.prompt_key)
    text = example.prompt if isinstance(example.prompt, str) else json.dumps(list(example.prompt), sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _unit_hash(key: str, seed: int) -> float:
    """A stable pseudo-random number in [0, 1) for a prompt key: the same prompt stays on the same side
    of the split when the data set grows, so validation never leaks into a later training run."""
    digest = hashlib.sha256(f"{seed}:{key}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def split_by_prompt(examples: Sequence[K], fraction: float, seed: int = 0) -> tuple[list[K], list[K]]:
    """Split into (train, validation) so that no prompt appears on both sides.

    Each prompt goes to validation when its hash falls under ``fraction``. With a non-zero fraction and
    at least two prompts, validation gets at least one prompt and training keeps at least one.
    """
    groups: dict[str, list[K]] = defaultdict(list)
    for example in examples:
        groups[prompt_key_of(example)].append(example)
    ranked = sorted(groups, key=lambda key: _unit_hash(key, seed))
    held = {key for key in ranked if _unit_hash(key, seed) < fraction}
    if fraction > 0 and len(ranked) >= 2:
        if not held:
            held = {ranked[0]}
        if len(held) == len(ranked):
            held.discard(ranked[-1])
    train = [ex for ex in examples if prompt_key_of(ex) not in held]
    validation = [ex for ex in examples if prompt_key_of(ex) in held]
    return train, validation


def example_id(example: _Keyed) -> str:
    """The example's own id, else a content hash, so anonymous examples still fingerprint the data."""
    if example.id is not None:
        return str(example.id)
    payload = json.dumps(_content(example), sort_keys=True, default=str)
    return "sha256:" + hashlib.sha256(payload.encode()).hexdigest()


def _content(example: _Keyed) -> dict[str, object]:
    prompt = example.prompt if isinstance(example.prompt, str) else list(example.prompt)
    body = {
        name: getattr(example, name)
        for name in ("chosen", "rejected", "strength", "response", "labels")
        if hasattr(example, name)
    }
    if getattr(example, "tie", False):  # only when set, so a decided pair's content hash stays what it was
        body["tie"] = True
    return {"prompt": prompt, **body}


def ids_fingerprint(examples: Iterable[_Keyed]) -> str:
    """sha256 over the sorted example ids: the data snapshot a model card records, independent of order."""
    digest = hashlib.sha256()
    for identifier in sorted(example_id(example) for example in examples):
        digest.update(identifier.encode())
        digest.update(b"\n")
    return digest.hexdigest()
