"""Chat mode: two replies from the promoted policy (a tiny Llama served by the real warm process),
judged, and the conversation continued from the preferred reply."""

from __future__ import annotations

import logging

import pytest
from sqlalchemy import select

from app.annotation import assignment as assignments
from app.annotation import submission
from app.annotation.models import PairAssignment
from app.annotation.schemas import JudgementIn
from app.chat import service
from app.errors import Conflict
from app.generation.types import GenerationError
from app.pool.models import Pair, Response
from app.pool.warm_client import WarmClient
from app.prompts.models import Prompt, PromptSource
from app.prompts.validation import validate_messages
from app.registry.models import ModelStatus
from tests.factories import UserFactory
from tests.pool.conftest import add_policy

LABELS = {"A": {"quality": "good", "safety": "safe"}, "B": {"quality": "bad", "safety": "safe"}}


def _judge(db, user, assignment_id: int, choice: str = "A") -> None:
    body = JudgementIn(assignment_id=assignment_id, choice=choice, strength=2, labels=LABELS)
    submission.submit(db, user=user, body=body)


def test_two_turns_continue_from_the_preferred_reply(db, pool_settings, tiny_policies):
    policy = add_policy(db, tiny_policies[0], name="chat-policy", status=ModelStatus.promoted)
    user = UserFactory()
    db.commit()
    with WarmClient(pool_settings) as generator:
        first = service.start_turn(db, pool_settings, generator, user=user, message="Hello there, who are you?")
        shown = assignments.load_shown(db, db.get(PairAssignment, first.assignment_id))
        assert shown.left.policy_version_id == policy.id and shown.left.text != shown.right.text
        _judge(db, user, first.assignment_id, choice="B")  # B on screen is the right-hand reply
        preferred = shown.right.text
        second = service.start_turn(
            db, pool_settings, generator, user=user, message="And what can you do?", continue_from=first.assignment_id
        )
    assert second.messages == validate_messages(
        [
            {"role": "user", "content": "Hello there, who are you?"},
            {"role": "assistant", "content": preferred},  # the preferred reply, stored as prompts store text
            {"role": "user", "content": "And what can you do?"},
        ]
    )
    prompt = db.scalar(
        select(Prompt)
        .join(Pair, Pair.prompt_id == Prompt.id)
        .join(PairAssignment, PairAssignment.pair_id == Pair.id)
        .where(PairAssignment.id == second.assignment_id)
    )
    assert prompt.source is PromptSource.chat and len(prompt.messages) == 3
    assert len(list(db.scalars(select(Response).where(Response.prompt_id == prompt.id)))) == 2


def test_cannot_continue_before_judging(db, pool_settings, tiny_policies):
    add_policy(db, tiny_policies[0], name="chat-policy-2", status=ModelStatus.promoted)
    user = UserFactory()
    db.commit()
    with WarmClient(pool_settings) as generator:
        first = service.start_turn(db, pool_settings, generator, user=user, message="Hi!")
        with pytest.raises(Conflict, match="judge this turn"):
            service.start_turn(
                db, pool_settings, generator, user=user, message="Next", continue_from=first.assignment_id
            )


def test_no_promoted_policy_is_a_clear_conflict(db, pool_settings):
    user = UserFactory()
    with pytest.raises(Conflict, match="no policy is promoted"):
        service.start_turn(db, pool_settings, generator=None, user=user, message="Hi!")


class _FailingGenerator:
    def generate(self, config, prompts, params):
        raise GenerationError("POST http://10.0.0.5:8000/v1/chat/completions returned 500: internal error")


def test_generation_failure_shows_a_generic_message_and_logs_the_details(db, settings, tmp_path, caplog):
    add_policy(db, tmp_path, name="chat-policy-3", status=ModelStatus.promoted)
    user = UserFactory()
    db.commit()
    with caplog.at_level(logging.ERROR, logger="app.chat.service"), pytest.raises(Conflict) as caught:
        service.start_turn(db, settings, _FailingGenerator(), user=user, message="Hi!")
    assert "could not answer" in caught.value.message
    assert "10.0.0.5" not in caught.value.message and "http" not in caught.value.message
    assert "10.0.0.5" in caplog.text


def test_the_replies_stream_by_the_side_they_are_judged_on(db, pool_settings, tiny_policies):
    """Issue 17: the warm process sends each reply's text as it grows; the last text of each screen side is
    the stored reply shown on that side, so what streamed on the left is judged on the left."""
    add_policy(db, tiny_policies[0], name="chat-policy-stream", status=ModelStatus.promoted)
    user = UserFactory()
    db.commit()
    seen: list[tuple[str, str]] = []
    with WarmClient(pool_settings) as generator:
        turn = service.start_turn(
            db, pool_settings, generator, user=user, message="Tell me a story.", on_text=lambda *e: seen.append(e)
        )
    shown = assignments.load_shown(db, db.get(PairAssignment, turn.assignment_id))
    assert dict(seen) == {"A": shown.left.text, "B": shown.right.text}  # the last text of each side
    for side in "AB":  # sent as they grew, not once at the end
        assert len({text for s, text in seen if s == side}) > 1


def test_an_abandoned_turn_is_never_served_to_anyone_else(db, pool_settings, tiny_policies):
    """Issue 17: a chat turn waits for its author; once their lease lapses nobody else is offered it, and
    the author can still judge it from its page."""
    add_policy(db, tiny_policies[0], name="chat-policy-abandoned", status=ModelStatus.promoted)
    author, other = UserFactory(), UserFactory()
    db.commit()
    with WarmClient(pool_settings) as generator:
        turn = service.start_turn(db, pool_settings, generator, user=author, message="Anyone there?")
    assignment = db.get(PairAssignment, turn.assignment_id)
    assignment.leased_until = assignment.assigned_at  # the author walked away
    db.commit()
    assert assignments.next_pair(db, pool_settings.model_copy(update={"gold_share": 0.0}), user=other) is None
    _judge(db, author, turn.assignment_id)
    pair = db.get(Pair, assignment.pair_id)
    db.refresh(pair)
    assert pair.status.value == "complete" and pair.judgement_count == 1
