"""The reward trainer's speed-ups change nothing but the speed: packed shared-prefix rows score like
padded ones, training only the used embedding rows ends with the same weights, and plain shuffled
batches are the ones Hugging Face's seedable sampler draws."""

from __future__ import annotations

import tempfile
from pathlib import Path

import pytest
import torch

from app.training.core import pipeline as reward_pipeline
from app.training.core.batches import LengthGroupedBatchSampler, PairCollator
from app.training.core.data import PreferenceExample
from app.training.core.heads import build_model, ensure_pad_token
from app.training.core.last_layer import reads_only_exactly
from app.training.core.prefix import MODEL_INPUTS, SharedPrefixCollator, shared_prefix_length, shares_prefix_exactly
from app.training.core.tiny import tiny_llama
from app.training.core.vocab import compact_embedding, plan, renumber_rows
from app.training.reward.config import RewardConfig
from app.training.reward.trainer import encode_pairs, train_reward_model


@pytest.fixture(scope="module")
def tokenizer():
    from app.training.core.default_models import load_smollm2_tokenizer

    torch.set_num_threads(1)
    return load_smollm2_tokenizer(Path(tempfile.gettempdir()) / "rlhf-smollm2-tokenizer")


def examples(n: int = 24) -> list[PreferenceExample]:
    return [
        PreferenceExample(
            f"User: How do I fix thing {i}?\nAssistant:",
            f" Sure! Step {i}, then rest.",
            " No." if i % 2 else " Sure, but not today.",
            strength=1 + i % 3,
            id=i,
        )
        for i in range(n)
    ]


def test_shared_prefix_length_leaves_each_side_a_token() -> None:
    assert shared_prefix_length([1, 2, 3, 4], [1, 2, 9]) == 2
    assert shared_prefix_length([1, 2, 3], [1, 2, 3]) == 2
    assert shared_prefix_length([5], [5, 6]) == 0


@pytest.mark.parametrize("attention", ["sdpa", "eager"])
def test_packed_rows_score_exactly_like_padded_ones(tokenizer, attention: str) -> None:
    backbone = tiny_llama(tokenizer)
    backbone.config._attn_implementation = attention
    model, tok = build_model(backbone, ["reward"], tokenizer=tokenizer)
    rows = encode_pairs(tok, examples(8), False, 512)
    pad = tok.pad_token_id
    packed = SharedPrefixCollator(pad, additive=attention == "eager")(rows)
    plain = PairCollator(pad)(rows)
    assert packed["input_ids"].numel() < plain["input_ids"].numel()  # the point: fewer tokens
    with torch.no_grad():
        torch.testing.assert_close(
            model(**{k: v for k, v in packed.items() if k in MODEL_INPUTS}),
            model(**{k: v for k, v in plain.items() if k in MODEL_INPUTS}),
            atol=1e-5,
            rtol=1e-4,
        )
    assert shares_prefix_exactly(model, rows, pad, PairCollator(pad))


def test_a_rejected_suffix_longer_than_prefix_and_chosen_stays_causal(tokenizer) -> None:
    """A one-token chosen answer and a longer rejected one: the rejected suffix must not see its own future."""
    model, tok = build_model(tiny_llama(tokenizer), ["reward"], tokenizer=tokenizer)
    rows = encode_pairs(tok, [PreferenceExample("", "a", " long and rude answer here")], False, 512)
    chosen, rejected = rows[0]["chosen"]["input_ids"], rows[0]["rejected"]["input_ids"]
    assert len(rejected) - shared_prefix_length(chosen, rejected) > len(chosen)
    packed = SharedPrefixCollator(tok.pad_token_id)(rows)
    mask = packed["attention_mask"][0, 0]
    assert not mask.triu(diagonal=1).any()  # causal everywhere
    with torch.no_grad():
        torch.testing.assert_close(
            model(**{k: v for k, v in packed.items() if k in MODEL_INPUTS}),
            model(**{k: v for k, v in PairCollator(tok.pad_token_id)(rows).items() if k in MODEL_INPUTS}),
            atol=1e-5,
            rtol=1e-4,
        )


