"""Chat mode pages: write a message, judge the policy's two replies, continue from the better one."""

from __future__ import annotations

import os
from typing import Annotated

from fastapi import APIRouter, Form, Request
from fastapi.responses import Response

from app.annotation import assignment as assignments
from app.annotation.models import AssignmentStatus
from app.annotation.views import annotate_page
from app.auth.policy import Access, CurrentUser, allow
from app.chat import service
from app.deps import DbDep, SettingsDep
from app.errors import DomainError
from app.pool.warm_client import WarmClient
from app.web import redirect, render

router = APIRouter(prefix="/chat", tags=["chat pages"], dependencies=[allow(Access.annotator)])
MAX_MESSAGE = 20_000


@router.get("", name="chat")
def chat(request: Request, db: DbDep, user: CurrentUser, after: int | None = None) -> Response:
    messages = service.context_after(db, user=user, assignment_id=after) if after else []
    return render(request, "chat/chat.html", {"messages": messages, "after": after})


@router.post("", name="chat_send")
def chat_send(
    request: Request,
    db: DbDep,
    settings: SettingsDep,
    user: CurrentUser,
    message: Annotated[str, Form(max_length=MAX_MESSAGE)] = "",
    continue_from: Annotated[str, Form(max_length=20)] = "",
) -> Response:
    after = int(continue_from) if continue_from.isdigit() else None
    try:
        # The web process owns its warm generation process: the model stays loaded between turns.
        with WarmClient(settings, owner_pid=os.getpid()) as generator:
            turn = service.start_turn(db, settings, generator, user=user, message=message, continue_from=after)
    except DomainError as exc:
        db.rollback()
        messages = service.context_after(db, user=user, assignment_id=after) if after else []
        context = {"messages": messages, "after": after, "error": exc.message, "draft": message}
        return render(request, "chat/chat.html", context, status_code=exc.status_code)
    return redirect(f"/chat/turns/{turn.assignment_id}")


@router.get("/turns/{assignment_id}", name="chat_turn")
def chat_turn(request: Request, db: DbDep, user: CurrentUser, assignment_id: int) -> Response:
    assignment = assignments.get_assignment(db, user=user, assignment_id=assignment_id)
    if assignment.status is not AssignmentStatus.active:
        return redirect(f"/chat?after={assignment_id}")
    shown = assignments.load_shown(db, assignment)
    return annotate_page(request, db, user, shown, next_url=f"/chat?after={assignment_id}")
