"""The installed policy's standing instruction lives in its chat template, so every renderer sees it."""

from __future__ import annotations

import pytest
from transformers import AutoTokenizer

from app.versions.chat_template import with_default_system
from tests.pool.conftest import save_tiny_policy

SYSTEM = 'Answer in two or three sentences. Say "hi" \\ {{ not jinja }}.'


@pytest.fixture(scope="module")
def tokenizer(tmp_path_factory):
    return AutoTokenizer.from_pretrained(save_tiny_policy(tmp_path_factory.mktemp("template") / "tiny", seed=1))


def _render(tokenizer, messages) -> str:
    return tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)


def test_a_conversation_without_a_system_message_gets_the_instruction_verbatim(tokenizer):
    user = [{"role": "user", "content": "How do I boil an egg?"}]
    before = _render(tokenizer, user)
    assert "You are a helpful AI assistant named SmolLM" in before  # SmolLM2's own default
    tokenizer.chat_template = with_default_system(tokenizer.chat_template, SYSTEM)
    # exactly what the model's template makes of an explicit system message with this text
    assert _render(tokenizer, user) == _render(tokenizer, [{"role": "system", "content": SYSTEM}, *user])
    assert "SmolLM" not in _render(tokenizer, user)


def test_an_own_system_message_is_kept_and_installing_twice_does_not_stack(tokenizer):
    template = with_default_system(with_default_system(tokenizer.chat_template, "first"), SYSTEM)
    assert template.count("rlhf-loop default system message") == 1
    tokenizer.chat_template = template
    own = [{"role": "system", "content": "Be a pirate."}, {"role": "user", "content": "Hi"}]
    rendered = _render(tokenizer, own)
    assert "Be a pirate." in rendered and SYSTEM not in rendered and "first" not in rendered
    assert with_default_system("{{ x }}", "") == "{{ x }}"  # no instruction: the model's own template
