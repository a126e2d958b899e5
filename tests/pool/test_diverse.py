"""The pool's choice of the two most different samples of a prompt."""

from __future__ import annotations

from app.pool.diverse import most_different
from app.pool.generate import usable


def test_the_sample_with_a_rare_trait_is_paired() -> None:
    plain = [
        "The capital of France is Paris, a city on the Seine.",
        "Paris is the capital of France, on the river Seine.",
        "The capital of France is Paris, which lies on the Seine.",
    ]
    odd = "Paris! Did you know?\n1. Seine\n2. Louvre"
    for position in range(4):  # wherever the odd one is drawn
        group = [*plain[:position], odd, *plain[position:]]
        (pick,) = most_different([group], usable)
        assert pick is not None and position in pick


def test_unusable_pairs_are_never_chosen() -> None:
    group = ["Same answer.", "same  answer.", "   ", "A different, longer answer with 42 in it?"]
    (pick,) = most_different([group], usable)
    assert pick is not None
    a, b = group[pick[0]], group[pick[1]]
    assert usable(a, b)
    assert 3 in pick


def test_a_group_without_a_usable_pair_gives_none() -> None:
    picks = most_different([["Yes.", "yes."], ["", "  "], ["One.", "Two."]], usable)
    assert picks[0] is None and picks[1] is None
    assert picks[2] == (0, 1)


def test_the_choice_is_reproducible_and_ordered() -> None:
    groups = [["alpha beta", "beta gamma", "gamma delta", "delta alpha"], ["x y", "x z"]]
    first = most_different(groups, usable)
    assert first == most_different(groups, usable)
    assert all(p is not None and p[0] < p[1] for p in first)


def test_how_an_answer_ends_counts() -> None:
    """Answers alike but for their close: the one that ends with a question is paired (the end mark makes
    the close an n-gram of its own)."""
    group = [
        "Paris is the capital of France and a lovely city to visit.",
        "Paris is the capital of France and a lovely place to visit.",
        "Paris is the capital of France and a lovely town to visit.",
        "Paris is the capital of France and a lovely city, want to visit?",
    ]
    (pick,) = most_different([group], usable)
    assert pick is not None and 3 in pick


def test_complete_answers_are_preferred_over_cut_off_ones() -> None:
    """The most different pair has a cut-off answer; a pair of two complete answers wins over it, and with
    only one complete answer the pair keeps it."""
    group = [
        "Paris is the capital of France.",
        "The capital of France is Paris, on the Seine.",
        "Well, you see, the thing about capitals is that they can be",
        "Paris.",
    ]
    (unmarked,) = most_different([group], usable)
    (both,) = most_different([group], usable, [[True, True, False, True]])
    assert both is not None and 2 not in both
    assert unmarked is not None and 2 in unmarked  # the cut-off one is the odd one out by text alone
    (one,) = most_different([group], usable, [[False, True, False, False]])
    assert one is not None and 1 in one
