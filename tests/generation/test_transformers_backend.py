"""The batched in-process backend on a tiny random Llama with the real SmolLM2 tokenizer and chat
template: output shape and order, seeds, length limits, EOS handling and left padding."""

from __future__ import annotations

import pytest
import torch

from app.generation import Generation, GenerationBackend, SamplingParams, TransformersBackend

PROMPTS = [
    [{"role": "user", "content": "Hi"}],
    [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "How do I fix a flat bicycle tyre on a rainy day?"},
    ],
    [
        {"role": "user", "content": "Name a colour."},
        {"role": "assistant", "content": "Blue."},
        {"role": "user", "content": "Another?"},
    ],
]


@pytest.fixture(scope="module")
def backend(tiny_model, smollm2_tokenizer) -> TransformersBackend:
    return TransformersBackend(tiny_model, smollm2_tokenizer, batch_size=4)


@pytest.fixture(scope="module")
def greedy_backend(decisive_tiny_llama, smollm2_tokenizer) -> TransformersBackend:
    return TransformersBackend(decisive_tiny_llama, smollm2_tokenizer, batch_size=4)


def sampled(seed: int | None, n: int = 2, max_new_tokens: int = 6) -> SamplingParams:
    return SamplingParams(temperature=1.0, top_p=0.95, max_new_tokens=max_new_tokens, seed=seed, n=n)


def test_is_a_generation_backend(backend: TransformersBackend) -> None:
    assert isinstance(backend, GenerationBackend)


def test_returns_n_generations_per_prompt(backend: TransformersBackend) -> None:
    out = backend.generate(PROMPTS, sampled(seed=1, n=3))

    assert len(out) == len(PROMPTS) * 3  # 9 rows over batches of 4: the chunking is exercised too
    assert all(isinstance(g, Generation) and isinstance(g.text, str) for g in out)
    assert all(1 <= g.token_count <= 6 and g.finish_reason in ("stop", "length") for g in out)


def test_samples_of_one_prompt_differ_within_one_batch(backend: TransformersBackend) -> None:
    out = backend.generate(PROMPTS[:1], sampled(seed=3, n=2))

    assert out[0].text != out[1].text


def test_same_seed_reproduces_and_other_seed_differs(backend: TransformersBackend) -> None:
    first = backend.generate(PROMPTS, sampled(seed=42))
    again = backend.generate(PROMPTS, sampled(seed=42))
    other = backend.generate(PROMPTS, sampled(seed=43))

    assert first == again
    assert [g.text for g in first] != [g.text for g in other]


def test_seeding_leaves_the_callers_rng_alone(backend: TransformersBackend) -> None:
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    backend.generate(PROMPTS[:1], sampled(seed=7))

    assert torch.equal(torch.rand(3), expected)


def test_max_new_tokens_is_respected(backend: TransformersBackend) -> None:
    out = backend.generate(PROMPTS, sampled(seed=5, n=2, max_new_tokens=3))

    assert all(g.token_count <= 3 for g in out)
    assert all(g.token_count == 3 for g in out if g.finish_reason == "length")


def test_greedy_batched_equals_unbatched(greedy_backend: TransformersBackend) -> None:
    """Left padding done right: a row's result does not depend on its shorter/longer neighbours."""
    greedy = SamplingParams(temperature=0, max_new_tokens=8)
    batched = greedy_backend.generate(PROMPTS, greedy)
    alone = [greedy_backend.generate([messages], greedy)[0] for messages in PROMPTS]

    assert batched == alone
    assert len({g.text for g in batched}) > 1  # the prompts did steer the model


def test_samples_sharing_a_prefill_continue_the_same_prompt(decisive_tiny_llama, smollm2_tokenizer) -> None:
    """The n samples of a prompt reuse one prefilled KV cache: greedy, they must all equal the
    unbatched single-sample result (a misaligned, mis-padded or mis-repeated cache would not)."""
    backend = TransformersBackend(decisive_tiny_llama, smollm2_tokenizer, batch_size=9)  # 3 prompts x 3, padded
    single = [backend.generate([messages], SamplingParams(temperature=0, max_new_tokens=8))[0] for messages in PROMPTS]
    shared = backend.generate(PROMPTS, SamplingParams(temperature=0, max_new_tokens=8, n=3))

    assert shared == [g for g in single for _ in range(3)]


def test_prompt_is_chat_templated_up_to_the_assistant_turn(backend: TransformersBackend, smollm2_tokenizer) -> None:
    ids = backend._encode(PROMPTS[0])

    text = smollm2_tokenizer.decode(ids)
    assert text.startswith("<|im_start|>system\n")
    assert text.endswith("<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n")


def test_rows_stop_at_their_own_eos(smollm2_tokenizer) -> None:
    """A head that picks EOS with probability ~0.2 per step: some rows stop early while the batch
    goes on; each is cut at its first EOS, which counts as a token and never shows in the text."""
    from app.training.core.tiny import tiny_llama

    model = tiny_llama(smollm2_tokenizer, hidden_size=32, num_layers=1, seed=1)
    head = torch.nn.Linear(32, len(smollm2_tokenizer), bias=True)
    with torch.no_grad():
        head.weight.zero_()
        head.bias.zero_()
        head.bias[smollm2_tokenizer.eos_token_id] = 9.42  # e^9.42 / (e^9.42 + 49151) ~ 0.2
    model.lm_head = head
    out = TransformersBackend(model, smollm2_tokenizer, batch_size=16).generate(
        PROMPTS[:2], sampled(seed=0, n=8, max_new_tokens=8)
    )

    stopped = [g for g in out if g.finish_reason == "stop"]
    assert stopped and any(g.finish_reason == "length" for g in out)
    assert all(1 <= g.token_count <= 8 for g in stopped)
    assert all("<|im_end|>" not in g.text for g in out)


def test_to_generation_cuts_at_first_eos(backend: TransformersBackend, smollm2_tokenizer) -> None:
    eos = smollm2_tokenizer.eos_token_id
    hello = smollm2_tokenizer("Hello", add_special_tokens=False).input_ids

    assert backend._to_generation([*hello, eos, eos, eos]) == Generation("Hello", len(hello) + 1, "stop")
    assert backend._to_generation(hello) == Generation("Hello", len(hello), "length")


def test_empty_prompt_list_gives_empty_result(backend: TransformersBackend) -> None:
    assert backend.generate([], sampled(seed=1)) == []


@pytest.mark.parametrize("bad", [{"temperature": -1}, {"top_p": 0}, {"top_p": 1.5}, {"max_new_tokens": 0}, {"n": 0}])
def test_sampling_params_refuse_nonsense(bad: dict) -> None:
    with pytest.raises(ValueError):
        SamplingParams(**bad)
