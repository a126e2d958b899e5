"""In-process generation with a transformers causal LM, batched for throughput on CPU or GPU.

Decoding one sequence, a 135M model spends each step on fixed costs (Python, kernel launches,
streaming every weight from memory) rather than arithmetic, so we decode many at once: prompts
are rendered with the model's chat template, sorted by length (less padding), left-padded
(decoder-only models continue from the right edge) and decoded ``batch_size`` rows at a time.
The n samples of a prompt are adjacent rows of a batch that share one prefill: the prompt (all
but its last token) runs through the model once, its KV cache is repeated n times, and
``generate`` continues from there. Each batch draws from its own generator, seeded from the call's
seed and the batch's place, so rows draw different samples yet the whole call is reproducible for a
given seed and input, however its batches are scheduled; the process-wide torch RNG is never touched.

On a CPU a call's batches decode on two threads at once, each with its share of the torch threads
(``app.generation.streams``: 240-290 against 114-139 tokens/s on 2 cores).

The model is loaded once and kept warm by the caller; calls are serialised by a lock, since the
streams set the process's torch thread count for the call's length.
"""

from __future__ import annotations

import inspect
import math
import random
import secrets
import threading
from collections.abc import Callable, Sequence
from functools import partial
from pathlib import Path
from typing import Any

import torch

from app.generation.sampling import SampledStep
from app.generation.streams import in_streams, streams_for
from app.generation.types import Generation, GenerationError, Messages, SamplingParams
from app.kernels.linear import use_fast_linears


