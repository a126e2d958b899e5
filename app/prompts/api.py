"""JSON API for prompt sets: researchers read, admins write (create, import, add, edit)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, File, Form, Query, UploadFile, status
from pydantic import BaseModel, ConfigDict, Field

from app.auth.policy import Access, CurrentUser, allow
from app.bounds import MAX_INT, Bool, Int
from app.deps import DbDep
from app.errors import Invalid
from app.http_errors import problem
from app.prompts import importers, service
from app.prompts.importers import UPLOAD_BODY_LIMIT, check_size, detect_format
from app.prompts.importing import ImportRejected, import_prompts
from app.prompts.models import PromptSetStatus, PromptSource
from app.prompts.validation import MAX_CONTENT, MAX_DESCRIPTION, MAX_K, MAX_MESSAGES, MAX_SET_NAME, MAX_TAG, MAX_TAGS

PREFIX = "/api/v1/prompt-sets"
read_router = APIRouter(prefix=PREFIX, tags=["prompts"], dependencies=[allow(Access.researcher)])
admin_router = APIRouter(prefix=PREFIX, tags=["prompts"], dependencies=[allow(Access.admin)])


class StrictBody(BaseModel):
    model_config = ConfigDict(extra="forbid")


class MessageIn(StrictBody):
    role: Literal["system", "user", "assistant"]
    content: Annotated[str, Field(min_length=1, max_length=MAX_CONTENT)]


Messages = Annotated[list[MessageIn], Field(min_length=1, max_length=MAX_MESSAGES)]
Tags = Annotated[list[Annotated[str, Field(max_length=MAX_TAG)]], Field(max_length=MAX_TAGS)]


class PromptSetCreate(StrictBody):
    name: Annotated[str, Field(min_length=1, max_length=MAX_SET_NAME)]
    description: Annotated[str, Field(max_length=MAX_DESCRIPTION)] = ""
    judgements_per_pair: Annotated[Int | None, Field(ge=1, le=MAX_K, description="k; null: the global setting")] = None
    status: PromptSetStatus = PromptSetStatus.active


class PromptSetUpdate(StrictBody):
    description: Annotated[str | None, Field(max_length=MAX_DESCRIPTION)] = None
    judgements_per_pair: Annotated[Int | None, Field(ge=1, le=MAX_K, description="k; null: the global setting")] = None
    status: PromptSetStatus | None = None


class PromptSetOut(BaseModel):
    id: int
    name: str
    description: str
    status: PromptSetStatus
    judgements_per_pair: int | None
    created_by_id: int | None
    created_at: datetime
    prompts_active: int
    prompts_retired: int
    prompts_red_team: int


class PromptIn(StrictBody):
    prompt: Annotated[str | None, Field(max_length=MAX_CONTENT, description="a single user message")] = None
    messages: Messages | None = None
    tags: Tags = Field(default_factory=list)
    red_team: Bool = False


class PromptUpdate(StrictBody):
    messages: Messages | None = None
    tags: Tags | None = None
    red_team: Bool | None = None
    retired: Bool | None = None


class PromptOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)
    id: int
    prompt_set_id: int
    messages: list[dict[str, str]]
    source: PromptSource
    tags: list[str]
    red_team: bool
    retired: bool
    created_by_id: int | None
    created_at: datetime


class PromptPage(BaseModel):
    items: list[PromptOut]
    total: int
    limit: int
    offset: int


class ImportReportOut(BaseModel):
    prompt_set_id: int
    read: int = Field(description="good records in the file")
    imported: int = Field(description="new prompts written")
    duplicates: int = Field(description="records skipped: already in the set, or repeated in the file")


def _set_out(summary: service.SetSummary) -> PromptSetOut:
    s = summary.prompt_set
    return PromptSetOut(
        id=s.id, name=s.name, description=s.description, status=s.status, judgements_per_pair=s.judgements_per_pair,
        created_by_id=s.created_by_id, created_at=s.created_at,
        prompts_active=summary.active, prompts_retired=summary.retired, prompts_red_team=summary.red_team,
    )  # fmt: skip


def _messages(body: PromptIn) -> list[dict[str, Any]]:
    if (body.prompt is None) == (body.messages is None):
        raise Invalid("messages", 'give exactly one of "prompt" (a string) or "messages" (a list)')
    if body.prompt is not None:
        return [{"role": "user", "content": body.prompt}]
    return [m.model_dump() for m in body.messages or []]


@read_router.get("", response_model=list[PromptSetOut])
def sets_list(db: DbDep) -> object:
    """Every prompt set with its counts."""
    return [_set_out(s) for s in service.list_sets(db)]


@admin_router.post("", response_model=PromptSetOut, status_code=status.HTTP_201_CREATED)
def sets_create(body: PromptSetCreate, db: DbDep, actor: CurrentUser) -> object:
    """Create a prompt set."""
    created = service.create_set(db, actor=actor, **body.model_dump())
    return _set_out(service.set_summary(db, created.id))


@read_router.get("/{set_id}", response_model=PromptSetOut)
def sets_get(set_id: int, db: DbDep) -> object:
    """One prompt set with its counts."""
    return _set_out(service.set_summary(db, set_id))


@admin_router.patch("/{set_id}", response_model=PromptSetOut)
def sets_update(set_id: int, body: PromptSetUpdate, db: DbDep) -> object:
    """k may be set back to null (the global setting), so "absent" and "null" differ here."""
    k = body.judgements_per_pair if "judgements_per_pair" in body.model_fields_set else service.KEEP
    service.update_set(db, set_id=set_id, description=body.description, judgements_per_pair=k, status=body.status)
    return _set_out(service.set_summary(db, set_id))


@admin_router.post("/{set_id}/import", response_model=ImportReportOut, max_body_size=UPLOAD_BODY_LIMIT)
def sets_import(
    set_id: int,
    db: DbDep,
    actor: CurrentUser,
    file: Annotated[UploadFile, File(description="JSONL or CSV, UTF-8, at most 50 MB")],
    format: Annotated[Literal["jsonl", "csv"] | None, Form(description="default: from the file name")] = None,
) -> object:
    """All or nothing: a file with any bad line answers 422 with every bad line listed."""
    fmt = detect_format(file.filename, format)
    limit = importers.MAX_UPLOAD_BYTES
    check_size(file.size, limit)
    try:
        report = import_prompts(db, set_id=set_id, stream=file.file, fmt=fmt, actor=actor, max_bytes=limit)
    except ImportRejected as exc:
        bad = [{"line": e.line, "message": e.message} for e in exc.errors]
        return problem(422, "Invalid input", exc.message, field="file", bad_lines=bad, bad_line_count=exc.total)
    return ImportReportOut(
        prompt_set_id=report.prompt_set_id, read=report.read, imported=report.imported, duplicates=report.duplicates
    )


@read_router.get("/{set_id}/prompts", response_model=PromptPage)
def prompts_list(
    set_id: int,
    db: DbDep,
    retired: bool | None = None,
    limit: Annotated[int, Query(ge=1, le=service.MAX_PAGE)] = service.PAGE_SIZE,
    offset: Annotated[int, Query(ge=0, le=MAX_INT)] = 0,
) -> object:
    """A set's prompts, paged, optionally only the retired (or active) ones."""
    items, total = service.list_prompts(db, set_id=set_id, retired=retired, limit=limit, offset=offset)
    return PromptPage(items=[PromptOut.model_validate(p) for p in items], total=total, limit=limit, offset=offset)


