"""How a (prompt, response) becomes token ids, identically at training and at scoring time.

Two layouts, chosen by the backbone:

- encoder (MiniLM, BERT): the tokenizer's sentence-pair form ``[CLS] prompt [SEP] response [SEP]``,
  with segment ids, truncated longest-first so a long prompt gives way before the response;
- decoder (causal LM): the prompt as the policy saw it (its chat template when it has one), the
  response, then EOS, so last-token pooling reads a state that has seen the whole answer; truncated
  from the left, because the end of the text is where the reward is read.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from app.training.core.data import Prompt

Encoded = dict[str, list[int]]


def render_prompt(tokenizer: Any, prompt: Prompt, *, encoder: bool) -> str:
    """The prompt as text: plain strings stay; a message list goes through the tokenizer's chat template
    (decoders that have one), else becomes ``role: content`` lines."""
    if isinstance(prompt, str):
        return prompt
    messages = [{"role": m["role"], "content": m["content"]} for m in prompt]
    if not encoder and getattr(tokenizer, "chat_template", None):
        return tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    return "\n".join(f"{m['role']}: {m['content']}" for m in messages)


def join_prompt_response(prompt: str, response: str) -> str:
    """Concatenate, adding a newline only when neither side supplies whitespace at the seam."""
    if prompt and response and not prompt[-1].isspace() and not response[0].isspace():
        return f"{prompt}\n{response}"
    return prompt + response


def encode_responses(
    tokenizer: Any,
    prompts: Sequence[Prompt],
    responses: Sequence[str],
    *,
    encoder: bool,
    max_length: int,
) -> list[Encoded]:
    """Token ids (and segment ids for encoders) for each (prompt, response), in one batched tokenizer call."""
    rendered = [render_prompt(tokenizer, p, encoder=encoder) for p in prompts]
    if encoder:
        out = tokenizer(rendered, list(responses), truncation="longest_first", max_length=max_length)
        keys = [k for k in ("input_ids", "token_type_ids") if k in out]
        return [{k: out[k][i] for k in keys} for i in range(len(rendered))]
    texts = [join_prompt_response(p, r) for p, r in zip(rendered, responses, strict=True)]
    ids = tokenizer(texts, add_special_tokens=True)["input_ids"]
    eos = tokenizer.eos_token_id
    encoded = []
    for row in ids:
        if eos is not None and (not row or row[-1] != eos):
            row = [*row, eos]
        encoded.append({"input_ids": row[-max_length:]})
    return encoded


def pad_token_id(tokenizer: Any) -> int:
    """The id used for padding: the tokenizer's pad token, else EOS (masked out either way)."""
    for candidate in (tokenizer.pad_token_id, tokenizer.eos_token_id, 0):
        if candidate is not None:
            return int(candidate)
    return 0  # pragma: no cover - unreachable, keeps type checkers content