class TransformersBackend:
    """A ``GenerationBackend`` over a transformers causal LM and its tokenizer."""

    def __init__(self, model, tokenizer, *, batch_size: int = 32, streams: int = 0) -> None:  # noqa: ANN001
        """``streams``: batches decoded at once, each on its own thread; 0 chooses (see :meth:`streams_for`)."""
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        if streams < 0:
            raise ValueError(f"streams must be >= 0 (0 chooses), got {streams}")
        if not getattr(tokenizer, "chat_template", None):
            raise GenerationError("the tokenizer has no chat template; cannot render chat prompts")
        use_fast_linears(model)  # the pool decodes on the CPU: oneDNN's products where they are faster
        self.model = model.eval()
        self.tokenizer = tokenizer
        self.batch_size = batch_size
        self.streams = streams
        self.eos_ids = _eos_ids(model, tokenizer)
        self.pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else min(self.eos_ids)
        # transformers 5 renamed the KV-cache argument (past_key_values -> cache) between minors.
        params = inspect.signature(model.forward).parameters
        self._cache_kwarg = "cache" if "cache" in params else "past_key_values"
        self._lock = threading.Lock()

    @classmethod
    def from_path(
        cls, path: str | Path, *, batch_size: int = 32, dtype: str = "auto", device: str = "cpu", streams: int = 0
    ) -> TransformersBackend:
        """Load a checkpoint folder (e.g. one written by ``app.training.core.convert``) once."""
        from transformers import AutoModelForCausalLM, AutoTokenizer

        tokenizer = AutoTokenizer.from_pretrained(str(path))
        model = AutoModelForCausalLM.from_pretrained(str(path), dtype=dtype).to(device)
        return cls(model, tokenizer, batch_size=batch_size, streams=streams)

    def generate(
        self, prompts: list[Messages], params: SamplingParams, *, on_text: TextCallback | None = None
    ) -> list[Generation]:
        """``params.n`` responses per prompt, prompt-major (see ``GenerationBackend``)."""
        prompt_ids = [self._encode(messages) for messages in prompts]
        order = sorted(range(len(prompts)), key=lambda p: -len(prompt_ids[p]))
        streams = self.streams_for(len(order))
        # Whole prompts per batch (their samples share a prefill), and at least one batch per stream.
        per_batch = max(1, min(self.batch_size // params.n, math.ceil(len(order) / streams)))
        chunks = [order[start : start + per_batch] for start in range(0, len(order), per_batch)]
        seeds = _batch_seeds(params.seed, len(chunks))
        if on_text is not None and len(chunks) > 1:
            on_text = _serialised(on_text)  # streams report from their own threads
        results: list[list[Generation]] = [[] for _ in prompts]

        def decode(i: int) -> list[Generation]:
            rows = [p * params.n + s for p in chunks[i] for s in range(params.n)]  # batch row -> output index
            streamer = None if on_text is None else _RowStreamer(self, rows, on_text)
            return self._generate_batch([prompt_ids[p] for p in chunks[i]], params, seeds[i], streamer)

        with self._lock, torch.inference_mode():
            batches = in_streams([partial(decode, i) for i in range(len(chunks))], streams)
        for chunk, batch in zip(chunks, batches, strict=True):
            for j, p in enumerate(chunk):
                results[p] = batch[j * params.n : (j + 1) * params.n]
        return [generation for per_prompt in results for generation in per_prompt]

    def streams_for(self, prompts: int) -> int:
        """Streams for a call of ``prompts`` prompts: ``streams`` when set, else the device's choice
        (``app.generation.streams.streams_for``), never more than the prompts."""
        return max(1, min(streams_for(self.model.device, self.streams), prompts))

    def close(self) -> None:
        """Nothing to release eagerly: the model goes when the last reference does."""

    def _encode(self, messages: Messages) -> list[int]:
        """Token ids of the chat-templated prompt ending in the assistant's turn header."""
        text = self.tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
        # The template already writes the special tokens; adding BOS again would shift the prompt.
        return self.tokenizer(text, add_special_tokens=False).input_ids

    def _generate_batch(
        self, prompt_ids: list[list[int]], params: SamplingParams, seed: int, streamer: _RowStreamer | None = None
    ) -> list[Generation]:
        """Decode ``n`` samples of each prompt in one left-padded batch; cut rows at their EOS."""
        input_ids, attention_mask = left_pad(prompt_ids, self.pad_id, self.model.device)  # (prompts, width)
        from app.generation.kv_cache import reserved_cache  # imports transformers: only where a model runs

        # Decoding writes into room reserved in the cache rather than copying the cache every step (kv_cache).
        cache = reserved_cache(self.model.config, params.max_new_tokens)
        if params.n > 1 and input_ids.shape[1] > 1:
            self._shared_prefill(cache, input_ids, attention_mask, params.n)
        extra: dict[str, Any] = {self._cache_kwarg: cache}
        if not params.greedy:  # our sampler, as generate's last processor under greedy decoding
            from transformers import LogitsProcessorList

            generator = torch.Generator(device=self.model.device).manual_seed(seed)
            extra["logits_processor"] = LogitsProcessorList([SampledStep(params.temperature, params.top_p, generator)])
        out = self.model.generate(
            input_ids=input_ids.repeat_interleave(params.n, dim=0),  # (prompts * n, width)
            attention_mask=attention_mask.repeat_interleave(params.n, dim=0),
            generation_config=self._generation_config(params.max_new_tokens),
            streamer=streamer,
            **extra,
        )  # (prompts * n, width + generated)
        return [self._to_generation(row) for row in out[:, input_ids.shape[1] :].tolist()]

    def _shared_prefill(self, cache: Any, input_ids: torch.Tensor, attention_mask: torch.Tensor, n: int) -> None:
        """Fill ``cache`` with every prompt but its last token, computed once and repeated ``n`` times;
        ``generate`` then feeds only the last token, whose logits each sample draws from."""
        # The positions generate() itself derives from a left-padded mask.
        position_ids = (attention_mask.cumsum(-1) - 1).masked_fill(attention_mask == 0, 0)
        self.model(
            input_ids=input_ids[:, :-1],
            attention_mask=attention_mask[:, :-1],
            position_ids=position_ids[:, :-1],
            use_cache=True,
            logits_to_keep=1,
            **{self._cache_kwarg: cache},
        )
        cache.batch_repeat_interleave(n)

    def _to_generation(self, tokens: list[int]) -> Generation:
        """A row of generated ids (padded after EOS) as text, count and finish reason."""
        end = next((i for i, tok in enumerate(tokens) if tok in self.eos_ids), None)
        if end is None:
            return Generation(self._decode(tokens), len(tokens), "length")
        return Generation(self._decode(tokens[:end]), end + 1, "stop")

    def _decode(self, tokens: list[int]) -> str:
        return self.tokenizer.decode(tokens, skip_special_tokens=True).strip()

    def _generation_config(self, max_new_tokens: int):  # noqa: ANN202 - a GenerationConfig
        """A fresh greedy config per call: the call's params rule, not a checkpoint's saved defaults. A sampled
        call draws its tokens in :class:`SampledStep` (no sort of the vocabulary), not in transformers'."""
        from transformers import GenerationConfig

        return GenerationConfig(
            do_sample=False,
            max_new_tokens=max_new_tokens,
            eos_token_id=sorted(self.eos_ids),
            pad_token_id=self.pad_id,
            use_cache=True,
        )


TextCallback = Callable[[int, str], None]  # (output index, the text so far)


def _batch_seeds(seed: int | None, count: int) -> list[int]:
    """One seed per batch, from the call's seed (a fresh one when None) and the batch's place alone."""
    rng = random.Random(seed if seed is not None else secrets.randbits(63))
    return [rng.getrandbits(63) for _ in range(count)]


def _serialised(on_text: TextCallback) -> TextCallback:
    """``on_text`` called by one stream at a time."""
    lock = threading.Lock()

    def call(row: int, text: str) -> None:
        with lock:
            on_text(row, text)

    return call


class _RowStreamer:
    """transformers' streamer protocol for a whole batch: after each decoding step, the text so far of every
    row that grew (its output index, prompt-major as ``generate`` returns them). transformers' own
    TextStreamer takes one row; chat streams its two replies at once, so this one keeps a buffer per row.
    The first ``put`` is the prompt, which is not news; a row stops growing at its first EOS."""

    def __init__(self, backend: TransformersBackend, rows: list[int], on_text: TextCallback) -> None:
        self.backend, self.rows, self.on_text = backend, rows, on_text
        self.tokens: list[list[int]] = [[] for _ in rows]
        self.done = [False] * len(rows)
        self.shown = [""] * len(rows)
        self.prompt_seen = False

    def put(self, value: torch.Tensor) -> None:
        if not self.prompt_seen:
            self.prompt_seen = True
            return
        for i, token in enumerate(value.reshape(len(self.rows), -1)[:, -1].tolist()):
            if self.done[i]:
                continue
            if token in self.backend.eos_ids:
                self.done[i] = True
                continue
            self.tokens[i].append(token)
            text = self.backend._decode(self.tokens[i])
            if text != self.shown[i]:
                self.shown[i] = text
                self.on_text(self.rows[i], text)

    def end(self) -> None:
        """Nothing left to flush: every step's text was sent as it came."""


def left_pad(
    rows: Sequence[Sequence[int]], pad_id: int, device: torch.device | str = "cpu"
) -> tuple[torch.Tensor, torch.Tensor]:
    """Token lists as a right-aligned (input_ids, attention_mask) pair, each (rows, longest), on ``device``.

    Prompts flush right, so every row's next token is generated at the same position; the pool's
    backend and PPO's rollouts pad this one way. Built on the CPU and moved once."""
    width = max(len(ids) for ids in rows)
    input_ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
    attention_mask = torch.zeros((len(rows), width), dtype=torch.long)
    for i, ids in enumerate(rows):
        input_ids[i, width - len(ids) :] = torch.tensor(ids, dtype=torch.long)
        attention_mask[i, width - len(ids) :] = 1
    return input_ids.to(device), attention_mask.to(device)


def _eos_ids(model, tokenizer) -> set[int]:  # noqa: ANN001
    """Every id that ends a turn: the generation config may list several (e.g. <|im_end|> and
    <|endoftext|>), the tokenizer names one."""
    configured = model.generation_config.eos_token_id
    ids = set(configured if isinstance(configured, list) else [configured] if configured is not None else [])
    if tokenizer.eos_token_id is not None:
        ids.add(tokenizer.eos_token_id)
    if not ids:
        raise GenerationError("neither the model nor the tokenizer defines an EOS token")
    return ids
