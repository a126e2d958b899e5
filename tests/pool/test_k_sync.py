"""Issue 16: a changed k reaches the pairs already waiting (the pool's periodic task), chat turns aside."""

from __future__ import annotations

from app.pool.jobs import refill_pool
from app.pool.k_sync import sync_pending_k
from app.pool.models import PairStatus
from app.prompts.models import PromptSource
from tests.factories import PairFactory, PromptFactory, PromptSetFactory


def test_pending_pairs_follow_their_sets_k_and_the_global_default(db, settings):
    raised, default = PromptSetFactory(judgements_per_pair=3), PromptSetFactory()
    waiting = PairFactory(prompt=PromptFactory(prompt_set=raised), judgements_needed=1)
    half_done = PairFactory(prompt=PromptFactory(prompt_set=raised), judgements_needed=1, judgement_count=1)
    half_done.status = PairStatus.pending  # judged once under k 1 but not yet marked (e.g. k was just lowered)
    done = PairFactory(prompt=PromptFactory(prompt_set=raised), judgements_needed=1, status=PairStatus.complete)
    other = PairFactory(prompt=PromptFactory(prompt_set=default), judgements_needed=5, judgement_count=2)
    chat = PairFactory(prompt=PromptFactory(prompt_set=default, source=PromptSource.chat), judgements_needed=1)
    db.commit()
    assert sync_pending_k(db, settings) == 3
    db.commit()
    for pair in (waiting, half_done, done, other, chat):
        db.refresh(pair)
    assert (waiting.judgements_needed, waiting.status) == (3, PairStatus.pending)
    assert (half_done.judgements_needed, half_done.status) == (3, PairStatus.pending)
    assert done.judgements_needed == 1 and done.status is PairStatus.complete  # finished pairs stay as judged
    k = settings.judgements_per_pair
    assert other.judgements_needed == k and other.status is (PairStatus.complete if k <= 2 else PairStatus.pending)
    assert chat.judgements_needed == 1  # one person's conversation
    assert sync_pending_k(db, settings) == 0  # nothing left to change: the task is cheap when k is steady


def test_the_refill_task_runs_it(db, settings):
    lowered = PromptSetFactory(judgements_per_pair=1)
    pair = PairFactory(prompt=PromptFactory(prompt_set=lowered), judgements_needed=2, judgement_count=1)
    db.commit()
    refill_pool(db, settings)
    db.commit()
    db.refresh(pair)
    assert (pair.judgements_needed, pair.status) == (1, PairStatus.complete)
