"""What annotators tell apart (``app.pool.told_apart``): the decision model, k's widening, the verdicts read."""

from __future__ import annotations

import random

import numpy as np
import pytest

from app.annotation.models import Choice
from app.pool import told_apart
from app.pool.diverse import most_different
from app.pool.generate import usable
from app.pool.told_apart import STEER_CHANCE, DecisionModel, Verdicts, recent_verdicts, samples_per_prompt
from tests.factories import JudgementFactory

WORDS = [
    "water",
    "herbs",
    "towel",
    "fridge",
    "basil",
    "jar",
    "leaves",
    "stems",
    "cold",
    "dry",
    "wrap",
    "keep",
    "store",
    "fresh",
    "damp",
    "days",
    "week",
]


def _sentence(rng: random.Random) -> str:
    return " ".join(rng.choice(WORDS) for _ in range(rng.randint(6, 12))).capitalize() + "."


def _exclaimed(text: str) -> str:
    return text[:-1] + "!"


def _verdicts(rng: random.Random, decided: int, tied: int) -> Verdicts:
    """A taste for exclamations: pairs where one answer exclaims were decided, the rest tied."""
    return Verdicts(
        decided=[(_exclaimed(_sentence(rng)), _sentence(rng)) for _ in range(decided)],
        tied=[(_sentence(rng), _sentence(rng)) for _ in range(tied)],
    )


def test_the_model_learns_which_difference_gets_decided():
    rng = random.Random(0)
    model = DecisionModel.fit(_verdicts(rng, decided=8, tied=150))
    assert model is not None
    exclaiming = model.chances([(_sentence(rng), _exclaimed(_sentence(rng))) for _ in range(40)])
    plain = model.chances([(_sentence(rng), _sentence(rng)) for _ in range(40)])
    assert exclaiming.min() > plain.max()  # every new pair with the difference ranks above every pair without
    assert exclaiming.mean() > 0.5 > plain.mean()


@pytest.mark.parametrize(
    ("decided", "tied", "why"),
    [(2, 100, "too few decided pairs"), (8, 10, "too few ties"), (60, 50, "ties are not the majority")],
)
def test_no_model_without_the_evidence_or_the_need(decided, tied, why):
    assert DecisionModel.fit(_verdicts(random.Random(1), decided, tied)) is None, why


def test_pair_chances_is_a_symmetric_matrix_with_a_zero_diagonal():
    rng = random.Random(2)
    model = DecisionModel.fit(_verdicts(rng, decided=8, tied=100))
    group = [_sentence(rng), _sentence(rng), _exclaimed(_sentence(rng)), _sentence(rng)]
    matrix = model.pair_chances(group)
    assert matrix.shape == (4, 4) and np.allclose(matrix, matrix.T) and not matrix.diagonal().any()
    assert matrix[2].sum() > matrix[0].sum()  # the exclaiming sample's pairs are the likely decided ones


def test_a_group_is_steered_only_where_it_holds_a_pair_the_model_expects_decided():
    """Every prompt whose samples hold the difference gets it paired; the others are left to the plain
    most-different choice (None), so they still explore."""
    rng = random.Random(3)
    model = DecisionModel.fit(_verdicts(rng, decided=8, tied=100))
    with_trait = [_sentence(rng), _exclaimed(_sentence(rng)), _sentence(rng), _sentence(rng)]
    without = [_sentence(rng) for _ in range(4)]
    steered = model.steering(with_trait)
    assert steered is not None and steered.max() >= STEER_CHANCE
    best = np.unravel_index(np.argmax(steered), steered.shape)
    assert 1 in best  # the pick pairs the exclaiming sample
    assert model.pair_chances(without).max() < STEER_CHANCE and model.steering(without) is None
    assert model.steering(with_trait[:1]) is None  # one sample makes no pair


def test_chances_outrank_difference_in_the_pick():
    group = ["Keep them cold.", "Keep them cold!", "Wrap the basil stems in a damp towel for a week."]
    plain = most_different([group], usable)
    assert plain[0][1] == 2  # the plain choice pairs the long answer with one of the short ones
    chances = np.zeros((3, 3))
    chances[0, 1] = chances[1, 0] = 0.9
    assert most_different([group], usable, chances=[chances]) == [(0, 1)]
    assert most_different([group], usable, chances=[None]) == plain


@pytest.mark.parametrize(
    ("tied", "decided", "base", "k"),
    [
        (95, 5, 4, 8),
        (90, 10, 4, 8),
        (89, 11, 4, 4),
        (95, 5, 12, 16),
        (95, 5, 16, 16),
        (10, 0, 4, 4),  # too few verdicts to say
        (10, 90, 4, 4),  # one in ten ties: k stays
        (9, 91, 4, 2),
        (0, 100, 4, 2),
        (0, 100, 8, 4),
        (0, 100, 3, 2),
        (0, 100, 2, 2),
        (0, 19, 4, 4),
    ],
)
def test_k_doubles_while_nine_in_ten_verdicts_are_ties_and_halves_while_fewer_than_one_in_ten_are(
    tied, decided, base, k
):
    verdicts = Verdicts(decided=[("a", "b")] * decided, tied=[("a", "b")] * tied)
    assert samples_per_prompt(base, verdicts) == k


def test_recent_verdicts_splits_the_latest_by_whether_a_side_was_chosen(db):
    JudgementFactory(choice=Choice.a, pair__response_a__text="Old one.", pair__response_b__text="Old two.")
    for n, choice in enumerate([Choice.tie, Choice.b, Choice.both_bad, Choice.a]):
        JudgementFactory(choice=choice, pair__response_a__text=f"A{n}", pair__response_b__text=f"B{n}")
    JudgementFactory(choice=Choice.b, pair__gold_kind="obvious")  # the project's check, not a taste
    db.flush()

    verdicts = recent_verdicts(db, limit=4)

    assert verdicts.decided == [("A3", "B3"), ("A1", "B1")]  # newest first; the oldest is past the limit
    assert verdicts.tied == [("A2", "B2"), ("A0", "B0")]  # a tie and "both bad" choose no side
    assert verdicts.tie_share == 0.5 and told_apart.RECENT >= 400