@read_router.get("/{set_id}/prompts/{prompt_id}", response_model=PromptOut)
def prompts_get(set_id: int, prompt_id: int, db: DbDep) -> object:
    """One prompt of a set."""
    return service.get_prompt(db, set_id=set_id, prompt_id=prompt_id)


@admin_router.post("/{set_id}/prompts", response_model=PromptOut, status_code=status.HTTP_201_CREATED)
def prompts_add(set_id: int, body: PromptIn, db: DbDep, actor: CurrentUser) -> object:
    """Add a prompt to a set: one user message (`prompt`) or a conversation (`messages`)."""
    return service.add_prompt(
        db, set_id=set_id, messages=_messages(body), tags=body.tags, red_team=body.red_team, actor=actor
    )


@admin_router.patch("/{set_id}/prompts/{prompt_id}", response_model=PromptOut)
def prompts_update(set_id: int, prompt_id: int, body: PromptUpdate, db: DbDep) -> object:
    """Edit a prompt's messages, tags, red-team flag or retirement."""
    messages = [m.model_dump() for m in body.messages] if body.messages is not None else None
    return service.update_prompt(
        db,
        set_id=set_id,
        prompt_id=prompt_id,
        messages=messages,
        tags=body.tags,
        red_team=body.red_team,
        retired=body.retired,
    )
