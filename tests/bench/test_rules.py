"""The closed-loop bench's simulated-annotator rules (``bench/rules.py``): pure functions, no database."""

from __future__ import annotations

import argparse

import pytest

from bench import rules
from bench.rules import RULES, labels, prompt_text

PROMPT = "How do I store fresh herbs so they last longer?"

# rule -> (an answer with the trait the rule prefers, one without it, another without it)
CASES: dict[str, tuple[str, str, str]] = {
    "question": ("Keep them in water. Want more tips?", "Keep them in water.", "Wrap them in a towel."),
    "list": (
        "Try this:\n- wrap in a damp towel\n- refrigerate",
        "Wrap them in a damp towel and refrigerate.",
        "Keep them dry.",
    ),
    "digit": ("They keep for 7 days in the fridge.", "They keep for a week in the fridge.", "Keep them cold."),
    "on_topic": ("Store fresh herbs in a jar of water.", "Bananas are yellow fruit.", "The sky looks blue today."),
    "no_first_person": (
        "Wrap the herbs in a damp towel.",
        "I wrap the herbs in a damp towel.",
        "I'm sure I keep them cold.",
    ),
    "no_preamble": (
        "Wrap the herbs in a damp towel.",
        "Sure! Wrap the herbs in a damp towel.",
        "As an AI, I suggest a damp towel.",
    ),
    "safe": ("Wrap the herbs in a damp towel.", "Heat would kill the herbs.", "Stupid herbs wilt."),
    "second_person": ("You can wrap them in a towel.", "Wrap them in a towel.", "Young herbs keep longer."),
    "example": ("Soft herbs, such as basil, like water.", "Soft herbs like water.", "Hard herbs keep dry."),
    "exclaim": ("Wrap them in a towel!", "Wrap them in a towel.", "Keep them cold."),
    "courteous": ("Wrap them in a towel. Hope this helps.", "Wrap them in a towel.", "Thankfully they keep."),
}


def test_every_kind_is_covered():
    assert len(RULES) >= 8
    assert set(rules.KINDS) == set(RULES)
    kinds = {"length", "form", "content", "style", "safety", "tone", "manner", "readability"}
    assert set(rules.KINDS.values()) == kinds
    assert all(f.__doc__ for f in RULES.values())


@pytest.mark.parametrize("name", sorted(CASES))
def test_trait_rule(name):
    rule = RULES[name]
    has, lacks, lacks_too = CASES[name]
    assert rule(PROMPT, has, lacks) == "a"
    assert rule(PROMPT, lacks, has) == "b"
    assert rule(PROMPT, lacks, lacks_too) == "tie"  # neither has the trait
    assert rule(PROMPT, has, has) == "tie"  # both have it


@pytest.mark.parametrize("name", sorted(set(CASES) & set(rules.TRAITS)))
def test_trait_is_what_the_rule_prefers(name):
    """TRAITS (what the ceiling counts) must agree with the rule itself on every case."""
    trait = rules.TRAITS[name]
    has, lacks, lacks_too = CASES[name]
    assert (trait(has), trait(lacks), trait(lacks_too)) == (True, False, False)


def test_comparing_rules_have_no_trait():
    assert set(rules.TRAITS) == set(RULES) - {"shorter", "longer", "on_topic", "plain_words"}


@pytest.mark.parametrize(("share", "ceiling"), [(0.0, 1.0), (1.0, 0.5), (0.03, 0.985), (0.4, 0.8)])
def test_win_ceiling(share, ceiling):
    """Old answers without the trait can be beaten (1), with it only tied (½): 1 − share/2."""
    assert rules.win_ceiling(share) == pytest.approx(ceiling)


def test_shorter():
    rule = RULES["shorter"]
    assert rule(PROMPT, "Short.", "A longer answer.") == "a"
    assert rule(PROMPT, "A longer answer.", "Short.") == "b"
    assert rule(PROMPT, "abc", "xyz") == "tie"


def test_longer_is_shorter_reversed():
    rule = RULES["longer"]
    assert rule(PROMPT, "A longer answer.", "Short.") == "a"
    assert rule(PROMPT, "Short.", "A longer answer.") == "b"
    assert rule(PROMPT, "abc", "xyz") == "tie"


def test_second_person_is_the_whole_word_in_any_case():
    rule = RULES["second_person"]
    assert rule(PROMPT, "Your herbs keep.", "Herbs keep.") == "a"
    assert rule(PROMPT, "Herbs keep.", "YOU\u2019LL see.") == "b"  # a typographic apostrophe counts too
    assert rule(PROMPT, "Youth and bayou.", "Herbs keep.") == "tie"  # not inside another word


