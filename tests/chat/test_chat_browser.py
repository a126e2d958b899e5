"""Chat mode in headless Chromium against the real ``rlhf serve``: an annotator plays two turns with the
keyboard — writes a message, judges the promoted policy's two replies (a tiny Llama, served by the web
process's own warm generation process), continues from the preferred one — and both turns are stored
with the right context, the judgement and the labels on the responses that were on screen."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from sqlalchemy import select

from app.annotation.models import Choice, Judgement, PairAssignment, ResponseLabel
from app.config import Settings
from app.pool.models import Pair, Response
from app.prompts.models import Prompt, PromptSource
from app.registry.models import ModelStatus
from tests.browser_support import login
from tests.pool.conftest import add_policy
from tests.seed import server_session
from tests.server import create_user_cli, running_server

pytestmark = pytest.mark.browser

SERVER_ENV = {"RLHF_BOOTSTRAP_ON_SERVE": "false", "RLHF_CHAT_MAX_NEW_TOKENS": "12", "RLHF_GENERATION_THREADS": "1"}
FIRST, SECOND = "Hello there, who are you?", "And what can you do for me?"
TURN = re.compile(r"/chat/turns/(\d+)$")
# Keys of the judge page: turn 1 prefers the right-hand reply (B), good and safe, the left one bad;
# turn 2 prefers the left-hand reply (A), the right one bad and unsafe.
PREFER_RIGHT = ["2", "k", "w", "e", "u", "o"]
PREFER_LEFT = ["1", "l", "q", "e", "i", "p"]


def _send(page, message: str) -> int:
    """Write ``message`` and send it with Ctrl+Enter; returns the turn's assignment id once both replies are shown."""
    page.locator("#message").fill(message)
    with (
        page.expect_navigation(url=TURN, timeout=120_000),
        page.expect_response(lambda r: r.url.endswith("/chat/stream"), timeout=120_000) as streamed,
    ):
        page.keyboard.press("Control+Enter")
    # The replies came as server-sent events (issue 17: first words while the policy writes), not a form post.
    assert streamed.value.status == 200 and streamed.value.headers["content-type"].startswith("text/event-stream")
    assert (
        page.locator("#response-A .markdown").inner_text().strip()
        and page.locator("#response-B .markdown").inner_text().strip()
    )
    return int(TURN.search(page.url).group(1))


def _judge(page, keys: list[str], assignment_id: int) -> None:
    """Choose, grade and label both replies with the keyboard; Enter submits and returns to the chat."""
    for key in keys:
        page.keyboard.press(key)
    with page.expect_navigation(url=re.compile(rf"/chat\?after={assignment_id}$")):
        page.keyboard.press("Enter")


def _conversation(page) -> list[tuple[str, str]]:
    """The conversation a chat or judge page shows, as (role, text) exactly as stored (escaped, not rendered)."""
    messages = page.locator(".conversation .message").all()
    return [(m.locator(".role").text_content(), m.locator(".text").text_content()) for m in messages]


def _shown(db, assignment_id: int) -> tuple[Pair, Response, Response]:
    """The turn's pair and its responses in the order the annotator saw them (left, right)."""
    assignment = db.get(PairAssignment, assignment_id)
    pair = db.get(Pair, assignment.pair_id)
    a, b = db.get(Response, pair.response_a_id), db.get(Response, pair.response_b_id)
    return (pair, b, a) if assignment.swapped else (pair, a, b)


def _labels(db, response: Response) -> tuple[bool, bool]:
    label = db.scalar(select(ResponseLabel).where(ResponseLabel.response_id == response.id))
    return label.quality, label.safety


def test_two_chat_turns_are_stored_with_their_context(tmp_path, page, artifacts, tiny_policies: list[Path]):
    settings = Settings(data_dir=tmp_path / "var")
    with running_server(settings.data_dir, extra_env=SERVER_ENV, args=("--no-worker",)) as server:
        with server_session(settings) as db:
            add_policy(db, tiny_policies[0], name="chat-policy", status=ModelStatus.promoted)
            db.commit()
        create_user_cli(settings.data_dir, "chloe", "chloe-password-1")
        login(page, server.url, "chloe", "chloe-password-1")
        page.goto(server.url + "/chat")
        first = _send(page, FIRST)
        page.screenshot(path=str(artifacts / "chat-turn.png"), full_page=True)
        _judge(page, PREFER_RIGHT, first)
        continued = _conversation(page)
        second = _send(page, SECOND)
        assert _conversation(page) == [*continued, ("user", SECOND)]  # the judge page shows the context too
        _judge(page, PREFER_LEFT, second)
        finished = _conversation(page)

    with server_session(settings) as db:
        pair1, left1, right1 = _shown(db, first)
        pair2, left2, right2 = _shown(db, second)
        prompt1, prompt2 = db.get(Prompt, pair1.prompt_id), db.get(Prompt, pair2.prompt_id)
        assert prompt1.messages == [{"role": "user", "content": FIRST}]
        assert prompt2.messages == [
            {"role": "user", "content": FIRST},
            {"role": "assistant", "content": right1.text},
            {"role": "user", "content": SECOND},
        ]
        assert prompt1.source is prompt2.source is PromptSource.chat
        assert continued == [("user", FIRST), ("assistant", right1.text)]
        assert finished == [("user", FIRST), ("assistant", right1.text), ("user", SECOND), ("assistant", left2.text)]

        judgements = {j.pair_id: j for j in db.scalars(select(Judgement))}
        assert set(judgements) == {pair1.id, pair2.id}
        assert judgements[pair1.id].choice is (Choice.a if right1.id == pair1.response_a_id else Choice.b)
        assert judgements[pair2.id].choice is (Choice.a if left2.id == pair2.response_a_id else Choice.b)
        assert (judgements[pair1.id].strength, judgements[pair2.id].strength) == (2, 3)
        assert (_labels(db, left1), _labels(db, right1)) == ((False, True), (True, True))
        assert (_labels(db, left2), _labels(db, right2)) == ((True, True), (False, False))
        assert len(list(db.scalars(select(Prompt).where(Prompt.source == PromptSource.chat)))) == 2
