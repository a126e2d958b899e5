"""Admin page for importing a preference dataset (TRL or HH-RLHF JSONL, optionally gzipped).

The upload is saved to the data folder and imported by an ``import`` job, so a large file never
ties up a request: the admin is sent to the job's page, which shows its progress and, if the
file is rejected, every bad line.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, File, Form, Request, UploadFile
from fastapi.responses import Response

from app.auth.policy import Access, CurrentUser, allow
from app.deps import DbDep, SettingsDep
from app.errors import Invalid
from app.importing.jobs import save_upload
from app.importing.parsers import FORMATS
from app.importing.service import source_label
from app.jobs import service as jobs
from app.jobs.models import Job
from app.web import form_action, redirect, render

router = APIRouter(prefix="/admin/import", tags=["admin pages"], dependencies=[allow(Access.admin)])

UPLOAD_BODY_LIMIT = 2 * 1024**3  # a gzipped dataset; the job bounds the decompressed size
ShortText = Annotated[str, Form(max_length=200)]


def _page(request: Request, *, status_code: int = 200, **context: object) -> Response:
    return render(request, "export/import.html", {"formats": FORMATS, "form": {}, **context}, status_code=status_code)


@router.get("", name="import_page")
def import_page(request: Request) -> Response:
    return _page(request)


@router.post("", name="import_upload", max_body_size=UPLOAD_BODY_LIMIT)
def import_upload(
    request: Request,
    db: DbDep,
    settings: SettingsDep,
    user: CurrentUser,
    file: Annotated[UploadFile | None, File()] = None,
    format: ShortText = "hh",
    name: ShortText = "",
    set_name: ShortText = "",
) -> Response:
    def run() -> Job:
        source_label(name)  # refuse a bad name before storing the file
        if format not in FORMATS:
            raise Invalid("format", f"must be one of {', '.join(FORMATS)}")
        if file is None or not file.filename:
            raise Invalid("file", "choose a file to import")
        upload = save_upload(settings, file.file)
        params = {"upload": upload, "format": format, "name": name.strip(), "set_name": set_name.strip() or None}
        return jobs.create_job(db, kind="import", params=params, created_by=user, max_attempts=1, settings=settings)

    form = {"format": format, "name": name, "set_name": set_name}
    return form_action(
        db,
        run,
        done=lambda job: redirect(f"/dashboard/jobs/{job.id}"),
        failed=lambda exc: _page(request, error=exc.message, form=form, status_code=exc.status_code),
    )
