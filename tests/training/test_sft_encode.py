"""The SFT labels cover the assistant's answers (and their end-of-turn marker) and nothing else."""

from __future__ import annotations

import math

import pytest
import torch

from app.training.sft.encode import (
    IGNORE,
    SFTCollator,
    TemplateMismatch,
    assistant_spans,
    encode_conversation,
    sft_loss,
    token_nll,
)

CONVERSATION = [
    {"role": "system", "content": "Be brief."},
    {"role": "user", "content": "Hi there"},
    {"role": "assistant", "content": "Hello! How can I help?"},
    {"role": "user", "content": "Name a colour."},
    {"role": "assistant", "content": "Blue."},
]


def labelled_text(tokenizer, row: dict) -> list[str]:
    """The labelled tokens decoded, one string per contiguous run."""
    runs, current = [], []
    for label in row["labels"]:
        if label == IGNORE:
            if current:
                runs.append(current)
            current = []
        else:
            current.append(label)
    if current:
        runs.append(current)
    return [tokenizer.decode(run) for run in runs]


def test_only_the_assistant_answers_and_their_end_markers_are_labelled(smollm2_tokenizer) -> None:
    row = encode_conversation(smollm2_tokenizer, CONVERSATION, max_length=512)
    assert row is not None
    assert labelled_text(smollm2_tokenizer, row) == ["Hello! How can I help?<|im_end|>\n", "Blue.<|im_end|>\n"]
    # the labels are the input ids where they are set, so position t+1 is predicted from t
    assert all(label in (IGNORE, tok) for tok, label in zip(row["input_ids"], row["labels"], strict=True))
    text = smollm2_tokenizer.decode(row["input_ids"])
    assert text == smollm2_tokenizer.apply_chat_template(CONVERSATION, tokenize=False)  # no BOS added twice


def test_spans_are_character_ranges_of_the_rendered_answers(smollm2_tokenizer) -> None:
    text, spans = assistant_spans(smollm2_tokenizer, CONVERSATION)
    assert [text[a:b] for a, b in spans] == ["Hello! How can I help?<|im_end|>\n", "Blue.<|im_end|>\n"]


def test_a_cut_that_leaves_no_answer_token_drops_the_conversation(smollm2_tokenizer) -> None:
    assert encode_conversation(smollm2_tokenizer, CONVERSATION, max_length=8) is None
    cut = encode_conversation(smollm2_tokenizer, CONVERSATION, max_length=40)
    assert cut is not None and len(cut["input_ids"]) == 40
    assert labelled_text(smollm2_tokenizer, cut)[0].startswith("Hello")


class PrefixBreakingTokenizer:
    """A template that puts a footer after the last message: a prefix is not the start of the whole."""

    def apply_chat_template(self, messages, tokenize=False, add_generation_prompt=False) -> str:
        body = "".join(f"{m['role']}: {m['content']}\n" for m in messages)
        return body + ("assistant: " if add_generation_prompt else "") + f"[{len(messages)} turns]"


def test_a_template_that_does_not_render_by_prefix_is_refused() -> None:
    with pytest.raises(TemplateMismatch):
        assistant_spans(
            PrefixBreakingTokenizer(), [{"role": "user", "content": "a"}, {"role": "assistant", "content": "b"}]
        )


def test_the_collator_pads_with_ignored_labels() -> None:
    batch = SFTCollator(pad_id=0)(
        [{"input_ids": [5, 6, 7], "labels": [IGNORE, 6, 7]}, {"input_ids": [8], "labels": [8]}]
    )
    assert batch["input_ids"].tolist() == [[5, 6, 7], [8, 0, 0]]
    assert batch["labels"].tolist() == [[IGNORE, 6, 7], [8, IGNORE, IGNORE]]
    assert batch["attention_mask"].tolist() == [[1, 1, 1], [1, 0, 0]]


def test_the_loss_is_the_mean_nll_of_the_labelled_tokens_only() -> None:
    vocab = 4
    logits = torch.zeros(1, 3, vocab)  # uniform: every token costs log 4
    logits[0, 0, 2] = 100.0  # position 0 predicts token 2 with certainty
    labels = torch.tensor([[IGNORE, 2, 3]])  # tokens 1 and 2 are labelled
    total, count = token_nll(logits, labels)
    assert count.item() == 2
    assert total.item() == pytest.approx(math.log(vocab), abs=1e-4)  # ~0 for token 1, log 4 for token 2
    assert sft_loss(logits, labels).item() == pytest.approx(math.log(vocab) / 2, abs=1e-4)
    everything_ignored = torch.full((1, 3), IGNORE)
    assert sft_loss(logits, everything_ignored).item() == 0.0
