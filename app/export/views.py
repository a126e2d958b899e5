"""Admin pages for exporting data: the form, a direct download, export jobs and their files.

A text format can be downloaded at once (streamed as it is read, in constant memory); every
format can run as an ``export`` job, which also records the snapshot a reward job can name.
Downloads always carry a file name we made (never one a user typed) and
``Content-Disposition: attachment``, so a browser saves the file instead of rendering it.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import FileResponse, Response, StreamingResponse
from sqlalchemy import select

from app.auth.policy import Access, CurrentUser, allow
from app.deps import DbDep, SettingsDep
from app.errors import DomainError
from app.export.filters import Aggregation, ExportFormat, Keep, params_from_strings
from app.export.service import file_name, finished_export, stream_export
from app.jobs import service as jobs
from app.jobs.models import Job
from app.prompts.models import PromptSet
from app.registry.models import ModelKind
from app.registry.service import list_versions
from app.web import FormData, form_action, redirect, render

# Researchers and admins: the people who train on the data take it out too (the export job's audience).
router = APIRouter(prefix="/admin/export", tags=["export pages"], dependencies=[allow(Access.researcher)])


def attachment(name: str) -> dict[str, str]:
    """Headers that make a browser save the response as ``name`` (a name we generated)."""
    return {"content-disposition": f'attachment; filename="{name}"', "x-content-type-options": "nosniff"}


def _page(request: Request, db: DbDep, *, status_code: int = 200, **context: Any) -> Response:
    exports, _ = jobs.list_jobs(db, kind="export", limit=20)
    ctx = {
        "formats": list(ExportFormat),
        "keeps": list(Keep),
        "aggregations": list(Aggregation),
        "prompt_sets": list(db.scalars(select(PromptSet).order_by(PromptSet.name))),
        "policies": list_versions(db, kind=ModelKind.policy),
        "exports": exports,
        "form": {},
        **context,
    }
    return render(request, "export/export.html", ctx, status_code=status_code)


def _refused(request: Request, db: DbDep, exc: DomainError, form: dict[str, Any]) -> Response:
    return _page(request, db, error=exc.message, form=form, status_code=exc.status_code)


@router.get("", name="export_page")
def export_page(request: Request, db: DbDep) -> Response:
    return _page(request, db)


@router.post("", name="export_launch")
def export_launch(request: Request, db: DbDep, settings: SettingsDep, user: CurrentUser, form: FormData) -> Response:
    """Run the export as a job; the job's page shows its progress and, when done, the download."""

    def run() -> Job:
        params = params_from_strings(form)
        return jobs.create_job(
            db,
            kind="export",
            params=params.model_dump(mode="json"),
            created_by=user,
            max_attempts=settings.job_max_attempts,
            settings=settings,
        )

    return form_action(
        db,
        run,
        done=lambda job: redirect(f"/dashboard/jobs/{job.id}"),
        failed=lambda exc: _refused(request, db, exc, form),
    )


@router.post("/download", name="export_download")
def export_download(request: Request, db: DbDep, form: FormData) -> Response:
    """Stream a text-format export now (a POST, so the CSRF token stays out of URLs and logs)."""

    def run() -> Response:
        params = params_from_strings(form)
        body = stream_export(request.app.state.sessionmaker, params)
        headers = attachment(file_name(params.format))
        return StreamingResponse(body, media_type=params.format.media_type, headers=headers)

    return form_action(db, run, failed=lambda exc: _refused(request, db, exc, form))


@router.get("/jobs/{job_id}/download", name="export_job_download")
def export_job_download(db: DbDep, settings: SettingsDep, job_id: int) -> Response:
    path, name, fmt = finished_export(db, settings, job_id)
    return FileResponse(path, media_type=fmt.media_type, headers=attachment(name))
