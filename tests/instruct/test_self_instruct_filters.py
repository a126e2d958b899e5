"""SELF-INSTRUCT's filters on hand examples, and the generate-filter-keep loop on a scripted backend."""

from __future__ import annotations

import random

import pytest

from app.generation.types import Generation, SamplingParams
from app.instruct.self_instruct import (
    BAD_FORMAT,
    EMPTY,
    NEEDS_INPUT,
    NOT_A_REQUEST,
    TOO_LONG,
    TOO_SHORT,
    TOO_SIMILAR,
    UNSUPPORTED,
    Bounds,
    Plan,
    SimilarityIndex,
    Tally,
    build_request,
    check_candidate,
    clean_line,
    extract_candidates,
    generate_instructions,
)

SEEDS = [
    "How do I keep cut apples from turning brown?",
    "Write a haiku about autumn rain.",
    "Explain why the sky is blue to a ten-year-old.",
]


def check(text: str, existing: list[str] | None = None, **bounds: int) -> str | None:
    return check_candidate(text, SimilarityIndex(existing if existing is not None else SEEDS), Bounds(**bounds), 0.7)


def test_rouge_l_at_or_above_the_threshold_is_too_similar() -> None:
    index = SimilarityIndex(SEEDS)
    score, match = index.closest("How can I keep apples from going brown?")
    assert score == pytest.approx(0.7058, abs=1e-3) and match == SEEDS[0]  # LCS 6 of 8 and 9 tokens
    assert check("How can I keep apples from going brown?") == TOO_SIMILAR
    assert check("How do I keep cut pears from turning brown quickly?") == TOO_SIMILAR
    assert check("How do I stop sliced avocado from going brown?") is None  # 0.5: different enough
    assert check("Write a haiku about autumn rain.", existing=[]) is None  # nothing to compare with


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("", EMPTY),
        ("Write poems.", TOO_SHORT),
        (" ".join(["word"] * 81) + ".", TOO_LONG),
        ("Write a story about a dog who learns to fly", BAD_FORMAT),  # cut off: no final punctuation
        ("123 ways to save money on groceries?", BAD_FORMAT),
        ("Here is a new task: write a limerick about cats.", BAD_FORMAT),  # chatty preamble
        ("Write a new task that is different from these.", BAD_FORMAT),  # talks about the exercise
        ("Write a poem with <|im_end|> in it.", BAD_FORMAT),
        ("Écris un poème sur la mer, s'il te plaît, très vite.", BAD_FORMAT),
        ("Describe the picture of the cat on the sofa.", UNSUPPORTED),
        ("The beauty of a quiet bicycle ride.", NOT_A_REQUEST),
        ("Summarize the following text in two sentences.", NEEDS_INPUT),
        ("Suggest three names for a friendly neighbourhood bakery.", None),
        ('Rewrite this sentence to sound kinder: "Do it now."', None),
        ("I need a packing list for a weekend of camping.", None),
    ],
)
def test_length_and_format_rules(text: str, reason: str | None) -> None:
    assert check(text) == reason


def test_words_bounds_are_parameters() -> None:
    assert check("Name three rivers in Europe.", min_words=6) == TOO_SHORT
    assert check("Name three rivers in Europe and their lengths.", max_words=5) == TOO_LONG


@pytest.mark.parametrize(
    ("line", "cleaned"),
    [
        ("3. Write a limerick.", "Write a limerick."),
        ("- **Task 4:** Plan a picnic.", "Plan a picnic."),
        ('"Can you share a story about a brave mouse?"', "Can you share a story about a brave mouse?"),
        ("Question: What is a good name for a cat?", "What is a good name for a cat?"),
        ("  Quietly   list three   fruits.  ", "Quietly list three fruits."),
    ],
)
def test_lines_lose_list_markers_and_quotes(line: str, cleaned: str) -> None:
    assert clean_line(line) == cleaned


def test_a_numbered_answer_gives_one_candidate_per_line() -> None:
    output = "Here are more:\n\n5. Plan a picnic for four.\n6. Name a red fruit.\n7. Tell a joke.\n8. Too many."
    assert extract_candidates(output, limit=3) == ["Here are more:", "Plan a picnic for four.", "Name a red fruit."]
    assert extract_candidates("   \n  ") == []


def test_the_request_lists_the_examples() -> None:
    (message,) = build_request(["A?", "B."])
    assert message["role"] == "user" and "1. A?\n2. B." in message["content"]


class ScriptedBackend:
    """Answers requests from a fixed list, in order, and records what it was asked."""

    def __init__(self, answers: list[str]) -> None:
        self.answers, self.calls = list(answers), []

    def generate(self, prompts, params: SamplingParams) -> list[Generation]:
        self.calls.append((prompts, params))
        return [Generation(self.answers.pop(0) if self.answers else "", 5, "stop") for _ in prompts]

    def close(self) -> None:
        pass


def test_the_loop_keeps_diverse_requests_compares_with_kept_ones_and_counts_reasons() -> None:
    backend = ScriptedBackend(
        [
            "Suggest a name for a pet goldfish.",
            "Suggest a name for a pet goldfish!",  # near-copy of the one just kept
            "How can I keep apples from going brown?",  # near-copy of a seed
            "1. Plan a birthday picnic for six kids.\n2. Describe the image of a cat.\n3. Ok",
        ]
    )
    plan = Plan(
        sampling=SamplingParams(temperature=0.9, max_new_tokens=32),
        target=10,
        max_candidates=6,
        batch_size=2,
        examples_per_request=2,
        machine_examples=1,
    )
    tally, batches = Tally(), []
    kept = generate_instructions(
        backend,
        SEEDS,
        SimilarityIndex(SEEDS),
        plan,
        rng=random.Random(0),
        tally=tally,
        on_batch=lambda new, t: batches.append(list(new)),
    )
    assert kept == ["Suggest a name for a pet goldfish.", "Plan a birthday picnic for six kids."]
    assert tally.as_dict() == {
        "requests": 4,
        "generated": 6,
        "kept": 2,
        "rejected": {
            "empty": 0,
            "too_short": 1,
            "too_long": 0,
            "bad_format": 0,
            "not_a_request": 0,
            "needs_input": 0,
            "unsupported": 1,
            "too_similar": 2,
        },
    }
    assert batches == [["Suggest a name for a pet goldfish."], ["Plan a birthday picnic for six kids."]]
    second_request = backend.calls[1][0][0][0]["content"]
    assert "Suggest a name for a pet goldfish." in second_request  # kept ones are shown as examples too
    assert len({params.seed for _, params in backend.calls}) == 2  # each batch sampled afresh


def test_the_loop_stops_at_the_target() -> None:
    backend = ScriptedBackend(
        [
            "Name two animals that live in deserts.",
            "Suggest a gift for a retiring teacher.",
            "Explain how vaccines train the immune system.",
        ]
    )
    plan = Plan(sampling=SamplingParams(), target=2, max_candidates=100, batch_size=3)
    tally = Tally()
    kept = generate_instructions(backend, SEEDS, SimilarityIndex(SEEDS), plan, rng=random.Random(1), tally=tally)
    assert len(kept) == 2 and tally.generated == 2 and tally.requests == 3
