"""Gold pairs: pairs whose better answer is known, mixed into every annotator's queue to measure them.

A scripted clicker, a careless reader and an honest annotator look alike on pairs nobody else judged;
a pair with a known answer tells them apart. Gold pairs are made from the pool itself, so they read like
any other pair: a whole answer the policy wrote (it ended at EOS) against a copy of it that no careful
reader prefers —

- ``truncated``: cut off mid-sentence at 40–60 % of its words;
- ``shuffled``: its sentences in another order (answers of three sentences or more);
- ``other_answer``: the policy's answer to a different prompt (off topic).

An admin may also write one (``written``: :func:`add_written`). A gold pair's status is ``gold``: it is
never pending, so nothing that counts, trains on or exports the pool sees it; the queue serves one with
probability ``gold_share`` (``app.annotation.assignment``) and the lease shows its sides in random order
as always, so nothing on the page gives it away. Annotator reliability reads the verdicts on them.
"""

from __future__ import annotations

import random
import re
from collections.abc import Callable

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from app.annotation.models import Judgement
from app.config import Settings
from app.errors import Invalid
from app.jobs.periodic import periodic
from app.pool.models import GOLD_SOURCE_PREFIX, Pair, PairStatus, Response
from app.prompts.models import Prompt, PromptSet, PromptSetStatus

GOLD_CAPACITY = 1_000_000  # judgements a gold pair takes: every annotator may judge it once
MIN_WORDS = 12  # an answer shorter than this cannot be cut off convincingly
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+")
KINDS = ("truncated", "shuffled", "other_answer")
GOLD_EVERY_SECONDS = 60.0


def truncated(text: str, rng: random.Random) -> str | None:
    """The first 40–60 % of the words, ending without closing punctuation; None for a short answer."""
    words = text.split()
    if len(words) < MIN_WORDS:
        return None
    cut = max(3, round(len(words) * rng.uniform(0.4, 0.6)))
    return " ".join(words[:cut]).rstrip(".!?,;:")


def shuffled(text: str, rng: random.Random) -> str | None:
    """The sentences in another order; None for fewer than three sentences."""
    parts = [s for s in _SENTENCE_END.split(text.strip()) if s]
    if len(parts) < 3:
        return None
    order = list(range(len(parts)))
    while order == sorted(order):
        rng.shuffle(order)
    return " ".join(parts[i] for i in order)


def _candidates(db: Session, limit: int) -> list[Response]:
    """Whole answers from prompts of active sets, not yet used for gold, newest first."""
    used = select(Pair.response_a_id).where(Pair.status == PairStatus.gold).union(
        select(Pair.response_b_id).where(Pair.status == PairStatus.gold)
    )
    rows = db.scalars(
        select(Response)
        .join(Prompt, Prompt.id == Response.prompt_id)
        .join(PromptSet, PromptSet.id == Prompt.prompt_set_id)
        .where(
            PromptSet.status == PromptSetStatus.active,
            Response.policy_version_id.is_not(None),
            Response.id.not_in(used),
        )
        .order_by(Response.id.desc())
        .limit(limit * 4)
    )
    return [r for r in rows if not r.cut_off and len(r.text.split()) >= MIN_WORDS][:limit]


def _store(db: Session, original: Response, text: str, kind: str, rng: random.Random) -> Pair:
    copy = Response(prompt_id=original.prompt_id, text=text, source=f"{GOLD_SOURCE_PREFIX}{kind}")
    db.add(copy)
    db.flush()
    first = rng.random() < 0.5
    a, b = (original, copy) if first else (copy, original)
    pair = Pair(
        prompt_id=original.prompt_id,
        response_a_id=a.id,
        response_b_id=b.id,
        judgements_needed=GOLD_CAPACITY,
        status=PairStatus.gold,
        gold_answer="a" if first else "b",
        gold_kind=kind,
    )
    db.add(pair)
    db.flush()
    return pair


def make_gold(db: Session, count: int, *, rng: random.Random | None = None) -> list[Pair]:
    """Up to ``count`` new gold pairs from whole pool answers, the kinds in turn (not committed)."""
    rng = rng or random.Random()
    originals = _candidates(db, count)
    made: list[Pair] = []
    corrupt: dict[str, Callable[[str, random.Random], str | None]] = {"truncated": truncated, "shuffled": shuffled}
    for i, original in enumerate(originals):
        kind = KINDS[i % len(KINDS)]
        if kind == "other_answer":
            others = [r for r in originals if r.prompt_id != original.prompt_id]
            text = rng.choice(others).text if others else None
        else:
            text = corrupt[kind](original.text, rng)
            if text is None:  # too few sentences to shuffle: cut it off instead
                kind, text = "truncated", truncated(original.text, rng)
        if text and text.strip() != original.text.strip():
            made.append(_store(db, original, text, kind, rng))
    return made


def add_written(db: Session, *, prompt_id: int, better: str, worse: str) -> Pair:
    """An admin's gold pair: their own better and worse answer to a prompt (not committed)."""
    if not better.strip() or not worse.strip():
        raise Invalid("better" if not better.strip() else "worse", "write both answers")
    if better.strip() == worse.strip():
        raise Invalid("worse", "the worse answer must differ from the better one")
    if db.get(Prompt, prompt_id) is None:
        raise Invalid("prompt_id", f"there is no prompt {prompt_id}")
    original = Response(prompt_id=prompt_id, text=better.strip(), source=f"{GOLD_SOURCE_PREFIX}written")
    db.add(original)
    db.flush()
    return _store(db, original, worse.strip(), "written", random.Random())


def wanted(db: Session, settings: Settings) -> int:
    """Gold pairs to add so that the busiest annotator still has ``gold_pool`` they have not judged."""
    if settings.gold_share <= 0 or settings.gold_pool <= 0:
        return 0
    have = db.scalar(select(func.count()).select_from(Pair).where(Pair.status == PairStatus.gold)) or 0
    per_annotator = (
        select(func.count().label("n"))
        .select_from(Judgement)
        .join(Pair, Pair.id == Judgement.pair_id)
        .where(Pair.status == PairStatus.gold)
        .group_by(Judgement.annotator_id)
        .subquery()
    )
    busiest = db.scalar(select(func.max(per_annotator.c.n))) or 0
    return max(0, settings.gold_pool + busiest - have)


@periodic("annotation.gold", every_seconds=GOLD_EVERY_SECONDS)
def keep_gold(db: Session, settings: Settings) -> None:
    """Make gold pairs until the busiest annotator has ``gold_pool`` left to judge (database work only: a
    corrupted copy needs no model, so this stays a quick periodic task)."""
    missing = wanted(db, settings)
    if missing:
        make_gold(db, missing)
