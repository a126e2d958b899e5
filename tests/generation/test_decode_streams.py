"""A call's batches decoded on several threads at once (``TransformersBackend.streams``): the same answers
as one after the other, each stream with its share of the torch threads, the count restored after, a
stream's error raised to the caller and streamed text from every stream."""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import replace

import pytest
import torch

from app.generation import SamplingParams, TransformersBackend

PROMPTS = [[{"role": "user", "content": text}] for text in ("Hi", "Name a colour.", "Why is the sky blue?", "Count.")]
PARAMS = SamplingParams(temperature=1.0, top_p=0.95, max_new_tokens=5, seed=11, n=2)


@pytest.fixture
def total_threads():
    """Two torch threads for the test (so two streams get one each), the caller's count restored."""
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    yield 2
    torch.set_num_threads(before)


def backend(model, tokenizer, streams: int) -> TransformersBackend:
    return TransformersBackend(model, tokenizer, batch_size=4, streams=streams)  # 2 prompts x 2 samples a batch


def spy_on_batches(monkeypatch: pytest.MonkeyPatch, record: Callable[[list[list[int]]], object]) -> None:
    """Call ``record(prompt_ids)`` in the thread that decodes each batch, before it decodes."""
    real = TransformersBackend._generate_batch

    def spy(self, prompt_ids, *args, **kwargs):
        record(prompt_ids)
        return real(self, prompt_ids, *args, **kwargs)

    monkeypatch.setattr(TransformersBackend, "_generate_batch", spy)


def test_streams_give_the_answers_one_stream_gives(tiny_model, smollm2_tokenizer, total_threads) -> None:
    one = backend(tiny_model, smollm2_tokenizer, 1).generate(PROMPTS, PARAMS)
    two = backend(tiny_model, smollm2_tokenizer, 2).generate(PROMPTS, PARAMS)

    assert len(two) == len(PROMPTS) * PARAMS.n
    assert two == one  # each batch draws from its own seeded generator, whichever thread runs it
    other = backend(tiny_model, smollm2_tokenizer, 2).generate(PROMPTS, replace(PARAMS, seed=12))
    assert [g.text for g in other] != [g.text for g in two]


def test_each_stream_runs_on_its_own_thread_with_its_share_of_threads(
    tiny_model, smollm2_tokenizer, total_threads, monkeypatch: pytest.MonkeyPatch
) -> None:
    seen: list[tuple[str, int, bool]] = []
    spy_on_batches(
        monkeypatch,
        lambda _: seen.append(
            (threading.current_thread().name, torch.get_num_threads(), torch.is_inference_mode_enabled())
        ),
    )
    backend(tiny_model, smollm2_tokenizer, 2).generate(PROMPTS, PARAMS)

    assert len(seen) == 2
    assert all(name.startswith("decode") and threads == 1 and inference for name, threads, inference in seen)
    assert torch.get_num_threads() == total_threads  # given back after the call


def test_one_stream_decodes_in_the_callers_thread(tiny_model, smollm2_tokenizer, total_threads, monkeypatch) -> None:
    seen: list[tuple[str, int]] = []
    spy_on_batches(monkeypatch, lambda _: seen.append((threading.current_thread().name, torch.get_num_threads())))
    backend(tiny_model, smollm2_tokenizer, 1).generate(PROMPTS, PARAMS)

    assert seen == [(threading.current_thread().name, total_threads)] * 2


def test_a_calls_prompts_are_shared_out_so_every_stream_has_a_batch(
    tiny_model, smollm2_tokenizer, monkeypatch: pytest.MonkeyPatch
) -> None:
    wide = TransformersBackend(tiny_model, smollm2_tokenizer, batch_size=64, streams=2)
    sizes: list[int] = []
    spy_on_batches(monkeypatch, lambda prompt_ids: sizes.append(len(prompt_ids)))
    out = wide.generate(PROMPTS[:3], PARAMS)

    assert sorted(sizes) == [1, 2] and len(out) == 6  # 3 prompts fit one 64-row batch, yet two streams get one each
    assert wide.streams_for(1) == 1


def test_a_streams_error_reaches_the_caller(tiny_model, smollm2_tokenizer, total_threads, monkeypatch) -> None:
    def broken(prompt_ids: list[list[int]]) -> None:
        raise RuntimeError(f"stream failed on {len(prompt_ids)} prompts")

    spy_on_batches(monkeypatch, broken)
    with pytest.raises(RuntimeError, match="stream failed"):
        backend(tiny_model, smollm2_tokenizer, 2).generate(PROMPTS, PARAMS)
    assert torch.get_num_threads() == total_threads


def test_streamed_text_arrives_from_every_stream(tiny_model, smollm2_tokenizer, total_threads) -> None:
    texts: dict[int, str] = {}
    out = backend(tiny_model, smollm2_tokenizer, 2).generate(
        PROMPTS, PARAMS, on_text=lambda row, text: texts.__setitem__(row, text)
    )

    assert texts  # some row grew
    for row, text in texts.items():
        assert out[row].text.startswith(text.strip()) or text.strip().startswith(out[row].text)
    assert {row // PARAMS.n for row in texts} == set(range(len(PROMPTS)))  # the prompts of both batches


def test_streams_must_not_be_negative(tiny_model, smollm2_tokenizer) -> None:
    with pytest.raises(ValueError, match="streams"):
        TransformersBackend(tiny_model, smollm2_tokenizer, streams=-1)


def test_auto_streams_follow_the_torch_threads(tiny_model, smollm2_tokenizer, total_threads) -> None:
    auto = TransformersBackend(tiny_model, smollm2_tokenizer, streams=0)
    assert auto.streams_for(8) == 2
    torch.set_num_threads(1)
    assert auto.streams_for(8) == 1
