"""Chat mode pages: write a message, judge the policy's two replies, continue from the better one."""

from __future__ import annotations

import json
import logging
import os
import queue
import threading
from collections.abc import Iterator
from typing import Annotated, Any

from fastapi import APIRouter, Form, Request
from fastapi.responses import Response, StreamingResponse
from pydantic import BaseModel, Field

from app.annotation import assignment as assignments
from app.annotation.models import AssignmentStatus
from app.annotation.views import annotate_page
from app.auth.models import User
from app.auth.policy import Access, CurrentUser, allow
from app.chat import service
from app.config import Settings
from app.deps import DbDep, SettingsDep
from app.errors import DomainError
from app.pool.warm_client import WarmClient
from app.web import form_action, redirect, render

router = APIRouter(prefix="/chat", tags=["chat pages"], dependencies=[allow(Access.annotator)])
MAX_MESSAGE = 20_000
log = logging.getLogger(__name__)


class TurnForm(BaseModel):
    """What the chat form sends, to either endpoint: the message and the judged turn it continues, if any."""

    message: str = Field("", max_length=MAX_MESSAGE)
    continue_from: str = Field("", max_length=20)

    @property
    def after(self) -> int | None:
        return int(self.continue_from) if self.continue_from.isdigit() else None


TurnFormDep = Annotated[TurnForm, Form()]


@router.get("", name="chat")
def chat(request: Request, db: DbDep, user: CurrentUser, after: int | None = None) -> Response:
    return _chat_page(request, db, user, after)


def _chat_page(
    request: Request, db: DbDep, user: User, after: int | None, *, status_code: int = 200, **context: object
) -> Response:
    messages = service.context_after(db, user=user, assignment_id=after) if after else []
    return render(request, "chat/chat.html", {"messages": messages, "after": after, **context}, status_code=status_code)


@router.post("", name="chat_send")
def chat_send(request: Request, db: DbDep, settings: SettingsDep, user: CurrentUser, form: TurnFormDep) -> Response:
    after, message = form.after, form.message

    def run() -> service.Turn:
        # The web process owns its warm generation process: the model stays loaded between turns.
        with WarmClient(settings, owner_pid=os.getpid()) as generator:
            return service.start_turn(db, settings, generator, user=user, message=message, continue_from=after)

    return form_action(
        db,
        run,
        done=lambda turn: redirect(f"/chat/turns/{turn.assignment_id}"),
        failed=lambda exc: _chat_page(
            request, db, user, after, error=exc.message, draft=message, status_code=exc.status_code
        ),
    )


@router.get("/turns/{assignment_id}", name="chat_turn")
def chat_turn(request: Request, db: DbDep, user: CurrentUser, assignment_id: int) -> Response:
    assignment = assignments.get_assignment(db, user=user, assignment_id=assignment_id)
    if assignment.status is not AssignmentStatus.active:
        return redirect(f"/chat?after={assignment_id}")
    shown = assignments.load_shown(db, assignment)
    return annotate_page(request, db, user, shown, next_url=f"/chat?after={assignment_id}")


@router.post("/stream", name="chat_stream")
def chat_stream(request: Request, settings: SettingsDep, user: CurrentUser, form: TurnFormDep) -> StreamingResponse:
    """The turn ``POST /chat`` makes, as server-sent events while the policy writes: ``reply`` events
    ``{"side": "A" | "B", "text": the reply so far}``, then ``done`` ``{"url": the turn's page}`` or ``error``
    ``{"message"}``. chat.js uses it so the first words show within a second; the plain form still works."""
    events: queue.Queue[tuple[str, dict[str, Any]] | None] = queue.Queue()
    turn_args = {"message": form.message, "continue_from": form.after}
    worker = threading.Thread(
        target=_stream_turn,
        args=(request.app.state.sessionmaker, settings, user.id, turn_args, events),
        daemon=True,
        name="chat-turn",
    )
    worker.start()

    def body() -> Iterator[str]:
        while (item := events.get()) is not None:
            name, data = item
            yield f"event: {name}\ndata: {json.dumps(data)}\n\n"

    return StreamingResponse(
        body(), media_type="text/event-stream", headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"}
    )


def _stream_turn(
    sessions: Any, settings: Settings, user_id: int, turn_args: dict[str, Any], events: queue.Queue
) -> None:
    """Run one chat turn in a session of its own (the request's is gone once the response starts)."""
    try:
        with sessions() as db:
            me = db.get(User, user_id)
            with WarmClient(settings, owner_pid=os.getpid()) as generator:
                turn = service.start_turn(
                    db,
                    settings,
                    generator,
                    user=me,
                    on_text=lambda side, text: events.put(("reply", {"side": side, "text": text})),
                    **turn_args,
                )
        events.put(("done", {"url": f"/chat/turns/{turn.assignment_id}"}))
    except DomainError as exc:
        events.put(("error", {"message": exc.message}))
    except Exception:
        log.exception("chat turn failed")
        events.put(("error", {"message": "the policy could not answer just now; try again in a moment"}))
    finally:
        events.put(None)
