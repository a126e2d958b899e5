"""SFT examples: conversation rules, the JSONL reader, and the safety mix."""

from __future__ import annotations

import io
import json

import pytest

from app.training.sft.config import SFTConfig
from app.training.sft.data import (
    BadConversation,
    SFTExample,
    kind_counts,
    mix_safety,
    read_sft_jsonl,
    safety_counts,
    validate_conversation,
)


def example(i: int, kind: str = "ideal") -> SFTExample:
    return SFTExample(
        messages=({"role": "user", "content": f"q{i}"}, {"role": "assistant", "content": f"a{i}"}),
        kind=kind,
        id=f"ex{i}",
    )


@pytest.mark.parametrize(
    ("messages", "message"),
    [
        ([], "must not be empty"),
        ([{"role": "user", "content": "hi"}], "last message must be the assistant's"),
        ([{"role": "bot", "content": "hi"}], "role must be one of"),
        ([{"role": "user", "content": "  "}, {"role": "assistant", "content": "x"}], "non-empty string"),
        (
            [
                {"role": "user", "content": "a"},
                {"role": "system", "content": "b"},
                {"role": "assistant", "content": "c"},
            ],
            "system message may only come first",
        ),
    ],
)
def test_unusable_conversations_are_refused_with_a_reason(messages, message) -> None:
    with pytest.raises(BadConversation, match=message):
        validate_conversation(messages)


def test_the_jsonl_reader_reads_messages_and_names_a_bad_line() -> None:
    good = [
        {"messages": [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello."}]},
        {
            "messages": [{"role": "user", "content": "Bomb?"}, {"role": "assistant", "content": "No."}],
            "kind": "safe_answer",
        },
    ]
    text = "\n".join(json.dumps(r) for r in good) + "\n\n"
    examples = list(read_sft_jsonl(io.StringIO(text), source="a.jsonl"))
    assert [e.kind for e in examples] == ["ideal", "safe_answer"]
    assert [e.id for e in examples] == ["a.jsonl:1", "a.jsonl:2"]
    assert examples[0].prompt == [{"role": "user", "content": "Hi"}]
    bad = text + json.dumps({"messages": [{"role": "user", "content": "no answer"}]}) + "\n"
    with pytest.raises(BadConversation, match=r"a.jsonl line 4: the last message must be the assistant's"):
        list(read_sft_jsonl(io.StringIO(bad), source="a.jsonl"))
    with pytest.raises(BadConversation, match="line 1: not valid JSON"):
        list(read_sft_jsonl(io.StringIO("{nope\n"), source="b.jsonl"))


def test_anonymous_examples_get_distinct_content_ids() -> None:
    a = SFTExample(messages=({"role": "user", "content": "q"}, {"role": "assistant", "content": "one"}))
    b = SFTExample(messages=({"role": "user", "content": "q"}, {"role": "assistant", "content": "two"}))
    assert a.id != b.id and a.id.startswith("sha256:")


@pytest.mark.parametrize(
    ("safe", "other", "share", "expected"),
    [
        (10, 40, 0.5, (10, 10)),
        (10, 40, 0.1, (4, 40)),
        (10, 40, 0.2, (10, 40)),
        (10, 40, 0.0, (0, 40)),
        (10, 40, 1.0, (10, 0)),
        (0, 40, 0.3, (0, 0)),
    ],
)
def test_safety_counts_keep_the_largest_mix_at_the_share(safe, other, share, expected) -> None:
    assert safety_counts(safe, other, share) == expected


def test_the_mix_reaches_the_share_keeps_order_and_repeats_with_the_seed() -> None:
    data = [example(i, "safe_answer" if i % 5 == 0 else "ideal") for i in range(50)]  # 10 safe, 40 ideal
    mixed = mix_safety(data, 0.5, seed=3)
    assert kind_counts(mixed) == {"ideal": 10, "safe_answer": 10}
    assert [int(e.id[2:]) for e in mixed] == sorted(int(e.id[2:]) for e in mixed)
    assert mix_safety(data, 0.5, seed=3) == mixed and mix_safety(data, 0.5, seed=4) != mixed
    assert mix_safety(data, None) == data
    assert kind_counts(mix_safety(data, 0.0)) == {"ideal": 40, "safe_answer": 0}
    with pytest.raises(ValueError, match="safety share"):
        mix_safety(data, 1.5)


def test_the_config_validates_and_round_trips() -> None:
    config = SFTConfig(epochs=2, lora_target_modules="q_proj, v_proj")
    assert config.target_modules() == ["q_proj", "v_proj"]
    assert SFTConfig.from_dict(config.to_dict()) == config
    assert SFTConfig().target_modules() == "all-linear"
    with pytest.raises(ValueError, match="unknown SFTConfig fields"):
        SFTConfig.from_dict({"epoch": 1})
    with pytest.raises(ValueError, match="lora_r"):
        SFTConfig(lora_r=0)
