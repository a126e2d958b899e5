"""The overview's counts and its judgements-per-day series (UTC days, zero-filled)."""

from __future__ import annotations

from datetime import UTC, date, datetime

from app.dashboard.overview import judgements_per_day, overview
from app.pool.models import PairStatus
from tests.export.data import judged_pair
from tests.factories import UserFactory


def test_judgements_per_day_counts_utc_days_and_fills_gaps(db):
    ann = UserFactory()
    judged_pair(db, verdicts=[(ann, "a")], when=datetime(2024, 3, 1, 23, 59, 59, tzinfo=UTC))
    judged_pair(db, verdicts=[(ann, "a"), (UserFactory(), "b")], when=datetime(2024, 3, 3, 0, 0, 1, tzinfo=UTC))
    series = judgements_per_day(db, days=4, today=date(2024, 3, 3))
    assert series == [("2024-02-29", 0), ("2024-03-01", 1), ("2024-03-02", 0), ("2024-03-03", 2)]


def test_counts(db):
    active, gone = UserFactory(), UserFactory(is_active=False)
    done = judged_pair(db, verdicts=[(active, "a"), (gone, "b")])
    done.status = PairStatus.complete
    judged_pair(db, verdicts=[(active, "tie")])
    judged_pair(db, verdicts=[(active, "a")], when=datetime(2020, 1, 1, tzinfo=UTC))
    figures = overview(db, pool_target=4)
    assert (figures.pairs_pending, figures.pairs_done, figures.judgements_total, figures.judgements_today) == (
        2,
        1,
        4,
        3,
    )
    assert figures.active_annotators == 1  # the deactivated account and old judgements do not count
    assert figures.pool_fill == 0.5 and figures.prompts >= 3 and len(figures.series) == 30
    assert overview(db, pool_target=0).pool_fill is None
