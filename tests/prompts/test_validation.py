"""The rules every prompt obeys, with the field each refusal names (no database needed)."""

from __future__ import annotations

import pytest

from app.errors import Invalid
from app.prompts import validation as v


def _user(content: str = "Hi?") -> dict[str, str]:
    return {"role": "user", "content": content}


@pytest.mark.parametrize(
    ("messages", "field", "needle"),
    [
        ("hello", "messages", "must be a list"),
        ([], "messages", "must not be empty"),
        ([_user()] * 51, "messages", "at most 50 messages"),
        (["hi"], "messages[0]", "must be an object"),
        ([{"role": "bot", "content": "x"}], "messages[0].role", "must be one of system, user, assistant"),
        ([{"content": "x"}], "messages[0].role", "must be one of"),
        ([_user(), {"role": "robot", "content": "x"}], "messages[1].role", "must be one of system, user, assistant"),
        ([{"role": "user", "content": "  "}], "messages[0].content", "must not be empty"),
        ([{"role": "user", "content": 7}], "messages[0].content", "must be a string"),
        ([_user("x" * 20_001)], "messages[0].content", "at most 20,000 characters"),
        ([_user("a\x00b")], "messages[0].content", "NUL"),
        ([_user("\ud800")], "messages[0].content", "lone surrogates"),
        ([{"role": "user", "content": "x", "name": "bob"}], "messages[0]", "unexpected key 'name'"),
        ([_user(), {"role": "assistant", "content": "Hello."}], "messages[1].role", "last message must be the user's"),
        (
            [_user(), {"role": "system", "content": "x"}, _user()],
            "messages[1].role",
            "system message may only come first",
        ),
    ],
)
def test_bad_conversations_name_the_field(messages, field, needle):
    with pytest.raises(Invalid) as caught:
        v.validate_messages(messages)
    assert caught.value.field == field
    assert needle in caught.value.message and caught.value.message.startswith(f"{field}: ")


def test_canonical_form_and_hash():
    a = v.validate_messages(
        [{"role": "system", "content": "Be brief."}, {"content": " What is 2+2?\r\n", "role": "user"}]
    )
    b = v.validate_messages([{"role": "system", "content": "Be brief."}, {"role": "user", "content": "What is 2+2?"}])
    assert a == b == [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "What is 2+2?"}]
    assert v.content_hash(a) == v.content_hash(b) and len(v.content_hash(a)) == 64
    assert v.content_hash(v.single_turn("What is 2+2?")) != v.content_hash(a)


def test_tags_flags_k_and_status():
    assert v.validate_tags(" math, easy ,math,, ") == ["math", "easy"]
    assert v.validate_tags(["a", "b"]) == ["a", "b"]
    with pytest.raises(Invalid, match="tags: must be a list"):
        v.validate_tags([1])
    with pytest.raises(Invalid, match="at most 20 tags"):
        v.validate_tags([f"t{i}" for i in range(21)])
    assert v.parse_flag("yes", field="red_team") is True and v.parse_flag("", field="red_team") is False
    with pytest.raises(Invalid, match="red_team: must be true or false"):
        v.parse_flag("maybe", field="red_team")
    assert v.validate_k("") is None and v.validate_k("3") == 3
    for bad in ("0", "21", "two"):
        with pytest.raises(Invalid, match="judgements_per_pair"):
            v.validate_k(bad)
    with pytest.raises(Invalid, match="status: unknown status 'paused'"):
        v.parse_status("paused")
