"""The dashboard's front page: how much data there is and how fast it grows."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

from sqlalchemy import distinct, func, select
from sqlalchemy.orm import Session

from app.annotation.models import Judgement
from app.auth.models import User
from app.db import utcnow
from app.pool.models import Pair, PairStatus
from app.prompts.models import Prompt

ACTIVE_DAYS = 7  # an annotator who judged within this many days is active
SERIES_DAYS = 30  # days shown in the judgements-over-time plot


@dataclass(frozen=True)
class Overview:
    prompts: int
    pairs_pending: int
    pairs_done: int
    judgements_today: int
    judgements_total: int
    active_annotators: int
    pool_target: int
    series: list[tuple[str, int]]  # (ISO day, judgements that day), oldest first, every day present

    @property
    def pool_fill(self) -> float | None:
        """Pending pairs as a share of the pool's target (capped at 1); None without a target."""
        return min(self.pairs_pending / self.pool_target, 1.0) if self.pool_target else None


def _count(db: Session, query: Any) -> int:
    return db.scalar(query) or 0


def _day_column(db: Session) -> Any:
    """The UTC calendar day of a judgement, in the database's own dialect."""
    if db.get_bind().dialect.name == "postgresql":
        return func.date(func.timezone("UTC", Judgement.created_at))
    return func.date(Judgement.created_at)  # SQLite stores UTC text


def judgements_per_day(db: Session, *, days: int = SERIES_DAYS, today: date | None = None) -> list[tuple[str, int]]:
    """Judgements per UTC day over the last ``days`` days, zero-filled."""
    today = today or utcnow().date()
    start = today - timedelta(days=days - 1)
    day = _day_column(db)
    since = datetime.combine(start, datetime.min.time(), tzinfo=UTC)
    rows = db.execute(select(day, func.count()).where(Judgement.created_at >= since).group_by(day))
    counts = {str(d): n for d, n in rows}
    return [
        ((start + timedelta(days=i)).isoformat(), counts.get((start + timedelta(days=i)).isoformat(), 0))
        for i in range(days)
    ]


def overview(db: Session, *, pool_target: int) -> Overview:
    now = utcnow()
    midnight = datetime.combine(now.date(), datetime.min.time(), tzinfo=UTC)
    active_since = now - timedelta(days=ACTIVE_DAYS)
    active = (
        select(func.count(distinct(Judgement.annotator_id)))
        .join(User, User.id == Judgement.annotator_id)
        .where(Judgement.created_at >= active_since, User.is_active.is_(True))
    )
    return Overview(
        prompts=_count(db, select(func.count()).select_from(Prompt).where(Prompt.retired.is_(False))),
        pairs_pending=_count(db, select(func.count()).select_from(Pair).where(Pair.status == PairStatus.pending)),
        pairs_done=_count(db, select(func.count()).select_from(Pair).where(Pair.status == PairStatus.complete)),
        judgements_today=_count(
            db, select(func.count()).select_from(Judgement).where(Judgement.created_at >= midnight)
        ),
        judgements_total=_count(db, select(func.count()).select_from(Judgement)),
        active_annotators=_count(db, active),
        pool_target=pool_target,
        series=judgements_per_day(db, today=now.date()),
    )
