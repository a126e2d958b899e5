"""Elo over responses against games worked out by hand."""

import random

import pytest

from app.ratings.elo import (
    Game,
    OnlineElo,
    elo_ratings,
    elo_update,
    expected_score,
    game_score,
    normalise_per_prompt,
)


def test_expected_score() -> None:
    assert expected_score(1000, 1000) == 0.5
    # 1200 vs 1000: 1 / (1 + 10^(−200/400)) = 1 / (1 + 0.3162278) = 0.7597469
    assert expected_score(1200, 1000) == pytest.approx(0.7597469, abs=1e-7)
    assert expected_score(1000, 1200) == pytest.approx(1 - 0.7597469, abs=1e-7)


def test_elo_update_equal_ratings_win() -> None:
    # E = ½, K = 32: the winner gains 32·(1 − ½) = 16, the loser gives them up
    assert elo_update(1000, 1000, 1.0) == (1016.0, 984.0)


def test_elo_update_favourite_loses_and_draws() -> None:
    # E_a = 0.7597469; a loss moves 32·0.7597469 = 24.3119 points to the underdog
    a, b = elo_update(1200, 1000, 0.0)
    assert (a, b) == (pytest.approx(1175.6881, abs=1e-4), pytest.approx(1024.3119, abs=1e-4))
    # a tie moves 32·(0.7597469 − ½) = 8.3119 points
    a, b = elo_update(1200, 1000, 0.5)
    assert (a, b) == (pytest.approx(1191.6881, abs=1e-4), pytest.approx(1008.3119, abs=1e-4))


def test_game_scores() -> None:
    assert [game_score("a"), game_score("b"), game_score("tie")] == [1.0, 0.0, 0.5]
    assert game_score("both_bad") is None
    assert game_score("both_bad", both_bad="tie") == 0.5
    with pytest.raises(ValueError):
        game_score("maybe")  # type: ignore[arg-type]


def test_online_elo_plays_games_in_order_and_skips_both_bad() -> None:
    elo = OnlineElo(k=32, initial=1000)
    assert elo.record("r1", "r2", "a")  # 1016 / 984
    assert elo.record("r1", "r3", "tie")
    # r1 (1016) ties r3 (1000): E = 1 / (1 + 10^(−16/400)) = 1 / (1 + 0.9120108) = 0.5230096
    # Δ = 32·(0.5 − 0.5230096) = −0.7363; r1 = 1015.2637, r3 = 1000.7363
    assert elo.rating("r1") == pytest.approx(1015.2637, abs=1e-4)
    assert elo.rating("r3") == pytest.approx(1000.7363, abs=1e-4)
    before = dict(elo.ratings)
    assert not elo.record("r2", "r3", "both_bad")
    assert elo.ratings == before
    assert elo.games == {"r1": 2, "r2": 1, "r3": 1}
    # zero-sum: the mean stays at the initial rating
    assert sum(elo.ratings.values()) == pytest.approx(3000.0)
    assert elo.rating("never-played") == 1000


def test_both_bad_as_tie_when_asked() -> None:
    ratings = elo_ratings([Game("x", "y", "a"), ("x", "y", "both_bad")], both_bad="tie")
    # after x wins: 1016 / 984; the tie: E = 1 / (1 + 10^(−32/400)) = 1 / 1.8317638 = 0.5459221,
    # Δ = 32·(0.5 − 0.5459221) = −1.4695; x = 1014.5305, y = 985.4695
    assert ratings["x"] == pytest.approx(1014.5305, abs=1e-4)
    assert ratings["y"] == pytest.approx(985.4695, abs=1e-4)


def test_a_response_cannot_play_itself() -> None:
    with pytest.raises(ValueError):
        OnlineElo().record("r1", "r1", "a")


def test_normalise_logistic_per_prompt() -> None:
    ratings = {"a": 1100.0, "b": 1000.0, "c": 900.0, "d": 1234.0}
    prompt_of = {"a": "p1", "b": "p1", "c": "p1", "d": "p2"}
    rewards = normalise_per_prompt(ratings, prompt_of)
    # p1's mean is 1000; a: 1 / (1 + 10^(−100/400)) = 1 / (1 + 0.5623413) = 0.6400650
    assert rewards["a"] == pytest.approx(0.6400650, abs=1e-7)
    assert rewards["b"] == pytest.approx(0.5)
    assert rewards["c"] == pytest.approx(1 - 0.6400650, abs=1e-7)
    # a prompt with one response is average by definition, whatever its rating
    assert rewards["d"] == pytest.approx(0.5)


