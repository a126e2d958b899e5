"""Researcher pages for the model registry: list, inspect, promote and archive versions.

Promotion goes through ``app.versions.promotion``, so the pool follows it (the old policy's unjudged
pairs retired, a refill queued) in the same transaction.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Annotated

from fastapi import APIRouter, Form, Request
from fastapi.responses import Response

from app.auth.policy import Access, allow
from app.deps import DbDep, SettingsDep
from app.errors import DomainError
from app.pool import service as pool
from app.registry import service
from app.registry.models import ModelKind, ModelStatus
from app.versions import promotion
from app.web import form_action, redirect, render

router = APIRouter(prefix="/models", tags=["model pages"], dependencies=[allow(Access.researcher)])

FormToken = Annotated[str, Form(max_length=200)]


def _list_page(request: Request, db: DbDep, *, status_code: int = 200, **context: object) -> Response:
    counts = {c.version_id: c for c in pool.pool_counts(db)}
    ctx = {
        "versions": service.list_versions(db),
        "counts": counts,
        "kinds": list(ModelKind),
        "statuses": ModelStatus,
        **context,
    }
    return render(request, "models/list.html", ctx, status_code=status_code)


def _detail_page(
    request: Request, db: DbDep, version_id: int, *, status_code: int = 200, **context: object
) -> Response:
    version = service.get_version(db, version_id)
    counts = {c.version_id: c for c in pool.pool_counts(db)}
    ctx = {
        "version": version, "count": counts.get(version.id), "statuses": ModelStatus,
        "config_json": json.dumps(version.config, indent=2, sort_keys=True, ensure_ascii=False),
        "metrics_json": json.dumps(version.metrics, indent=2, sort_keys=True, ensure_ascii=False), **context,
    }  # fmt: skip
    return render(request, "models/detail.html", ctx, status_code=status_code)


@router.get("", name="models")
def models_list(request: Request, db: DbDep) -> Response:
    return _list_page(request, db)


@router.get("/{version_id}", name="model")
def model_detail(
    request: Request, db: DbDep, version_id: int, promoted: bool = False, archived: bool = False, retired: int = 0
) -> Response:
    return _detail_page(request, db, version_id, promoted_notice=promoted, archived_notice=archived, retired=retired)


def _act_on_version(request: Request, db: DbDep, version_id: int, action: Callable[[], str]) -> Response:
    """Run ``action`` (which commits and returns where to go next) and redirect there.

    A refusal, e.g. archiving the promoted policy, is shown on the version's page with its status code;
    an unknown version stays a plain 404, since there is no page to show it on."""

    def refused(exc: DomainError) -> Response:
        if exc.status_code == 404:
            raise exc
        return _detail_page(request, db, version_id, error=exc.message, status_code=exc.status_code)

    return form_action(db, action, done=redirect, failed=refused)


@router.post("/{version_id}/promote", name="model_promote")
def model_promote(
    request: Request, db: DbDep, settings: SettingsDep, version_id: int, csrf_token: FormToken = ""
) -> Response:
    def promote() -> str:
        result = promotion.promote(db, settings, version_id=version_id)
        return f"/models/{version_id}?promoted=1&retired={result.retired}"

    return _act_on_version(request, db, version_id, promote)


@router.post("/{version_id}/archive", name="model_archive")
def model_archive(request: Request, db: DbDep, version_id: int, csrf_token: FormToken = "") -> Response:
    def archive() -> str:
        service.archive(db, version_id=version_id)
        return f"/models/{version_id}?archived=1"

    return _act_on_version(request, db, version_id, archive)
