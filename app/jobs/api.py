"""JSON API for jobs (researchers and admins): list, read, create, cancel; curves and log tail.

A kind is created and listed only for the roles it names (``registry.JobKind.audience``); the log
shows researchers no tracebacks (``service.visible_log``)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Query, status
from pydantic import BaseModel, ConfigDict, Field

from app.auth.policy import Access, CurrentUser, allow
from app.bounds import MAX_INT, Int
from app.deps import DbDep, SettingsDep
from app.jobs import registry, service
from app.jobs.models import JobStatus
from app.lanes import Lane

router = APIRouter(prefix="/api/v1/jobs", tags=["jobs"], dependencies=[allow(Access.researcher)])


class JobOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)
    id: int
    kind: str
    params: dict[str, Any]
    status: JobStatus
    progress: float
    progress_message: str
    attempts: int
    max_attempts: int
    worker_id: str | None
    heartbeat_at: datetime | None
    cancel_requested: bool
    result: dict[str, Any] | None
    error: str | None
    created_by_id: int | None
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None


class JobPage(BaseModel):
    items: list[JobOut]
    total: int
    limit: int
    offset: int


class JobCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    kind: Annotated[str, Field(min_length=1, max_length=50)]
    params: dict[str, Any] = Field(default_factory=dict, description="Validated against the kind's parameter model.")
    max_attempts: Annotated[Int | None, Field(ge=1, le=20)] = None


class KindOut(BaseModel):
    name: str
    lane: Lane = Field(description="the worker lane it runs in: jobs of different lanes run side by side")
    params_schema: dict[str, Any]


class MetricOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)
    step: int
    name: str
    value: float


class LogOut(BaseModel):
    job_id: int
    log: str


@router.get("", response_model=JobPage)
def jobs_list(
    db: DbDep,
    status_: Annotated[JobStatus | None, Query(alias="status")] = None,
    kind: Annotated[str | None, Query(max_length=50)] = None,
    limit: Annotated[int, Query(ge=1, le=service.MAX_PAGE)] = 50,
    offset: Annotated[int, Query(ge=0, le=MAX_INT)] = 0,
) -> object:
    """Jobs, newest first, optionally filtered by status and kind; paged."""
    items, total = service.list_jobs(db, status=status_, kind=kind, limit=limit, offset=offset)
    return JobPage(items=[JobOut.model_validate(j) for j in items], total=total, limit=limit, offset=offset)


@router.get("/kinds", response_model=list[KindOut])
def kinds_list(user: CurrentUser) -> object:
    """The job kinds the caller may launch, with their lane and the JSON schema of their parameters."""
    return [
        KindOut(name=k.name, lane=k.lane, params_schema=k.params_model.model_json_schema())
        for k in registry.kinds(offered_in_ui=True, role=user.role)
    ]


@router.post("", response_model=JobOut, status_code=status.HTTP_201_CREATED)
def jobs_create(body: JobCreate, db: DbDep, user: CurrentUser, settings: SettingsDep) -> object:
    """Queue a job of one of the kinds with its parameters, checked against the kind's schema."""
    attempts = body.max_attempts or settings.job_max_attempts
    return service.create_job(
        db, kind=body.kind, params=body.params, created_by=user, max_attempts=attempts, settings=settings
    )


@router.get("/{job_id}", response_model=JobOut)
def jobs_get(job_id: int, db: DbDep) -> object:
    """One job: status, progress, attempts, result or error."""
    return service.get_job(db, job_id)


@router.post("/{job_id}/cancel", response_model=JobOut)
def jobs_cancel(job_id: int, db: DbDep, user: CurrentUser) -> object:
    """Cancel a job: a queued one never runs, a running one is asked to stop, a finished one is left as is."""
    return service.cancel(db, job_id=job_id, actor=user)


@router.get("/{job_id}/metrics", response_model=list[MetricOut])
def jobs_metrics(
    job_id: int,
    db: DbDep,
    name: Annotated[str | None, Query(max_length=100)] = None,
    since_step: Annotated[int | None, Query(ge=-MAX_INT, le=MAX_INT)] = None,
) -> object:
    """The curves a job reported (step, name, value), optionally one metric only."""
    return service.metrics(db, job_id=job_id, name=name, since_step=since_step)


@router.get("/{job_id}/log", response_model=LogOut)
def jobs_log(job_id: int, db: DbDep, user: CurrentUser) -> object:
    """The end of a job's log."""
    return LogOut(job_id=job_id, log=service.log_tail(db, job_id=job_id, viewer=user))
