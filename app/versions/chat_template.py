"""A policy's standing instruction, written into its chat template so that every use of the policy sees it.

The pool, chat, the training rollouts, the evaluation pairs and anyone loading the folder with plain
``transformers`` all render prompts through the tokenizer's chat template, and a trained child saves the
tokenizer it was trained with. So an instruction such as "Answer in two or three sentences." put there once,
at install, reaches all of them alike, where a system message added in one code path would make the pool's
answers and the trainer's rollouts two different distributions.

The template gets a prefix that opens a conversation without a system message with this one; a conversation
that brings its own is left as it is. Jinja's ``if`` opens no scope, so the reassigned ``messages`` is what
the rest of the template (the model's own, untouched) reads.
"""

from __future__ import annotations

import json

MARK = "{#- rlhf-loop default system message -#}"


def with_default_system(template: str, system: str) -> str:
    """``template`` opening every conversation that has no system message with ``system``."""
    if not system:
        return template
    if template.startswith(MARK):  # installed once already: replace it rather than stack a second
        template = template.split("\n", 1)[1]
    literal = json.dumps(system)  # a double-quoted string with backslash escapes: a valid Jinja literal
    prefix = (
        f"{MARK}\n{{%- if not messages or messages[0]['role'] != 'system' -%}}"
        f"{{%- set messages = [{{'role': 'system', 'content': {literal}}}] + messages -%}}{{%- endif -%}}"
    )
    return prefix + template