def test_example_phrases():
    rule = RULES["example"]
    assert rule(PROMPT, "Basil, e.g. the sweet kind.", "Basil.") == "a"
    assert rule(PROMPT, "Basil.", "For instance, basil.") == "b"
    assert rule(PROMPT, "Examples abound.", "Herbs such.") == "tie"  # the word alone is no example given


def test_courteous_phrases_are_whole_words_in_any_case():
    rule = RULES["courteous"]
    assert rule(PROMPT, "PLEASE keep them cold.", "Keep them cold.") == "a"
    assert rule(PROMPT, "Keep them cold.", "Good luck with your herbs.") == "b"
    assert rule(PROMPT, "Thanks to the fridge they keep.", "Keep them cold.") == "a"  # "thanks" counts
    assert rule(PROMPT, "Keep them cold.", "I hope it helps.") == "b"
    assert rule(PROMPT, "Pleased to say they keep.", "Thankful herbs keep.") == "tie"  # part of a word is no courtesy


def test_plain_words_counts_letters_per_word():
    rule = RULES["plain_words"]
    assert rules.mean_word_length("Keep it cold.") == pytest.approx(10 / 3)
    assert rules.mean_word_length("Don't stop") == pytest.approx(8 / 2)  # the apostrophe is no letter
    assert rule(PROMPT, "Keep it cold.", "Refrigerate immediately.") == "a"
    assert rule(PROMPT, "Refrigerate immediately.", "Keep it cold, in a jar.") == "b"
    assert rule(PROMPT, "Keep cold.", "Stay warm.") == "tie"  # 4 letters a word on both sides
    assert rule(PROMPT, "...", "Refrigerate.") == "b"  # no words never wins


def test_question_ignores_trailing_space_and_needs_the_end():
    rule = RULES["question"]
    assert rule(PROMPT, "Why? Because.", "Because.") == "tie"
    assert rule(PROMPT, "Is it?  \n", "It is.") == "a"


def test_list_markers():
    rule = RULES["list"]
    for listed in ("1. rinse\n2. dry", "Steps:\n  2) dry", "* one", "• one"):
        assert rule(PROMPT, listed, "Rinse and dry.") == "a", listed
    for plain in ("-not a list", "Use 2.5 cups.", "A dash - in the middle"):
        assert rule(PROMPT, plain, "Rinse and dry.") == "tie", plain


def test_on_topic_counts_distinct_content_words():
    rule = RULES["on_topic"]
    # stopwords ("how", "do", "so", "they") do not count; plurals fold ("herb" meets "herbs")
    assert rule(PROMPT, "A herb stays fresh.", "Herbs are nice.") == "a"  # herb, fresh vs herb
    assert rule(PROMPT, "How do they do so?", "Bananas.") == "tie"  # zero overlap on both sides
    assert rule(PROMPT, "herbs herbs herbs", "Herbs.") == "tie"  # distinct words, not repetitions
    assert rule("", "Herbs.", "Bananas.") == "tie"  # a prompt without content words
    assert rules.content_words("The berries don't last longer") == {"berry", "last", "longer"}


def test_no_first_person_is_the_pronoun_only():
    rule = RULES["no_first_person"]
    assert rule(PROMPT, "It is fine.", "I've done it.") == "a"
    assert rule(PROMPT, "In ice, it keeps.", "Ice is fine.") == "tie"  # an "i" inside words is no pronoun


def test_no_preamble_openings():
    rule = RULES["no_preamble"]
    for preamble in (
        "Certainly, here it is.",
        "Of course! Wrap them.",
        "great question — wrap them.",
        '"Sure," wrap them.',
        "Okay, wrap them.",
        "As an AI language model, I think so.",
    ):
        assert rule(PROMPT, "Wrap them.", preamble) == "a", preamble
    for direct in ("Surely wilted herbs are bad.", "Okra is a vegetable.", "History says so."):
        assert rule(PROMPT, direct, "Wrap them.") == "tie", direct


def test_safe_matches_whole_words_in_any_case():
    assert rules.is_unsafe("You will KILL the basil.")
    assert rules.is_unsafe("a dead battery")
    assert not rules.is_unsafe("Skills and a diet help.")  # kill, die inside other words
    assert RULES["safe"](PROMPT, "Wrap them.", "Drugs help herbs.") == "a"


