"""Dashboard pages for researchers: overview, agreement, models (promote, archive), one prompt's rated responses."""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated

from fastapi import APIRouter, Form, Path, Request
from fastapi.responses import Response

from app.auth.policy import Access, CurrentUser, allow
from app.bounds import MAX_ID
from app.dashboard import actions, models, overview, prompt_ratings, quality
from app.deps import DbDep, SettingsDep
from app.registry.models import ModelKind, ModelStatus
from app.registry.service import list_versions
from app.web import form_action, redirect, render

router = APIRouter(prefix="/dashboard", tags=["dashboard pages"], dependencies=[allow(Access.researcher)])

FormToken = Annotated[str, Form(max_length=200)]


@router.get("", name="dashboard")
def dashboard_overview(request: Request, db: DbDep, settings: SettingsDep) -> Response:
    data = overview.overview(db, pool_target=settings.pool_target)
    return render(request, "dashboard/overview.html", {"tab": "overview", "o": data})


@router.get("/agreement", name="dashboard_agreement")
def dashboard_agreement(request: Request, db: DbDep) -> Response:
    report = quality.agreement_report(db)
    table = quality.annotator_table(db)
    return render(request, "dashboard/agreement.html", {"tab": "agreement", "report": report, "annotators": table})


@router.get("/prompts/{prompt_id}", name="dashboard_prompt")
def dashboard_prompt(request: Request, db: DbDep, prompt_id: Annotated[int, Path(ge=1, le=MAX_ID)]) -> Response:
    data = prompt_ratings.prompt_ratings(db, prompt_id)
    return render(request, "dashboard/prompt.html", {"tab": "prompt", "p": data})


def _models_page(request: Request, db: DbDep, *, status_code: int = 200, **context: object) -> Response:
    policies = list_versions(db, kind=ModelKind.policy)
    rewards = models.reward_rows(db)
    ctx = {
        "tab": "models",
        "policies": policies,
        "names": {v.id: v.name for v in list_versions(db)},
        "board": models.version_leaderboard(db),
        "rewards": rewards,
        "has_human_agreement": True,
        "classifiers": [(v, models.numeric_metrics(v)) for v in list_versions(db, kind=ModelKind.classifier)],
        "statuses": ModelStatus,
        **context,
    }
    return render(request, "dashboard/models.html", ctx, status_code=status_code)


@router.get("/models", name="dashboard_models")
def dashboard_models(request: Request, db: DbDep, promoted: int = 0, archived: int = 0) -> Response:
    notices = {"promoted_id": promoted or None, "archived_id": archived or None}
    return _models_page(request, db, **notices)


def _after_action(request: Request, db: DbDep, action: Callable[[], object], next_url: str) -> Response:
    """Run a registry action, then go to ``next_url``; a refusal (e.g. archiving the promoted policy) shows here."""
    return form_action(
        db,
        action,
        done=lambda _: redirect(next_url),
        failed=lambda exc: _models_page(request, db, error=exc.message, status_code=exc.status_code),
    )


@router.post("/models/{version_id}/promote", name="dashboard_promote")
def dashboard_promote(
    request: Request, db: DbDep, settings: SettingsDep, user: CurrentUser, version_id: int, csrf_token: FormToken = ""
) -> Response:
    return _after_action(
        request,
        db,
        lambda: actions.promote(db, settings, version_id=version_id, actor=user),
        f"/dashboard/models?promoted={version_id}",
    )


@router.post("/models/{version_id}/archive", name="dashboard_archive")
def dashboard_archive(
    request: Request, db: DbDep, user: CurrentUser, version_id: int, csrf_token: FormToken = ""
) -> Response:
    return _after_action(
        request,
        db,
        lambda: actions.archive(db, version_id=version_id, actor=user),
        f"/dashboard/models?archived={version_id}",
    )
