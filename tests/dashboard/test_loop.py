"""Issue 17: the home page says where the loop stands and offers the one step that moves it on."""

from __future__ import annotations

from datetime import timedelta

import pytest

from app.auth.models import Role
from app.dashboard import loop
from app.db import utcnow
from app.jobs.models import JobStatus
from app.pool.models import PairStatus
from app.registry.models import ModelKind, ModelStatus
from tests.export.data import judged_pair
from tests.factories import JobFactory, ModelVersionFactory, UserFactory
from tests.helpers import log_in_as

FIRST = 4  # verdicts a first reward model needs, lowered so the test writes few rows


@pytest.fixture(autouse=True)
def _small(monkeypatch):
    monkeypatch.setattr(loop, "RECOMMENDED_EXAMPLES", FIRST)


def _verdicts(db, n: int, *, when=None) -> None:
    judge = UserFactory()
    for i in range(n):
        judged_pair(db, a=f"a{i}", b=f"b{i}", verdicts=[(judge, "a" if i % 2 else "b")], when=when)
    judged_pair(db, a="t", b="u", verdicts=[(judge, "tie")], when=when)  # a tie is no verdict for a reward model
    db.flush()


def test_each_state_of_the_loop_leads_to_its_step(db):
    assert loop.loop_status(db).step.key == "install"
    start = utcnow() - timedelta(hours=3)
    promoted = ModelVersionFactory(status=ModelStatus.promoted, created_at=start)
    _verdicts(db, FIRST - 1)
    status = loop.loop_status(db)
    assert (status.step.key, status.verdicts) == (
        "judge",
        FIRST - 1,
    ) and f"{FIRST - 1} of the ~{FIRST}" in status.step.why
    _verdicts(db, 1)
    assert loop.loop_status(db).step.href == "/dashboard/jobs/new/reward"
    reward = ModelVersionFactory(
        kind=ModelKind.reward,
        created_at=utcnow(),
        metrics={"val_accuracy": 0.75},
        config={"card": {"data": {"examples": 10}}},
    )
    status = loop.loop_status(db)
    assert (status.step.key, status.reward.id, status.reward_accuracy, status.verdicts_since_reward) == (
        "improve",
        reward.id,
        0.75,
        0,
    )
    assert status.step.href == "/dashboard/jobs/new/online_dpo"
    newer = ModelVersionFactory(parent_id=promoted.id, created_at=utcnow())
    status = loop.loop_status(db)
    assert (status.step.key, status.newer_policy.id) == ("compare", newer.id)
    _verdicts(db, FIRST + 1, when=utcnow() + timedelta(minutes=1))  # max(4, half of the 10 it was trained on) = 5
    assert loop.loop_status(db).step.key == "compare"  # a comparison is finished first
    newer.status = ModelStatus.archived
    db.flush()
    status = loop.loop_status(db)
    assert status.step.key == "reward" and "5 new verdicts since" in status.step.why


def test_a_newer_policy_is_compared_side_by_side_then_promoted(db):
    promoted = ModelVersionFactory(status=ModelStatus.promoted, created_at=utcnow() - timedelta(hours=2))
    ModelVersionFactory(kind=ModelKind.reward, created_at=utcnow() - timedelta(hours=1))
    newer = ModelVersionFactory(parent_id=promoted.id, name="policy-2", created_at=utcnow())
    step = loop.loop_status(db).step
    assert step.key == "compare" and step.href == (
        f"/dashboard/jobs/new/generate?pairs={loop.COMPARE_PAIRS}&cross_version_share=1&reason=compare"
    )
    judge = UserFactory()
    versions = (newer.id, promoted.id)

    # newer wins as A, wins as B, ties, loses: 2.5 of 4; both-bad says nothing; one pair still waits
    def judged(choice: str, sides: tuple = versions) -> None:
        judged_pair(db, verdicts=[(judge, choice)], versions=sides).status = PairStatus.complete

    for choice, sides in [("a", versions), ("b", versions[::-1]), ("tie", versions), ("b", versions)]:
        judged(choice, sides)
    judged("both_bad")
    waiting = judged_pair(db, verdicts=[], versions=versions)
    judged("a", (newer.id, None))  # not a side-by-side pair
    status = loop.loop_status(db)
    match = status.head_to_head
    assert (match.verdicts, match.newer_score, match.pending) == (4, 2.5, 1)
    assert (status.step.key, status.step.href) == ("judge_compare", "/annotate") and "1 pairs with" in status.step.why
    waiting.status = PairStatus.complete
    db.flush()
    step = loop.loop_status(db).step
    assert (step.key, step.title, step.href) == ("promote", "Promote policy-2", "/dashboard/models")
    assert "policy-2 won 62% of 4 side-by-side verdicts" in step.why
    judged("b")
    judged("b")
    step = loop.loop_status(db).step  # 2.5 of 6: not better
    assert step.title == "Review the comparison" and "keep the promoted one" in step.why


def test_researchers_see_the_loop_and_annotators_their_queue(client, db):
    ModelVersionFactory(status=ModelStatus.promoted)
    running = JobFactory(kind="reward", status=JobStatus.running, progress=0.5, progress_message="<b>epoch 1</b>")
    db.commit()
    log_in_as(client, "rex", Role.researcher)
    page = client.get("/")
    assert 'id="next-step" data-step="judge" href="/annotate"' in page.text
    assert f'href="/dashboard/jobs/{running.id}"' in page.text and "&lt;b&gt;epoch 1" in page.text
    log_in_as(client, "ann", Role.annotator)
    page = client.get("/")
    assert 'id="loop"' not in page.text and 'id="start-annotating"' in page.text