def test_safety_labels_follow_the_words():
    safe, unsafe = "Wrap the herbs in a damp towel.", "Heat would kill the herbs."
    assert labels("safe", unsafe, safe) == {
        "A": {"quality": "good", "safety": "unsafe"},
        "B": {"quality": "good", "safety": "safe"},
    }
    assert labels("safe", safe, unsafe)["B"]["safety"] == "unsafe"
    assert labels("safe", unsafe, unsafe) == {side: {"quality": "good", "safety": "unsafe"} for side in "AB"}
    assert "safe" in rules.SAFETY_RULES


def test_other_rules_label_everything_good_and_safe():
    for name in RULES:
        if name not in rules.SAFETY_RULES:
            assert labels(name, "Heat would kill it.", "Fine.") == rules.SAFE_LABELS
    # a fresh dict each time: a caller changing one cannot change the next judgement's
    labels("shorter", "a", "b")["A"]["safety"] = "unsafe"
    assert rules.SAFE_LABELS["A"]["safety"] == "safe"


def test_prompt_text_is_the_user_turns():
    messages = [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "Store herbs?"},
        {"role": "assistant", "content": "In water."},
        {"role": "user", "content": "And basil?"},
    ]
    assert prompt_text(messages) == "Store herbs?\nAnd basil?"


def test_wilson_interval():
    from bench.closed_loop import wilson_interval

    assert wilson_interval(0.5, 0) is None
    low, high = wilson_interval(0.5, 64)
    assert low < 0.5 < high and abs((0.5 - low) - (high - 0.5)) < 1e-9
    assert abs(low - 0.3810) < 1e-3  # 32 of 64: 38.1 % to 61.9 %
    low, high = wilson_interval(1.0, 16)
    assert abs(high - 1.0) < 1e-9 and 0.80 < low < 0.81  # 16 of 16: not [1, 1] as the normal approximation says


@pytest.fixture
def rule_tables():
    """The rule tables as they were, whatever a test registers."""
    tables = (rules.RULES, rules.KINDS, rules.TRAITS)
    saved = [dict(table) for table in tables]
    yield
    for table, before in zip(tables, saved, strict=True):
        table.clear()
        table.update(before)


TASTE = """
def polite(text):
    return "please" in text.lower()

def prefers_please(prompt, a, b):
    return "tie" if polite(a) == polite(b) else ("a" if polite(a) else "b")

prefers_please.kind = "manner"
prefers_please.trait = polite

def says_maybe(prompt, a, b):
    return "maybe"

def shorter(prompt, a, b):
    return "tie"
"""


def test_a_rule_of_ones_own_loads_from_a_file(tmp_path, rule_tables):
    taste = tmp_path / "taste.py"
    taste.write_text(TASTE)
    assert rules.load_rule(f"{taste}:prefers_please") == "prefers_please"
    assert rules.RULES["prefers_please"](PROMPT, "Please wrap them.", "Wrap them.") == "a"
    assert rules.KINDS["prefers_please"] == "manner" and rules.TRAITS["prefers_please"]("PLEASE do")
    assert labels("prefers_please", "x", "y") == rules.SAFE_LABELS
    assert rules.load_rule(f"{taste}:says_maybe") == "says_maybe" and rules.KINDS["says_maybe"] == "custom"
    with pytest.raises(ValueError, match="returned 'maybe'"):
        rules.RULES["says_maybe"](PROMPT, "x", "y")


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("{dir}/taste.py:nothing", "has no function nothing"),
        ("{dir}/missing.py:f", "no file"),
        ("no_such_module_here:f", "cannot import"),
        ("prefers_please", "expected FILE.py:FUNCTION"),
        ("{dir}/taste.py:shorter", "is a rule already"),
    ],
)
def test_a_rule_that_cannot_load_says_why(tmp_path, rule_tables, spec, message):
    (tmp_path / "taste.py").write_text(TASTE)
    before = dict(rules.RULES)
    with pytest.raises(ValueError, match=message):
        rules.load_rule(spec.format(dir=tmp_path))
    assert before == rules.RULES


def test_the_bench_takes_a_rule_of_ones_own(tmp_path, rule_tables):
    from bench.closed_loop import rule_list

    (tmp_path / "taste.py").write_text(TASTE)
    assert rule_list(f"digit,{tmp_path}/taste.py:prefers_please") == ["digit", "prefers_please"]
    assert rule_list(f"{tmp_path}/taste.py:says_maybe,{tmp_path}/taste.py:says_maybe") == ["says_maybe"]
    with pytest.raises(argparse.ArgumentTypeError, match="has no function"):
        rule_list(f"{tmp_path}/taste.py:nothing")
