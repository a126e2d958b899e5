"""One prompt's responses rated by online Elo and by the Bradley–Terry fit, on the hand-worked example."""

import math

import pytest

from app.ratings.responses import rate_responses

# x beats y, y beats z, x ties z; then a both-bad verdict, which is no game
GAMES = [("x", "y", "a"), ("y", "z", "a"), ("x", "z", "tie"), ("x", "y", "both_bad")]


def test_elo_reward_and_bt_of_three_responses() -> None:
    rows = rate_responses(GAMES)
    assert [row.response for row in rows] == ["x", "y", "z"]  # best Elo first
    assert [row.games for row in rows] == [2, 2, 2]  # both-bad skipped
    # Elo and its reward as worked out in test_elo.test_three_responses_of_one_prompt_by_hand
    assert [row.elo for row in rows] == pytest.approx([1014.4968829, 1000.7363068, 984.7668103], abs=1e-6)
    assert [row.reward for row in rows] == pytest.approx([0.5208506, 0.5010596, 0.4780917], abs=1e-6)
    # BT: the MLE matches each model's expected score to its actual score. By symmetry θ_y = 0 and
    # θ_x = −θ_z = t, where σ(t) + σ(2t) = 3/2 (x's 1 + ½); with u = e^t that is u³ − u² − u − 3 = 0,
    # u = 2.1303954, t = ln u = 0.7563076, i.e. 400/ln 10 · t = 131.384 Elo points from the mean, 1000
    t = math.log(2.1303954)
    assert t == pytest.approx(0.7563076, abs=1e-7)
    assert [row.bt for row in rows] == pytest.approx([1131.384, 1000.0, 868.616], abs=0.01)


def test_no_game_no_rating() -> None:
    assert rate_responses([("x", "y", "both_bad")]) == []
    assert rate_responses([]) == []
