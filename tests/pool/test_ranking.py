"""Active learning's queue order (issue 16): uncertainty on hand-computed numbers, the rank_pairs job, the
uncertain order in the assignment query, and the periodic task that asks for a ranking."""

from __future__ import annotations

import math

import pytest
from sqlalchemy import select

from app.annotation import assignment as assignments
from app.finetune.core import scoring
from app.finetune.reward import ranking
from app.jobs.models import Job, JobStatus
from app.registry.models import ModelKind, ModelStatus
from app.training.reward.uncertainty import most_uncertain, uncertainty, win_probability
from tests.export.data import judged_pair
from tests.factories import ModelVersionFactory, UserFactory
from tests.helpers import run_job


class TestUncertainty:
    def test_hand_computed(self):
        assert uncertainty(0.0, 0.0) == pytest.approx(1.0)  # a coin toss
        p = 1 / (1 + math.exp(-2.0))  # σ(2) = 0.880797
        assert uncertainty(3.0, 1.0) == pytest.approx(4 * p * (1 - p)) == pytest.approx(0.419974, abs=1e-6)
        assert uncertainty(1.0, 3.0) == pytest.approx(uncertainty(3.0, 1.0))  # the sides do not matter
        assert uncertainty(1.0, 3.0, disputed=True) == pytest.approx(1.419974, abs=1e-6)
        assert win_probability(-800.0, 800.0) == 0.0 and win_probability(800.0, -800.0) == 1.0  # no overflow

    def test_most_uncertain_first_and_reproducible(self):
        assert most_uncertain([0.0, 5.0, 1.0, 0.2], [0.0, 0.0, 0.0, 0.0], 3) == [0, 3, 2]
        assert most_uncertain([1.0, 2.0], [1.0, 2.0], 5) == [0, 1]  # equal: lower index first


class LengthScorer:
    """Scores an answer by its length: equal lengths are a coin toss to it."""

    def score(self, pairs):
        return [float(len(text)) for _, text in pairs]


@pytest.fixture()
def reward_model(db, monkeypatch):
    monkeypatch.setattr(scoring, "scorer_of", lambda version: LengthScorer())
    return ModelVersionFactory(name="rm-rank", kind=ModelKind.reward, status=ModelStatus.ready)


def _pending_pairs(db):
    even = judged_pair(db, a="same size", b="size same")  # the model cannot tell: priority 1
    clear = judged_pair(db, a="a", b="a much, much longer answer")  # a gap of 25: priority ≈ 0
    disputed = judged_pair(db, a="x", b="a longer one", verdicts=[(UserFactory(), "a"), (UserFactory(), "b")])
    disputed.judgements_needed = 3  # still pending, and the two so far disagree
    db.commit()
    return even, clear, disputed


def test_the_job_ranks_pending_pairs_by_the_newest_reward_model(db, session_factory, settings, reward_model):
    even, clear, disputed = _pending_pairs(db)
    job = run_job(db, session_factory, settings, kind="rank_pairs")
    assert job.status is JobStatus.succeeded, job.error
    assert job.result == {"ranked": 3, "reward_version_id": reward_model.id, "disputed": 1}
    for pair in (even, clear, disputed):
        db.refresh(pair)
        assert pair.ranked_by_id == reward_model.id
    assert even.priority == pytest.approx(1.0)
    assert clear.priority == pytest.approx(uncertainty(1.0, 26.0)) and clear.priority < 1e-9
    assert disputed.priority == pytest.approx(1.0 + uncertainty(1.0, 12.0))
    assert ranking.needs_ranking(db) is None  # all ranked by the newest
    newer = ModelVersionFactory(kind=ModelKind.reward, status=ModelStatus.ready)
    assert ranking.needs_ranking(db).id == newer.id  # a newer reward model ranks them again


def test_the_uncertain_order_serves_the_highest_priority_first(db, settings):
    oldest = judged_pair(db)
    middle = judged_pair(db)
    unsure = judged_pair(db)
    oldest.priority, middle.priority, unsure.priority = 0.1, 0.5, 0.9
    db.commit()
    by_age = assignments.next_pair(db, settings, user=UserFactory())
    assert by_age.pair.id == oldest.id
    uncertain = settings.model_copy(update={"queue_order": "uncertain"})
    assert [assignments.next_pair(db, uncertain, user=UserFactory()).pair.id for _ in range(2)] == [
        unsure.id,
        middle.id,  # the oldest is leased to the first annotator
    ]


def test_the_periodic_task_asks_for_one_ranking_only_in_the_uncertain_order(db, settings, reward_model):
    _pending_pairs(db)
    kinds = lambda: db.scalars(select(Job).where(Job.kind == "rank_pairs")).all()
    ranking.rank_when_needed(db, settings)
    assert kinds() == []  # the default order needs no ranking
    uncertain = settings.model_copy(update={"queue_order": "uncertain"})
    ranking.rank_when_needed(db, uncertain)
    ranking.rank_when_needed(db, uncertain)
    queued = kinds()
    assert len(queued) == 1 and queued[0].params["reward_version_id"] == reward_model.id


def test_without_a_reward_model_the_job_ranks_nothing(db, session_factory, settings):
    _pending_pairs(db)
    job = run_job(db, session_factory, settings, kind="rank_pairs")
    assert job.status is JobStatus.succeeded and job.result["ranked"] == 0
