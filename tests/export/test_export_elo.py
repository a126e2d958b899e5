"""The table exports' Elo columns: each answer rated among its prompt's answers over every judgement the
filters select, on the hand-worked three-response example (tests/ratings), whatever rows are written."""

from __future__ import annotations

from datetime import UTC, date, datetime
from types import SimpleNamespace

import pytest
from sqlalchemy import select

from app.annotation.models import Judgement
from app.export import query
from app.export.elo import rate
from app.ratings.elo import elo_rewards
from tests.export.data import rated_prompt
from tests.export.test_export_service import run

# Elo and its per-prompt reward of x, y, z after x beats y, y beats z, x ties z
X, Y, Z = (1014.4968829, 0.5208506), (1000.7363068, 0.5010596), (984.7668103, 0.4780917)


def columns(row: dict[str, str]) -> tuple[tuple[float, float], tuple[float, float]]:
    """((elo, reward) of A, (elo, reward) of B) of a CSV row."""
    return (float(row["elo_a"]), float(row["elo_reward_a"])), (float(row["elo_b"]), float(row["elo_reward_b"]))


@pytest.mark.parametrize("settings", [{}, {"ties": "keep"}, {"aggregation": "majority", "ties": "keep"}])
def test_each_row_rates_both_answers_among_their_prompts(db, tmp_path, monkeypatch, settings):
    monkeypatch.setattr(query, "BATCH", 2)  # games and rows both read across chunks
    _, _, (xy, yz, xz) = rated_prompt(db)
    rows, _ = run(db, tmp_path, format="csv", **settings)
    by_pair = {int(row["pair_id"]): columns(row) for row in rows}
    assert by_pair[xy.id] == (pytest.approx(X, abs=1e-6), pytest.approx(Y, abs=1e-6))
    assert by_pair[yz.id] == (pytest.approx(Y, abs=1e-6), pytest.approx(Z, abs=1e-6))
    if "ties" in settings:
        assert by_pair[xz.id] == (pytest.approx(X, abs=1e-6), pytest.approx(Z, abs=1e-6))
    else:
        assert xz.id not in by_pair  # the tie's row is dropped (the default), its game still counted above


def test_no_game_no_rating(db, tmp_path):
    _, _, (lonely,) = rated_prompt(db, [("u", "v", "both_bad")])
    rows, _ = run(db, tmp_path, format="csv", both_bad="keep")
    [row] = [row for row in rows if int(row["pair_id"]) == lonely.id]
    assert [row[c] for c in ("elo_a", "elo_b", "elo_reward_a", "elo_reward_b")] == ["", "", "", ""]


def test_the_filters_choose_the_games(db, tmp_path):
    _, _, (xy, yz, xz) = rated_prompt(db)
    db.get(Judgement, db.scalar(select(Judgement.id).where(Judgement.pair_id == xy.id))).created_at = datetime(
        2024, 1, 1, tzinfo=UTC
    )
    db.flush()
    rows, _ = run(db, tmp_path, format="csv", ties="keep", date_from=date(2024, 1, 2).isoformat())
    by_pair = {int(row["pair_id"]): columns(row) for row in rows}
    # without x–y: y beats z at 1000–1000 → y 1016, z 984; x ties z at 1000–984: E_x = 1 / (1 + 10^(−16/400))
    # = 0.5230096, Δ = 32·(½ − 0.5230096) = −0.7363068 → x 999.2636932, z 984.7363068. Mean 1000, so the
    # rewards are 1 / (1 + 10^((1000 − R)/400)): y 0.5230096, x 1 / (1 + 1.0042475) = 0.4989404,
    # z 1 / (1 + 1.0918406) = 0.4780479
    assert xy.id not in by_pair
    (y, z), (x, z_again) = by_pair[yz.id], by_pair[xz.id]
    assert z == z_again
    assert y == pytest.approx((1016.0, 0.5230096), abs=1e-6)
    assert x == pytest.approx((999.2636932, 0.4989404), abs=1e-6)
    assert z == pytest.approx((984.7363068, 0.4780479), abs=1e-6)


def test_parquet_has_the_columns_typed(db, tmp_path):
    import pyarrow.parquet as pq

    _, _, (xy, _, _) = rated_prompt(db)
    _, result = run(db, tmp_path, format="parquet")
    table = pq.read_table(tmp_path / "out" / result["file"]).to_pylist()
    [row] = [row for row in table if row["pair_id"] == xy.id]
    assert (row["elo_a"], row["elo_reward_a"]) == pytest.approx(X, abs=1e-6)
    assert (row["elo_b"], row["elo_reward_b"]) == pytest.approx(Y, abs=1e-6)


def test_interleaved_prompts_are_rated_each_in_its_own_order() -> None:
    """Games of two prompts read interleaved (by judgement id) rate as each prompt's games alone."""
    p = [(1, 2, "a"), (2, 3, "a"), (1, 3, "tie")]
    q = [(7, 8, "b"), (8, 9, "tie"), (7, 9, "both_bad"), (9, 7, "a")]
    games = [("p", *p[0]), ("q", *q[0]), ("q", *q[1]), ("p", *p[1]), ("q", *q[2]), ("p", *p[2]), ("q", *q[3])]
    rows = [SimpleNamespace(prompt_id=ord(k), response_a_id=a, response_b_id=b, choice=c) for k, a, b, c in games]
    rated = rate(rows)
    expected = {**elo_rewards(p, lambda _: 0), **elo_rewards(q, lambda _: 0)}
    assert rated.ids.tolist() == sorted(expected)
    for response, (rating, reward) in expected.items():
        assert rated.of(response) == (rating, reward)
    assert rated.of(4) == (None, None)
