"""Acceptance 4: the PPO job's new policy is promoted through the API; the pool retires the old policy's
pairs and refills with cross-version pairs (new vs old); an annotator judges them through the annotation
API; the leaderboard API rates both versions by Bradley–Terry from those judgements."""

from __future__ import annotations

from sqlalchemy import select

from app.auth.models import Role
from app.jobs.models import Job, JobStatus
from app.pool.models import Pair, PairStatus
from app.registry.models import ModelStatus
from tests.helpers import run_job
from tests.ppo.conftest import TINY_PPO, seed_loop
from tests.rewards.conftest import bearer

LABELS = {"A": {"quality": "good", "safety": "safe"}, "B": {"quality": "good", "safety": "safe"}}


def judge_all_by_length(client, headers: dict[str, str]) -> int:
    """The simulated annotator: the shorter response wins, equal lengths tie. Returns how many it judged."""
    judged = 0
    while (shown := client.get("/api/v1/annotation/next", headers=headers)).status_code == 200:
        body = shown.json()
        a, b = len(body["responses"]["A"]), len(body["responses"]["B"])
        choice = "tie" if a == b else ("A" if a < b else "B")
        verdict = {
            "assignment_id": body["assignment_id"],
            "choice": choice,
            "labels": LABELS,
            **({"strength": 2} if choice != "tie" else {}),
        }
        stored = client.post("/api/v1/annotation/judgements", json=verdict, headers=headers)
        assert stored.status_code == 201, stored.text
        judged += 1
    assert shown.status_code == 204
    return judged


def test_promoting_the_ppo_policy_brings_cross_version_pairs_and_ratings_for_both(
    client, db, session_factory, pool_settings, tiny_backbone, scorer_folders
):
    settings = pool_settings.model_copy(update={"pool_cross_version_share": 1.0})
    client.app.state.settings = settings
    old, _, _ = seed_loop(db, tiny_backbone, scorer_folders["reward"])
    db.commit()
    trained = run_job(db, session_factory, settings, kind="ppo", params={**TINY_PPO, "updates": 1})
    assert trained.status is JobStatus.succeeded, trained.error
    new_id = trained.result["version_id"]
    researcher = bearer(db, Role.researcher)

    promoted = client.post(f"/api/v1/models/{new_id}/promote", headers=researcher)

    assert promoted.status_code == 200, promoted.text
    assert promoted.json()["previous_id"] == old.id and promoted.json()["promoted"]["status"] == "promoted"
    db.refresh(old)
    assert old.status is ModelStatus.ready
    refill = db.get(Job, promoted.json()["generate_job_id"])
    done = run_job(db, session_factory, settings, job_id=refill.id, kind="generate")
    assert done.status is JobStatus.succeeded, done.error
    pairs = list(db.scalars(select(Pair).where(Pair.created_by_job_id == refill.id)))
    assert len(pairs) == settings.pool_target and all(p.cross_version for p in pairs)
    assert {(p.response_a.policy_version_id, p.response_b.policy_version_id) for p in pairs} == {(new_id, old.id)}

    judged = judge_all_by_length(client, bearer(db, Role.annotator))

    assert judged == len(pairs)
    for pair in pairs:
        db.refresh(pair)
        assert pair.status is PairStatus.complete
    board = client.get("/api/v1/dashboard/leaderboard", headers=researcher)
    assert board.status_code == 200, board.text
    body = board.json()
    assert body["battles"] == judged
    assert {row["version_id"] for row in body["rows"]} == {old.id, new_id}
    assert all(row["battles"] == judged and row["lower"] <= row["rating"] <= row["upper"] for row in body["rows"])
    # The observed win rate of new over old is what the rule decided on the stored texts (ties half).
    new_scores = [
        1.0
        if len(p.response_a.text) < len(p.response_b.text)
        else 0.5
        if len(p.response_a.text) == len(p.response_b.text)
        else 0.0
        for p in pairs
    ]
    order = [row["version_id"] for row in body["rows"]]
    rate = body["win_rates"][order.index(new_id)][order.index(old.id)]
    assert abs(rate - sum(new_scores) / judged) < 1e-9
    ratings = {row["version_id"]: row["rating"] for row in body["rows"]}
    assert (ratings[new_id] > ratings[old.id]) == (
        rate > 0.5
    ) or rate == 0.5  # the version preferred more is rated higher
