"""Chat mode, as in the HH-RLHF interface: the annotator writes a message, the promoted policy
writes two replies, the annotator judges them, and the conversation goes on from the better one.

Each turn is stored like any pool pair — a prompt (the conversation so far, in the "chat" prompt
set), two responses, a pair and an assignment leased to its author — so it is judged, exported
and learnt from like every other judgement. Generation runs in the warm generation process, and
no database transaction is open while it runs (on SQLite that would hold the write lock).
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.annotation.assignment import get_assignment
from app.annotation.models import AssignmentStatus, Choice, Demonstration, Judgement, PairAssignment
from app.auth.models import User
from app.config import Settings
from app.db import utcnow
from app.errors import Conflict
from app.generation.types import Generation, GenerationError, Messages, SamplingParams
from app.pool.generate import Generator, usable
from app.pool.models import Pair, PairStatus, Response
from app.pool.plan import serving_config
from app.prompts.models import Prompt, PromptSet, PromptSource
from app.prompts.validation import content_hash, validate_messages
from app.registry.service import promoted_policy

log = logging.getLogger(__name__)

CHAT_SET = "chat"
ATTEMPTS = 3


@dataclass(frozen=True)
class Turn:
    assignment_id: int
    messages: Messages


def context_after(db: Session, *, user: User, assignment_id: int) -> Messages:
    """The conversation so far plus the reply the annotator preferred (their written answer when
    both replies were bad), ready for the next user message."""
    assignment = get_assignment(db, user=user, assignment_id=assignment_id)
    if assignment.status is not AssignmentStatus.submitted:
        raise Conflict("judge this turn's two replies before continuing the conversation")
    judgement = db.scalar(
        select(Judgement).where(Judgement.pair_id == assignment.pair_id, Judgement.annotator_id == user.id)
    )
    pair = db.get(Pair, assignment.pair_id)
    prompt = db.get(Prompt, pair.prompt_id)
    chosen = _chosen_text(db, pair, judgement)
    if chosen is None:
        raise Conflict("both replies were bad: write a better answer on the judgement page, or start a new chat")
    return [*prompt.messages, {"role": "assistant", "content": chosen}]


def _chosen_text(db: Session, pair: Pair, judgement: Judgement) -> str | None:
    if judgement.choice in (Choice.a, Choice.tie):
        return db.get(Response, pair.response_a_id).text
    if judgement.choice is Choice.b:
        return db.get(Response, pair.response_b_id).text
    demo = db.scalar(select(Demonstration).where(Demonstration.judgement_id == judgement.id))
    return demo.text if demo else None


ReplyCallback = Callable[[str, str], None]  # (screen side "A" | "B", the reply so far)


def start_turn(
    db: Session, settings: Settings, generator: Generator, *,
    user: User, message: str, continue_from: int | None = None, on_text: ReplyCallback | None = None,
) -> Turn:
    """Generate two replies to the conversation + ``message`` and lease the new pair to ``user``.

    ``on_text`` sees each reply grow, by the side of the screen it will be judged on: the sides are drawn
    before the model writes, so what streamed on the left stays on the left."""
    context = context_after(db, user=user, assignment_id=continue_from) if continue_from else []
    messages = validate_messages([*context, {"role": "user", "content": message}])
    policy = promoted_policy(db)
    if policy is None:
        raise Conflict("no policy is promoted yet; an admin runs `rlhf models bootstrap`")
    policy_id, config = policy.id, serving_config(policy)
    db.commit()  # no transaction stays open while the model writes
    swapped = secrets.randbelow(2) == 1
    on_row = None if on_text is None else lambda row, text: on_text("A" if (row == 0) != swapped else "B", text)
    first, second, seed = _two_replies(generator, config, messages, settings, on_row)
    assignment = _store_turn(db, settings, user, messages, policy_id, (first, second), seed, swapped)
    return Turn(assignment_id=assignment.id, messages=messages)


def _two_replies(
    generator: Generator,
    config: dict[str, Any],
    messages: Messages,
    settings: Settings,
    on_row: Callable[[int, str], None] | None = None,
) -> tuple[Generation, Generation, int]:
    for _ in range(ATTEMPTS):
        seed = secrets.randbelow(2**31)
        params = SamplingParams(
            temperature=settings.chat_temperature,
            top_p=0.95,
            max_new_tokens=settings.chat_max_new_tokens,
            seed=seed,
            n=2,
        )
        try:
            stream = {} if on_row is None else {"on_text": on_row}
            reply = generator.generate(config, [messages], params, **stream)
        except GenerationError:
            # The details (backend URL, status, body) are for the operator's log, not the annotator's page.
            log.exception("chat generation failed for policy config %s", config.get("backend", "?"))
            raise Conflict("the policy could not answer just now; try again in a moment") from None
        first, second = reply.generations[:2]
        if usable(first.text, second.text):
            return first, second, seed
    raise Conflict("the policy gave the same (or an empty) reply twice; send the message again")


def _chat_set(db: Session, user: User) -> PromptSet:
    found = db.scalar(select(PromptSet).where(PromptSet.name == CHAT_SET))
    if found is None:
        found = PromptSet(name=CHAT_SET, description="Conversations written in chat mode", created_by_id=user.id)
        db.add(found)
        db.flush()
    return found


def _store_turn(
    db: Session,
    settings: Settings,
    user: User,
    messages: Messages,
    policy_id: int,
    replies: tuple[Generation, Generation],
    seed: int,
    swapped: bool,
) -> PairAssignment:
    prompt_set = _chat_set(db, user)
    digest = content_hash(messages)
    prompt = db.scalar(select(Prompt).where(Prompt.prompt_set_id == prompt_set.id, Prompt.content_hash == digest))
    if prompt is None:
        prompt = Prompt(
            prompt_set_id=prompt_set.id,
            messages=messages,
            content_hash=digest,
            source=PromptSource.chat,
            created_by_id=user.id,
        )
        db.add(prompt)
        db.flush()
    params = {
        "temperature": settings.chat_temperature,
        "top_p": 0.95,
        "max_new_tokens": settings.chat_max_new_tokens,
        "seed": seed,
        "n": 2,
        "mode": "chat",
    }
    a, b = (
        Response(
            prompt_id=prompt.id,
            policy_version_id=policy_id,
            text=g.text,
            token_count=g.token_count,
            generation_params={**params, "sample": i, **g.record()},
        )
        for i, g in enumerate(replies)
    )
    db.add_all([a, b])
    db.flush()
    # Status chat: the queue never offers it, so a turn its author abandons is served to nobody else.
    pair = Pair(
        prompt_id=prompt.id, response_a_id=a.id, response_b_id=b.id, judgements_needed=1, status=PairStatus.chat
    )
    db.add(pair)
    db.flush()
    now = utcnow()
    assignment = PairAssignment(
        pair_id=pair.id,
        user_id=user.id,
        swapped=swapped,
        assigned_at=now,
        leased_until=now + timedelta(minutes=settings.assignment_lease_minutes),
    )
    db.add(assignment)
    db.commit()
    return assignment
