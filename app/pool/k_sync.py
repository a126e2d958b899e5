"""A prompt set's k (judgements each pair needs) holds for its pairs already waiting, not only for new ones.

k is copied onto each pair when the pool makes it (the serving query reads it from the pair, not from the
set, so that the hot path joins nothing). Changing k on a set, or the global default, used to leave the
waiting pairs at the old k: 41 pairs were served once each after k was raised to 2, and agreement had
nothing to measure. The pool's periodic task now brings the pending pairs of every set to the set's
current k; a pair that already has its new k judgements is complete. Chat turns keep their k of 1: they
are one person's conversation. One UPDATE per set, only over pending pairs whose k differs.
"""

from __future__ import annotations

from sqlalchemy import case, select, update
from sqlalchemy.orm import Session

from app.config import Settings
from app.pool.models import Pair, PairStatus
from app.prompts.models import Prompt, PromptSet, PromptSource


def sync_pending_k(db: Session, settings: Settings) -> int:
    """Give every pending pair its set's current k; returns how many pairs changed (not committed)."""
    changed = 0
    for set_id, own_k in db.execute(select(PromptSet.id, PromptSet.judgements_per_pair)).all():
        k = own_k or settings.judgements_per_pair
        prompts = select(Prompt.id).where(Prompt.prompt_set_id == set_id, Prompt.source != PromptSource.chat)
        result = db.execute(
            update(Pair)
            .where(Pair.status == PairStatus.pending, Pair.judgements_needed != k, Pair.prompt_id.in_(prompts))
            .values(
                judgements_needed=k,
                status=case((Pair.judgement_count >= k, PairStatus.complete.value), else_=Pair.status),
            )
            .execution_options(synchronize_session=False)
        )
        changed += result.rowcount or 0
    return changed