@pytest.mark.parametrize("attention", ["sdpa", "eager"])
def test_last_layer_at_the_reads_scores_and_trains_like_the_full_pass(tokenizer, attention: str) -> None:
    backbone = tiny_llama(tokenizer)  # grouped-query attention: 4 query heads, 2 key/value heads
    backbone.config._attn_implementation = attention
    model, tok = build_model(backbone, ["reward"], tokenizer=tokenizer)
    rows = encode_pairs(tok, examples(8), False, 512)
    collate = SharedPrefixCollator(tok.pad_token_id, additive=attention == "eager")
    assert reads_only_exactly(model, rows[:4], collate) and not model.reads_only
    batch = {k: v for k, v in collate(rows).items() if k in MODEL_INPUTS}
    grads = []
    for reads_only in (False, True):
        model.reads_only = reads_only
        model.zero_grad()
        scores = model(**batch)
        (scores * torch.linspace(-1, 1, len(scores)).unsqueeze(1)).sum().backward()
        grads.append((scores.detach(), [p.grad.clone() for p in model.parameters()]))
    torch.testing.assert_close(grads[1][0], grads[0][0], atol=1e-5, rtol=1e-4)
    for fast, full in zip(grads[1][1], grads[0][1], strict=True):
        torch.testing.assert_close(fast, full, atol=1e-5, rtol=1e-4)


def test_an_encoder_never_packs(tmp_path) -> None:
    from transformers import AutoTokenizer, BertConfig, BertModel

    from app.training.core.default_models import minilm_path

    tok = AutoTokenizer.from_pretrained(str(minilm_path()))
    tiny = BertModel(
        BertConfig(
            vocab_size=tok.vocab_size, hidden_size=32, num_hidden_layers=1, num_attention_heads=2, intermediate_size=64
        )
    )
    model, _ = build_model(tiny, ["reward"], tokenizer=tok)
    rows = encode_pairs(tok, examples(4), True, 128)
    assert not shares_prefix_exactly(model, rows, tok.pad_token_id, PairCollator(tok.pad_token_id))


def test_compact_embedding_trains_to_the_same_weights(tmp_path, tokenizer, monkeypatch) -> None:
    ensure_pad_token(tokenizer)  # pad = EOS: the embedding's padding row is a token the data uses
    backbones = [tiny_llama(tokenizer), tiny_llama(tokenizer)]
    assert backbones[0].model.embed_tokens.padding_idx == tokenizer.eos_token_id
    config = RewardConfig(
        learning_rate=1e-2,
        epochs=2,
        batch_size=4,
        validation_fraction=0.0,
        num_threads=1,
        checkpoint_every=0,
        use_cpu=True,
    )
    compact = train_reward_model(
        examples(), config, tmp_path / "compact", backbone=backbones[0], tokenizer=tokenizer
    ).model
    monkeypatch.setattr(reward_pipeline, "compact_plan", lambda *args, **kwargs: None)
    dense = train_reward_model(examples(), config, tmp_path / "dense", backbone=backbones[1], tokenizer=tokenizer).model
    for (name, a), (_, b) in zip(compact.named_parameters(), dense.named_parameters(), strict=True):
        torch.testing.assert_close(a, b, atol=2e-6, rtol=1e-4, msg=name)
    assert compact.backbone.get_input_embeddings().num_embeddings == len(tokenizer)  # the full matrix is back


def test_compact_plan_refuses_weight_decay_and_renumbers_every_id(tokenizer) -> None:
    model, tok = build_model(tiny_llama(tokenizer), ["reward"], tokenizer=tokenizer)
    rows = encode_pairs(tok, examples(4), False, 512)
    assert plan(model.backbone, rows, pad_id=tok.pad_token_id, weight_decay=0.01) is None
    vocab = plan(model.backbone, rows, pad_id=tok.pad_token_id, weight_decay=0.0)
    assert vocab is not None and tok.pad_token_id in vocab.used.tolist()
    renumbered = renumber_rows(rows, vocab)
    assert vocab.used[renumbered[0]["chosen"]["input_ids"]].tolist() == rows[0]["chosen"]["input_ids"]
    before = model.backbone.get_input_embeddings().weight.detach().clone()
    with compact_embedding(model.backbone, vocab):
        assert model.backbone.get_input_embeddings().num_embeddings == len(vocab.used)
    torch.testing.assert_close(model.backbone.get_input_embeddings().weight, before)


def test_plain_shuffled_batches_follow_hugging_faces_seedable_sampler() -> None:
    sampler = LengthGroupedBatchSampler(list(range(40)), 8, seed=3, group_by_length=False)
    for epoch in (0, 1):
        expected = torch.randperm(40, generator=torch.Generator().manual_seed(3 + epoch)).tolist()
        assert [i for batch in sampler.batches(epoch) for i in batch] == expected
