"""Examples, the split by prompt, encoding, batching and the crash-safe writes."""

from __future__ import annotations

import pytest
import torch

from app.training.core.batches import LengthGroupedBatchSampler, PairCollator
from app.training.core.checkpoint import (
    atomic_torch_save,
    atomic_write_dir,
    capture_rng_state,
    load_checkpoint,
    restore_rng_state,
)
from app.training.core.data import PreferenceExample, ids_fingerprint, prompt_key_of, split_by_prompt
from app.training.core.encode import encode_responses, render_prompt


def test_split_by_prompt_never_puts_a_prompt_on_both_sides(preferences) -> None:
    examples = preferences(400)
    train, validation = split_by_prompt(examples, 0.2, seed=0)
    assert len(train) + len(validation) == len(examples)
    assert {prompt_key_of(e) for e in train}.isdisjoint({prompt_key_of(e) for e in validation})
    assert 0.05 < len(validation) / len(examples) < 0.4


def test_split_is_stable_as_the_data_grows(preferences) -> None:
    _, small_val = split_by_prompt(preferences(100), 0.2, seed=0)
    _, big_val = split_by_prompt(preferences(100) + preferences(300, seed=1), 0.2, seed=0)
    assert {prompt_key_of(e) for e in small_val} <= {prompt_key_of(e) for e in big_val}


def test_split_of_two_prompts_keeps_one_on_each_side() -> None:
    examples = [PreferenceExample("a", "x", "y"), PreferenceExample("b", "x", "y")]
    train, validation = split_by_prompt(examples, 0.01)
    assert len(train) == len(validation) == 1


def test_strength_outside_1_to_3_is_refused() -> None:
    with pytest.raises(ValueError):
        PreferenceExample("p", "a", "b", strength=4)


def test_fingerprint_ignores_order_but_not_content(preferences) -> None:
    examples = preferences(10)
    assert ids_fingerprint(examples) == ids_fingerprint(list(reversed(examples)))
    assert ids_fingerprint(examples) != ids_fingerprint(examples[:-1])


def test_length_grouped_sampler_covers_every_index_once_per_epoch() -> None:
    lengths = [(i * 37) % 101 for i in range(250)]
    sampler = LengthGroupedBatchSampler(lengths, 8, seed=3)
    epoch0, epoch1 = sampler.batches(0), sampler.batches(1)
    assert epoch0 == sampler.all_batches(0)  # one process: its share is everything
    assert sorted(i for b in epoch0 for i in b) == list(range(250))
    assert len(epoch0) == len(sampler) == 32
    assert epoch0 == sampler.batches(0) and epoch0 != epoch1  # deterministic per epoch, reshuffled across
    spread = sum(max(lengths[i] for i in b) - min(lengths[i] for i in b) for b in epoch0) / len(epoch0)
    plain = LengthGroupedBatchSampler(lengths, 8, seed=3, group_by_length=False).batches(0)
    plain_spread = sum(max(lengths[i] for i in b) - min(lengths[i] for i in b) for b in plain) / len(plain)
    assert spread < plain_spread / 3  # grouping really cuts padding


def test_sampler_shards_give_every_process_the_same_number_of_steps() -> None:
    lengths = list(range(100))  # 13 batches of 8 (the last has 4)
    shards = [LengthGroupedBatchSampler(lengths, 8, seed=1, num_replicas=3, rank=r) for r in range(3)]
    per_rank = [s.batches(0) for s in shards]
    assert [len(b) for b in per_rank] == [len(s) for s in shards] == [5, 5, 5]  # 13 topped up to 15
    assert sorted({i for batches in per_rank for b in batches for i in b}) == lengths
    assert LengthGroupedBatchSampler(lengths, 8, num_replicas=4, rank=3).batches(0) != []


def test_pair_collator_puts_both_sides_in_one_padded_batch() -> None:
    items = [
        {"chosen": {"input_ids": [5, 6, 7]}, "rejected": {"input_ids": [8]}, "margin": 0.5},
        {"chosen": {"input_ids": [9]}, "rejected": {"input_ids": [1, 2]}, "margin": 0.0},
    ]
    batch = PairCollator(pad_id=0)(items)
    assert batch["input_ids"].tolist() == [[5, 6, 7], [9, 0, 0], [8, 0, 0], [1, 2, 0]]  # chosen rows, then rejected
    assert batch["attention_mask"].tolist() == [[1, 1, 1], [1, 0, 0], [1, 0, 0], [1, 1, 0]]
    assert batch["margin"].tolist() == [0.5, 0.0]


def test_decoder_encoding_ends_with_eos_and_truncates_from_the_left(smollm2_tokenizer) -> None:
    tok = smollm2_tokenizer
    [full] = encode_responses(tok, ["User: hi\nAssistant:"], [" hello there"], encoder=False, max_length=512)
    assert full["input_ids"][-1] == tok.eos_token_id
    assert tok.decode(full["input_ids"]).startswith("User: hi\nAssistant: hello there")
    [short] = encode_responses(tok, ["User: hi\nAssistant:"], [" hello there"], encoder=False, max_length=4)
    assert short["input_ids"] == full["input_ids"][-4:]


def test_chat_prompts_use_the_template_of_a_decoder(smollm2_tokenizer) -> None:
    messages = [{"role": "user", "content": "How do I fix a bike?"}]
    rendered = render_prompt(smollm2_tokenizer, messages, encoder=False)
    assert rendered.endswith("<|im_start|>assistant\n") and "How do I fix a bike?" in rendered
    assert render_prompt(smollm2_tokenizer, messages, encoder=True) == "user: How do I fix a bike?"


def test_atomic_write_dir_leaves_nothing_on_error_and_never_overwrites(tmp_path) -> None:
    target = tmp_path / "model"
    with pytest.raises(RuntimeError), atomic_write_dir(target) as tmp:
        (tmp / "weights").write_text("half")
        raise RuntimeError("crash mid-save")
    assert list(tmp_path.iterdir()) == []
    with atomic_write_dir(target) as tmp:
        (tmp / "weights").write_text("all")
    assert (target / "weights").read_text() == "all" and len(list(tmp_path.iterdir())) == 1
    with pytest.raises(FileExistsError), atomic_write_dir(target):
        pass


def test_checkpoint_file_round_trips_with_rng_state(tmp_path) -> None:
    path = tmp_path / "ckpt.pt"
    assert load_checkpoint(path) is None
    torch.manual_seed(1)
    state = capture_rng_state()
    expected = torch.rand(3)
    atomic_torch_save({"step": 7, "rng": state, "w": torch.ones(2)}, path)
    atomic_torch_save({"step": 8, "rng": state, "w": torch.ones(2)}, path)  # replaces in place
    loaded = load_checkpoint(path)
    assert loaded["step"] == 8 and [p.name for p in tmp_path.iterdir()] == ["ckpt.pt"]
    restore_rng_state(loaded["rng"])
    assert torch.equal(torch.rand(3), expected)
