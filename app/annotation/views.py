"""The annotator's page: one pair at a time, judged with the keyboard (or the mouse)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Form, Request
from fastapi.responses import Response
from pydantic import BaseModel, ValidationError

from app.annotation import assignment as assignments
from app.annotation import edits, submission
from app.annotation.assignment import Shown
from app.annotation.markdown import render_markdown
from app.annotation.schemas import MAX_DEMONSTRATION, MAX_NOTE, JudgementChange, JudgementIn
from app.auth.models import User
from app.auth.policy import Access, CurrentUser, allow
from app.bounds import MAX_INT
from app.deps import DbDep, SettingsDep
from app.errors import DomainError
from app.pool import service as pool_service
from app.prompts import guidelines
from app.web import redirect, render

router = APIRouter(prefix="/annotate", tags=["annotation pages"], dependencies=[allow(Access.annotator)])

FormText = Annotated[str, Form(max_length=MAX_DEMONSTRATION)]
FormShort = Annotated[str, Form(max_length=100)]
NextPath = Annotated[str, Form(max_length=200)]


def form_strength(text: str) -> int | str | None:
    """A form's strength: a digit as the number the API takes, blank as none, anything else as typed (refused)."""
    return int(text) if text.isascii() and text.isdigit() else (text or None)


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
        return JudgementIn.model_validate(
            {
                "assignment_id": assignment_id,
                "choice": self.choice,
                "strength": form_strength(self.strength),
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
    rules = guidelines.for_set(shown.pair.prompt.prompt_set)
    context = {
        "shown": shown,
        "left_html": render_markdown(shown.left.text),
        "right_html": render_markdown(shown.right.text),
        "guidelines": rules,
        "guidelines_html": render_markdown(rules.text),
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
    """The next pair, at an address of its own (``/annotate/<assignment>``), so that the browser's Back
    returns to a pair the annotator has judged (and shows it as judged) instead of loading a new one
    whose form the browser would fill in with the last verdict."""
    shown = assignments.next_pair(db, settings, user=user)
    if shown is None:
        pool_service.nudge(db, settings)  # nothing to judge: ask the generator now, not at its next round
        return render(request, "annotation/empty.html", {"progress": assignments.progress(db, user=user)})
    return redirect(f"/annotate/{shown.assignment.id}")


@router.get("/recent", name="annotate_recent")
def recent_page(request: Request, db: DbDep, settings: SettingsDep, user: CurrentUser) -> Response:
    """The annotator's latest judgements; those still in the edit window can be changed from here."""
    context = {"recent": edits.recent(db, settings, user=user), "window": settings.judgement_edit_minutes}
    return render(request, "annotation/recent.html", context)


@router.get("/{assignment_id}", name="annotate_pair")
def annotate_pair(
    request: Request, assignment_id: int, db: DbDep, settings: SettingsDep, user: CurrentUser
) -> Response:
    """One leased pair: the judging form while the lease is the user's, the verdict (and a way to change
    it) once they judged it; a pair they skipped or lost is behind them: on to the next."""
    assignment = assignments.get_assignment(db, user=user, assignment_id=assignment_id)  # 404 when not theirs
    judged = edits.for_assignment(db, settings, user=user, assignment=assignment)
    if judged is not None:
        shown = assignments.load_shown(db, assignment)
        return judged_page(request, db, user, shown, judged)
    if not assignments.lease_is_live(assignment):
        return redirect("/annotate")
    shown = assignments.load_shown(db, assignment)
    prompt_set = shown.pair.prompt.prompt_set
    if guidelines.needs_confirmation(db, user=user, prompt_set=prompt_set):
        return guidelines_page(request, guidelines.for_set(prompt_set), after=f"/annotate/{assignment.id}")
    return annotate_page(request, db, user, shown)


def guidelines_page(
    request: Request, rules: guidelines.Guidelines, *, after: str, error: str | None = None, status_code: int = 200
) -> Response:
    """A set's guidelines to read and confirm before its first pair (and after each change of them)."""
    context = {"guidelines": rules, "guidelines_html": render_markdown(rules.text), "after": after, "error": error}
    return render(request, "annotation/guidelines.html", context, status_code=status_code)


@router.post("/guidelines/{set_id}", name="annotate_confirm_guidelines")
def confirm_guidelines(
    db: DbDep,
    user: CurrentUser,
    set_id: int,
    version: Annotated[int, Form(ge=0, le=MAX_INT)],
    next: NextPath = "",
    csrf_token: FormShort = "",
) -> Response:
    """Record the confirmation and go on to the pair that asked for it (only a local annotate path)."""
    guidelines.confirm(db, user=user, set_id=set_id, version=version)
    return redirect(next if next.startswith("/annotate/") else "/annotate")


def judged_page(
    request: Request,
    db: DbDep,
    user: User,
    shown: Shown,
    judged: edits.Recent,
    *,
    error: str | None = None,
    status_code: int = 200,
) -> Response:
    context = {
        "shown": shown,
        "judged": judged,
        "left_html": render_markdown(shown.left.text),
        "right_html": render_markdown(shown.right.text),
        "progress": assignments.progress(db, user=user),
        "error": error,
    }
    return render(request, "annotation/judged.html", context, status_code=status_code)


class EditFields(BaseModel):
    """The change form as posted (text); ``edits.change`` says what is wrong with it."""

    choice: FormShort = ""
    strength: FormShort = ""


@router.post("/judgements/{judgement_id}", name="annotate_change")
def change_judgement(
    request: Request,
    judgement_id: int,
    db: DbDep,
    settings: SettingsDep,
    user: CurrentUser,
    form: Annotated[EditFields, Form()],
) -> Response:
    try:
        body = JudgementChange.model_validate({"choice": form.choice, "strength": form_strength(form.strength)})
        changed = edits.change(
            db, settings, user=user, judgement_id=judgement_id, choice=body.choice, strength=body.strength
        )
    except (ValidationError, DomainError) as exc:
        db.rollback()
        if isinstance(exc, DomainError) and exc.status_code == 404:
            raise
        message = page_message(exc)
        status_code = 422 if isinstance(exc, ValidationError) else exc.status_code
        judged = edits.by_id(db, settings, user=user, judgement_id=judgement_id)
        shown = assignments.load_shown(db, judged.assignment)
        return judged_page(request, db, user, shown, judged, error=message, status_code=status_code)
    return redirect(f"/annotate/{changed.assignment.id}?changed=1")


# What a form field is called on the page: an annotator reads "Response B", not "labels.B".
FIELD_WORDS = {
    "choice": "Which is better",
    "strength": "How much better",
    "labels.A": "Response A",
    "labels.B": "Response B",
    "demonstration": "Your better answer",
    "note": "Note",
}
FIX_WORDS = {"choice": "choose which response is better", "labels": "label its quality and safety"}


def _in_words(field: str) -> str:
    """``labels.B.safety`` as "Response B, safety"; an unknown field as itself."""
    for key in sorted(FIELD_WORDS, key=len, reverse=True):
        if field == key or field.startswith(key + "."):
            rest = field[len(key) + 1 :]
            return FIELD_WORDS[key] + (f", {rest}" if rest else "")
    return field


def page_message(exc: ValidationError | DomainError) -> str:
    """A refusal as the annotate page shows it: the field in words, then what to do."""
    if isinstance(exc, DomainError):
        field = exc.field
        if not field:
            return exc.message
        why = exc.message.removeprefix(f"{field}: ")
        return f"{_in_words(field)}: {why}"
    first = exc.errors()[0]
    field = ".".join(str(p) for p in first["loc"]) or "form"
    return f"{_in_words(field)}: {FIX_WORDS.get(field.split('.')[0], first['msg'])}"


@router.post("/{assignment_id}", name="annotate_submit")
def annotate_submit(
    request: Request, assignment_id: int, db: DbDep, user: CurrentUser, form: JudgementForm
) -> Response:
    assignment = assignments.get_assignment(db, user=user, assignment_id=assignment_id)  # 404 when not theirs
    try:
        submission.submit(db, user=user, body=form.to_body(assignment_id))
    except (ValidationError, DomainError) as exc:
        db.rollback()
        message = page_message(exc)
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
