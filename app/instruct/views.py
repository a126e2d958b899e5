"""Admin pages for SELF-INSTRUCT: start a run from a seed set, review the candidates, decide.

Thin: load → (the router's policy authorizes) → call ``review`` or the jobs service → render.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Form, Request
from fastapi.responses import Response
from pydantic import BaseModel

from app.auth.policy import Access, CurrentUser, allow
from app.chat.service import CHAT_SET
from app.deps import DbDep, SettingsDep
from app.errors import Invalid
from app.instruct import review
from app.instruct.self_instruct_job import KIND
from app.jobs import service as jobs
from app.jobs.models import Job
from app.prompts import service as prompts
from app.prompts.models import PromptSetStatus
from app.web import form_action, redirect, render

router = APIRouter(prefix="/admin/self-instruct", tags=["admin pages"], dependencies=[allow(Access.admin)])

ShortText = Annotated[str, Form(max_length=200)]
IdList = Annotated[list[int], Form(max_length=review.MAX_DECISION_IDS)]


class StartFields(BaseModel):
    """The start form: the seed set and how many new prompts to keep, as typed (checked in ``start``)."""

    seed_set_id: ShortText = ""
    target: ShortText = "50"


StartForm = Annotated[StartFields, Form()]


def _list_page(request: Request, db: DbDep, *, status_code: int = 200, **context: object) -> Response:
    seed_sets = [
        s
        for s in prompts.list_sets(db)
        if s.prompt_set.status is PromptSetStatus.active and s.active and s.prompt_set.name != CHAT_SET
    ]  # chat mode's own set holds whatever annotators typed: not seeds anyone chose
    ctx = {"reviews": review.list_review_sets(db), "seed_sets": seed_sets, **context}
    return render(request, "instruct/review_list.html", ctx, status_code=status_code)


def _review_page(request: Request, db: DbDep, set_id: int, *, status_code: int = 200, **context: object) -> Response:
    ctx = {"summary": review.review_summary(db, set_id), "items": review.review_prompts(db, set_id), **context}
    return render(request, "instruct/review.html", ctx, status_code=status_code)


@router.get("", name="self_instruct")
def review_list(request: Request, db: DbDep, job: int | None = None) -> Response:
    return _list_page(request, db, started_job=job)


@router.post("/jobs", name="self_instruct_start")
def start(request: Request, db: DbDep, settings: SettingsDep, actor: CurrentUser, form: StartForm) -> Response:
    """Queue a ``self_instruct`` job with the paper's defaults; the dashboard offers every parameter."""

    def run() -> Job:
        params = {"seed_set_id": _whole(form.seed_set_id, "seed_set_id"), "target": _whole(form.target, "target")}
        prompts.get_set(db, params["seed_set_id"])
        return jobs.create_job(db, kind=KIND, params=params, created_by=actor, max_attempts=settings.job_max_attempts)

    return form_action(
        db,
        run,
        done=lambda job: redirect(f"/admin/self-instruct?job={job.id}"),
        failed=lambda exc: _list_page(
            request, db, error=exc.message, form=form.model_dump(), status_code=exc.status_code
        ),
    )


def _whole(value: str, field: str) -> int:
    try:
        return int(value)
    except ValueError:
        raise Invalid(field, "must be a whole number") from None


@router.get("/{set_id}", name="self_instruct_review")
def review_set(request: Request, db: DbDep, set_id: int) -> Response:
    return _review_page(request, db, set_id)


def parse_action(action: str, selected: list[int]) -> tuple[str, list[int] | None]:
    """The pressed button as (decision, prompt ids or None for every pending prompt).

    Buttons: ``approve`` / ``reject`` (the ticked prompts), ``approve_all`` / ``reject_all`` (every
    pending one), ``approve:<id>`` / ``reject:<id>`` (one prompt, from its row)."""
    decision, _, target = action.partition(":")
    if decision in ("approve_all", "reject_all") and not target:
        return decision.removesuffix("_all"), None
    if decision in ("approve", "reject"):
        if not target:
            return decision, selected
        if target.isdigit():
            return decision, [int(target)]
    raise Invalid("action", "unknown action; use the buttons on the page")


@router.post("/{set_id}/decide", name="self_instruct_decide")
def decide(
    request: Request, db: DbDep, set_id: int, action: ShortText = "", prompt_ids: IdList | None = None
) -> Response:
    def run() -> review.DecisionReport:
        decision, ids = parse_action(action, prompt_ids or [])
        return review.decide(db, set_id=set_id, decision=decision, prompt_ids=ids)

    return form_action(
        db,
        run,
        done=lambda report: _review_page(request, db, set_id, report=report),
        failed=lambda exc: _review_page(request, db, set_id, error=exc.message, status_code=exc.status_code),
    )
