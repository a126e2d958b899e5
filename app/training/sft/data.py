"""The plain-Python examples SFT takes, where they come from, and the safety mix.

An example is one chat conversation that ends with an assistant turn: a prompt followed by an
annotator's ideal answer or safe answer, or a line of an imported SFT JSONL file
(``{"messages": [{"role": …, "content": …}, …]}``, the format TRL's SFT trainer reads). A job
handler builds them from the database and files; nothing here knows about the ORM.

The safety share is a parameter because the source notes warn both ways: a few safe answers
teach a model to decline unsafe requests, too many teach it to decline harmless ones.
"""

from __future__ import annotations

import hashlib
import json
import random
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import IO, Literal

Message = dict[str, str]
Kind = Literal["ideal", "safe_answer"]
ROLES = ("system", "user", "assistant")
KINDS: tuple[Kind, ...] = ("ideal", "safe_answer")
MAX_JSONL_LINE = 1_000_000  # characters; a longer line is a broken file, not a conversation


@dataclass(frozen=True)
class SFTExample:
    """A conversation to imitate; the loss covers its assistant turns only.

    ``kind`` says whether it is safety data (``safe_answer``) for the mix; ``prompt_key`` groups the
    examples of one prompt so the validation split never puts a prompt on both sides; ``id`` names
    the example in the model card (e.g. ``demonstration:12``)."""

    messages: tuple[Message, ...]
    kind: Kind = "ideal"
    prompt_key: str | None = None
    id: str | None = None

    def __post_init__(self) -> None:
        validate_conversation(list(self.messages))
        if self.kind not in KINDS:
            raise ValueError(f"kind must be one of {KINDS}, got {self.kind!r}")
        if self.id is None:  # a content id, so anonymous examples still fingerprint the data exactly
            payload = json.dumps({"messages": list(self.messages), "kind": self.kind}, sort_keys=True)
            object.__setattr__(self, "id", "sha256:" + hashlib.sha256(payload.encode()).hexdigest())

    @property
    def prompt(self) -> list[Message]:
        """Everything before the last assistant turn: what ``split_by_prompt`` groups by."""
        return list(self.messages[:-1])


class BadConversation(ValueError):
    """A conversation SFT cannot use; the message says why."""


def validate_conversation(messages: list[Message]) -> None:
    """Roles known, contents non-empty strings, a system turn only first, and the last turn the
    assistant's (there must be something to imitate)."""
    if not messages:
        raise BadConversation("messages must not be empty")
    for i, message in enumerate(messages):
        if not isinstance(message, dict) or message.get("role") not in ROLES:
            raise BadConversation(f"messages[{i}].role must be one of {', '.join(ROLES)}")
        content = message.get("content")
        if not isinstance(content, str) or not content.strip():
            raise BadConversation(f"messages[{i}].content must be a non-empty string")
        if message["role"] == "system" and i != 0:
            raise BadConversation(f"messages[{i}]: a system message may only come first")
    if messages[-1]["role"] != "assistant":
        raise BadConversation("the last message must be the assistant's: it is what the model learns to say")


def demonstration_example(
    prompt: Sequence[Message], text: str, *, kind: Kind, prompt_id: int, demonstration_id: int
) -> SFTExample:
    """A prompt (ending with the user's turn) and the answer an annotator wrote for it."""
    messages = tuple({"role": m["role"], "content": m["content"]} for m in prompt)
    return SFTExample(
        messages=(*messages, {"role": "assistant", "content": text.strip()}),
        kind=kind,
        prompt_key=f"prompt:{prompt_id}",
        id=f"demonstration:{demonstration_id}",
    )


def read_sft_jsonl(stream: IO[str], *, source: str) -> Iterator[SFTExample]:
    """Examples from an SFT JSONL stream; raises ``BadConversation`` naming the first bad line.

    A line may carry ``"kind": "safe_answer"`` to count as safety data (default ``ideal``). The id is
    ``<source>:<line>`` and the prompt key a hash of the prompt, so identical prompts across files
    and demonstrations land on the same side of the split."""
    for number, line in enumerate(stream, 1):
        if not line.strip():
            continue
        try:
            if len(line) > MAX_JSONL_LINE:
                raise BadConversation(f"longer than {MAX_JSONL_LINE:,} characters")
            record = json.loads(line)
            if not isinstance(record, dict) or not isinstance(record.get("messages"), list):
                raise BadConversation('each line must be an object with a "messages" list')
            messages = [
                {"role": m.get("role"), "content": m.get("content")} if isinstance(m, dict) else m
                for m in record["messages"]
            ]
            validate_conversation(messages)
            kind = record.get("kind", "ideal")
            if kind not in KINDS:
                raise BadConversation(f'"kind" must be one of {", ".join(KINDS)}')
        except json.JSONDecodeError as exc:
            raise BadConversation(f"{source} line {number}: not valid JSON ({exc.msg})") from None
        except BadConversation as exc:
            raise BadConversation(f"{source} line {number}: {exc}") from None
        yield SFTExample(
            messages=tuple(messages), kind=kind, prompt_key=prompt_hash(messages[:-1]), id=f"{source}:{number}"
        )


def prompt_hash(prompt: Sequence[Message]) -> str:
    """A short content hash of a prompt conversation."""
    return hashlib.sha256(json.dumps(list(prompt), sort_keys=True).encode()).hexdigest()[:16]


def mix_safety(examples: Sequence[SFTExample], share: float | None, *, seed: int = 0) -> list[SFTExample]:
    """Subsample so that ``share`` of the result is safety data (``safe_answer``), keeping as many
    examples as that share allows; ``None`` keeps everything as it is.

    The scarcer side is kept whole and the other side is drawn at random (seeded) down to the ratio,
    e.g. 40 ideal + 10 safe at share 0.5 → 10 + 10; at 0.1 → 40 + 4. Share 0 drops all safety data and
    share 1 keeps only it. The order of the input is kept."""
    if share is None:
        return list(examples)
    if not 0.0 <= share <= 1.0:
        raise ValueError(f"safety share must be in [0, 1], got {share}")
    safe = [i for i, ex in enumerate(examples) if ex.kind == "safe_answer"]
    other = [i for i, ex in enumerate(examples) if ex.kind != "safe_answer"]
    n_safe, n_other = safety_counts(len(safe), len(other), share)
    rng = random.Random(seed)
    keep = set(rng.sample(safe, n_safe)) | set(rng.sample(other, n_other))
    return [ex for i, ex in enumerate(examples) if i in keep]


def safety_counts(available_safe: int, available_other: int, share: float) -> tuple[int, int]:
    """(safety, other) example counts: the largest mix at ``share`` that the data allows."""
    if share <= 0.0:
        return 0, available_other
    if share >= 1.0:
        return available_safe, 0
    total = min(available_safe / share, available_other / (1.0 - share))
    return min(available_safe, round(total * share)), min(available_other, round(total * (1.0 - share)))


def kind_counts(examples: Sequence[SFTExample]) -> dict[str, int]:
    """Examples per kind, every kind present (for the job's report)."""
    return {kind: sum(1 for ex in examples if ex.kind == kind) for kind in KINDS}