def test_normalise_minmax_per_prompt() -> None:
    ratings = {"a": 1100.0, "b": 1000.0, "c": 900.0, "d": 1234.0, "e": 1234.0}
    prompt_of = {"a": "p1", "b": "p1", "c": "p1", "d": "p2", "e": "p2"}
    rewards = normalise_per_prompt(ratings, prompt_of, method="minmax")
    # p1 spans 900..1100: (1100 − 900)/200 = 1, (1000 − 900)/200 = ½, 0; p2 is flat: ½ each
    assert rewards == {"a": 1.0, "b": 0.5, "c": 0.0, "d": 0.5, "e": 0.5}


def test_normalised_rewards_stay_in_unit_interval() -> None:
    rng = random.Random(7)
    elo = OnlineElo(k=64)
    responses = [f"r{i}" for i in range(40)]
    prompt_of = {r: f"p{i % 5}" for i, r in enumerate(responses)}
    for _ in range(2000):
        a, b = rng.sample(responses, 2)
        if prompt_of[a] == prompt_of[b]:
            elo.record(a, b, rng.choice(["a", "b", "tie", "both_bad"]))
    for method in ("logistic", "minmax"):
        rewards = normalise_per_prompt(elo.ratings, prompt_of, method=method)
        assert set(rewards) == set(elo.ratings)
        assert all(0.0 <= value <= 1.0 for value in rewards.values())
    minmax = normalise_per_prompt(elo.ratings, prompt_of, method="minmax")
    assert min(minmax.values()) == 0.0 and max(minmax.values()) == 1.0
    with pytest.raises(ValueError):
        normalise_per_prompt(elo.ratings, prompt_of, method="zscore")  # type: ignore[arg-type]


def test_three_responses_of_one_prompt_by_hand() -> None:
    """The issue's acceptance example: x beats y, y beats z, x ties z (K 32, scale 400, start 1000)."""
    ratings = elo_ratings([("x", "y", "a"), ("y", "z", "a"), ("x", "z", "tie")], k=32, scale=400, initial=1000)
    # 1. x–y at 1000–1000: E_x = ½, Δ = 32·(1 − ½) = 16                 → x 1016, y 984
    # 2. y–z at 984–1000: E_y = 1 / (1 + 10^(16/400)) = 1 / (1 + 1.0964782) = 0.4769904,
    #    Δ = 32·(1 − 0.4769904) = 16.7363068                            → y 1000.7363068, z 983.2636932
    # 3. x–z at 1016–983.2636932, a tie: E_x = 1 / (1 + 10^(−32.7363068/400)) = 1 / (1 + 0.8282458)
    #    = 0.5469724, Δ = 32·(½ − 0.5469724) = −1.5031171                → x 1014.4968829, z 984.7668103
    assert ratings["x"] == pytest.approx(1014.4968829, abs=1e-6)
    assert ratings["y"] == pytest.approx(1000.7363068, abs=1e-6)
    assert ratings["z"] == pytest.approx(984.7668103, abs=1e-6)
    assert sum(ratings.values()) == pytest.approx(3000.0)  # zero-sum: the prompt's mean stays 1000

    # per prompt (logistic): the expected score against the prompt's mean, 1000
    # x: 1 / (1 + 10^(−14.4968829/400)) = 1 / (1 + 0.9199364) = 0.5208506
    # y: 1 / (1 + 10^(−0.7363068/400)) = 1 / (1 + 0.9957704) = 0.5010596
    # z: 1 / (1 + 10^(15.2331897/400)) = 1 / (1 + 1.0916489) = 0.4780917
    rewards = normalise_per_prompt(ratings, {"x": "p", "y": "p", "z": "p"})
    assert rewards["x"] == pytest.approx(0.5208506, abs=1e-6)
    assert rewards["y"] == pytest.approx(0.5010596, abs=1e-6)
    assert rewards["z"] == pytest.approx(0.4780917, abs=1e-6)
