"""Dashboard pages for jobs: the list (live progress), one job (parameters, log, curves), launch, cancel.

The kinds listed and launched are those the user's role may queue (``JobKind.audience``), and the
log shows tracebacks to admins only (``service.visible_log``). Pages render what is known now;
``/static/dashboard-jobs.js`` and ``/static/dashboard-job.js`` then poll the JSON API
(``/api/v1/jobs``) to move the progress bars and extend the curves, so the pages need no inline script.
"""

from __future__ import annotations

import json
from typing import Annotated, Any

from fastapi import APIRouter, Form, Request
from fastapi.responses import Response

from app.auth.models import Role, User
from app.auth.policy import Access, CurrentUser, allow
from app.dashboard import launch_data
from app.dashboard.forms import (
    PRESETS,
    ParamField,
    model_fields,
    parse_form,
    preset_values,
    submitted_values,
    with_choices,
)
from app.deps import DbDep, SettingsDep
from app.errors import DomainError, Forbidden, NotFound
from app.finetune.policy_step import DEFAULT_POLICY_METHOD
from app.jobs import registry, service
from app.jobs.models import Job, JobStatus
from app.jobs.policy import can_cancel
from app.jobs.registry import JobKind
from app.web import FormData, form_action, redirect, render

router = APIRouter(prefix="/dashboard/jobs", tags=["dashboard pages"], dependencies=[allow(Access.researcher)])

PAGE = 50
FormToken = Annotated[str, Form(max_length=200)]


@router.get("", name="dashboard_jobs")
def jobs_page(request: Request, db: DbDep, user: CurrentUser, page: int = 1) -> Response:
    page = max(page, 1)
    jobs, total = service.list_jobs(db, limit=PAGE, offset=(page - 1) * PAGE)
    kinds = registry.kinds(offered_in_ui=True, role=user.role)
    pages = max((total + PAGE - 1) // PAGE, 1)
    improve = next((k for k in kinds if k.name == DEFAULT_POLICY_METHOD), None)  # the loop's default policy step
    ctx = {
        "tab": "jobs",
        "jobs": jobs,
        "total": total,
        "page": page,
        "pages": pages,
        "kinds": kinds,
        "improve": improve,
    }
    return render(request, "dashboard/jobs.html", ctx)


def _offered(kind_name: str, user: User) -> JobKind:
    kind = registry.get_kind(kind_name)
    if not kind.offered_in_ui:
        raise NotFound(f"job kind {kind_name[:60]!r} is not launched from the dashboard")
    if not kind.allows(user.role):
        raise Forbidden(f"{kind.name} jobs need the {kind.audience.value} role; you are {user.role.value}")
    return kind


def _form_fields(db: DbDep, kind: JobKind) -> list[ParamField]:
    """The kind's inputs, with pick lists (and their counts) wherever a value is an id of a stored thing."""
    fields = model_fields(kind.params_model)
    return with_choices(fields, launch_data.choices(db, [f.name for f in fields]))


def _launch_page(request: Request, db: DbDep, kind: JobKind, *, status_code: int = 200, **context: Any) -> Response:
    fields = _form_fields(db, kind)
    summary, warnings = launch_data.data_check(db, kind.name)
    preset = request.query_params.get("preset", "")
    ctx = {
        "tab": "jobs",
        "kind": kind,
        "fields": fields,
        "values": {},
        "presets": [(key, title, why) for key, (title, why, _) in PRESETS.items() if preset_values(fields, key)],
        "preset": preset,
        "data_summary": summary,
        "data_warnings": warnings,
        "estimate": launch_data.estimate(db, kind.name),
        **context,
    }
    if not ctx["values"]:  # a link may fill inputs in (``?export_job_id=7``); the model validates them on submit
        names = {f.name for f in fields}
        ctx["values"] = {key: value for key, value in request.query_params.items() if key in names}
        ctx["values"].update(preset_values(fields, preset))
    return render(request, "dashboard/launch.html", ctx, status_code=status_code)


@router.get("/new/{kind_name}", name="dashboard_job_new")
def launch_form(request: Request, db: DbDep, user: CurrentUser, kind_name: str) -> Response:
    return _launch_page(request, db, _offered(kind_name, user))


@router.post("/new/{kind_name}", name="dashboard_job_launch")
def launch(
    request: Request, db: DbDep, settings: SettingsDep, user: CurrentUser, kind_name: str, form: FormData
) -> Response:
    """Parse the form by the kind's schema and enqueue; on a bad value show the form again."""
    kind = _offered(kind_name, user)
    fields = _form_fields(db, kind)

    def run() -> Job:
        params = parse_form(fields, form)
        return service.create_job(
            db,
            kind=kind.name,
            params=params,
            created_by=user,
            max_attempts=settings.job_max_attempts,
            settings=settings,
        )

    def failed(exc: DomainError) -> Response:
        field = (exc.field or "").removeprefix("params.")
        values = submitted_values(fields, form)
        return _launch_page(
            request, db, kind, error=exc.message, error_field=field, values=values, status_code=exc.status_code
        )

    return form_action(db, run, done=lambda job: redirect(f"/dashboard/jobs/{job.id}"), failed=failed)


def curve_groups(kind: str) -> list[str]:
    """The plots a kind's page opens with (more appear as new metric names arrive)."""
    if kind.startswith("ppo") or kind == "rloo":
        return ["reward", "kl", "entropy", "length"]
    if kind == "online_dpo":
        return ["score", "loss", "accuracy", "margin"]
    if kind == "dpo":
        return ["loss", "accuracy", "margin"]
    if kind in ("reward", "classifier", "sft") or "reward" in kind:
        return ["loss", "accuracy"]
    return []


@router.get("/{job_id}", name="dashboard_job")
def job_page(request: Request, db: DbDep, user: CurrentUser, job_id: int) -> Response:
    job = service.get_job(db, job_id)
    ctx = {
        "tab": "jobs",
        "job": job,
        "params_json": json.dumps(job.params, indent=2, sort_keys=True, ensure_ascii=False),
        "log": service.visible_log(job, user),
        "result_json": json.dumps(job.result, indent=2, sort_keys=True, ensure_ascii=False) if job.result else "",
        "groups": curve_groups(job.kind),
        "can_cancel": can_cancel(user, job) and not job.status.finished,
        "download": _download_link(job, user.role),
        "train_on": _train_links(job),
    }
    return render(request, "dashboard/job.html", ctx)


def _download_link(job: Job, role: Role) -> str | None:
    if job.kind == "export" and job.status is JobStatus.succeeded and registry.get_kind("export").allows(role):
        return f"/admin/export/jobs/{job.id}/download"
    return None


TRAINS_ON = {
    "judgements": ("reward", "Train a reward model on this export"),
    "labels": ("classifier", "Train a classifier on this export"),
}


def _train_links(job: Job) -> list[tuple[str, str]]:
    """(href, text) of the launch forms that can name this finished export as their data."""
    if job.kind != "export" or job.status is not JobStatus.succeeded or not job.result:
        return []
    source = str(job.result.get("snapshot", {}).get("source", ""))
    if source not in TRAINS_ON:
        return []
    kind, text = TRAINS_ON[source]
    return [(f"/dashboard/jobs/new/{kind}?export_job_id={job.id}", text)]


@router.post("/{job_id}/cancel", name="dashboard_job_cancel")
def job_cancel(db: DbDep, user: CurrentUser, job_id: int, csrf_token: FormToken = "") -> Response:
    service.cancel(db, job_id=job_id, actor=user)
    return redirect(f"/dashboard/jobs/{job_id}")
