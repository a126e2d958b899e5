"""The annotator's page: one pair at a time, judged with the keyboard (or the mouse)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Form, Request
from fastapi.responses import Response
from pydantic import BaseModel, ValidationError

from app.annotation import assignment as assignments
from app.annotation import submission
from app.annotation.assignment import Shown
from app.annotation.markdown import render_markdown
from app.annotation.schemas import MAX_DEMONSTRATION, MAX_NOTE, JudgementIn
from app.auth.models import User
from app.auth.policy import Access, CurrentUser, allow
from app.deps import DbDep, SettingsDep
from app.errors import DomainError
from app.pool import service as pool_service
from app.web import redirect, render

router = APIRouter(prefix="/annotate", tags=["annotation pages"], dependencies=[allow(Access.annotator)])

FormText = Annotated[str, Form(max_length=MAX_DEMONSTRATION)]
FormShort = Annotated[str, Form(max_length=100)]
NextPath = Annotated[str, Form(max_length=200)]


class JudgementFields(BaseModel):
    """The judgement form as posted: text only, any field may be blank; ``JudgementIn`` says what is wrong.

    Kept apart from ``JudgementIn`` because the page must be able to show a refused form again as typed.
    """

    choice: FormShort = ""
    strength: FormShort = ""
    a_quality: FormShort = ""
    a_safety: FormShort = ""
    b_quality: FormShort = ""
    b_safety: FormShort = ""
    demonstration: FormText = ""
    note: Annotated[str, Form(max_length=MAX_NOTE)] = ""
    next: NextPath = ""  # where to go after submitting (chat mode continues the conversation)

    def as_typed(self) -> dict[str, str]:
        """The fields to fill the form in again with when it is refused."""
        return self.model_dump(exclude={"next"})

    def to_body(self, assignment_id: int) -> JudgementIn:
        """The API's judgement: a side's labels only when either was given, a digit strength as a number."""
        sides = {"A": (self.a_quality, self.a_safety), "B": (self.b_quality, self.b_safety)}
        labels = {side: {"quality": q, "safety": s} for side, (q, s) in sides.items() if q or s}
        strength = self.strength or None
        return JudgementIn.model_validate(
            {
                "assignment_id": assignment_id,
                "choice": self.choice,
                "strength": int(strength) if strength and strength.isdigit() else strength,
                "labels": labels,
                "demonstration": self.demonstration,
                "note": self.note,
            }
        )


JudgementForm = Annotated[JudgementFields, Form()]


def annotate_page(
    request: Request,
    db: DbDep,
    user: User,
    shown: Shown,
    *,
    error: str | None = None,
    status_code: int = 200,
    form: dict | None = None,
    next_url: str = "",
) -> Response:
    context = {
        "shown": shown,
        "left_html": render_markdown(shown.left.text),
        "right_html": render_markdown(shown.right.text),
        "progress": assignments.progress(db, user=user),
        "error": error,
        "max_demonstration": MAX_DEMONSTRATION,
        "max_note": MAX_NOTE,
        "form": form or {},
        "next_url": next_url,  # where to go after submitting (chat mode continues the conversation)
    }
    return render(request, "annotation/annotate.html", context, status_code=status_code)


@router.get("", name="annotate")
def annotate(request: Request, db: DbDep, settings: SettingsDep, user: CurrentUser) -> Response:
    shown = assignments.next_pair(db, settings, user=user)
    if shown is None:
        pool_service.nudge(db, settings)  # nothing to judge: ask the generator now, not at its next round
        return render(request, "annotation/empty.html", {"progress": assignments.progress(db, user=user)})
    return annotate_page(request, db, user, shown)


def _validation_message(exc: ValidationError) -> str:
    first = exc.errors()[0]
    field = ".".join(str(p) for p in first["loc"]) or "form"
    names = {"choice": "choose which response is better", "labels": "label quality and safety of both responses"}
    return f"{field}: {names.get(field.split('.')[0], first['msg'])}"


@router.post("/{assignment_id}", name="annotate_submit")
def annotate_submit(
    request: Request, assignment_id: int, db: DbDep, user: CurrentUser, form: JudgementForm
) -> Response:
    assignment = assignments.get_assignment(db, user=user, assignment_id=assignment_id)  # 404 when not theirs
    try:
        submission.submit(db, user=user, body=form.to_body(assignment_id))
    except (ValidationError, DomainError) as exc:
        db.rollback()
        message = _validation_message(exc) if isinstance(exc, ValidationError) else exc.message
        status_code = 422 if isinstance(exc, ValidationError) else exc.status_code
        shown = assignments.load_shown(db, assignment)
        return annotate_page(
            request, db, user, shown, error=message, status_code=status_code, form=form.as_typed(), next_url=form.next
        )
    return redirect(_onward(form.next))


@router.post("/{assignment_id}/skip", name="annotate_skip")
def annotate_skip(
    assignment_id: int, db: DbDep, user: CurrentUser, csrf_token: FormShort = "", next: NextPath = ""
) -> Response:
    assignments.skip(db, user=user, assignment_id=assignment_id)
    # A skipped chat turn has no chosen reply to continue from: the annotator starts a new conversation.
    return redirect("/chat" if next.startswith("/chat") else "/annotate")


def _onward(next_url: str) -> str:
    """Where a judgement leads: chat mode continues its conversation; only that local path is followed."""
    return next_url if next_url.startswith("/chat?after=") else "/annotate"
