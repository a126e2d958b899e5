"""Admin pages for prompt sets: create, settings (k, status), guidelines, upload a file, write and edit prompts."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Annotated, Any

from fastapi import APIRouter, File, Form, Request, UploadFile
from fastapi.responses import Response
from pydantic import BaseModel

from app.auth.policy import Access, CurrentUser, allow
from app.deps import DbDep
from app.errors import DomainError, Invalid
from app.prompts import guidelines, importers, service
from app.prompts.importers import UPLOAD_BODY_LIMIT, check_size, describe_size, detect_format
from app.prompts.importing import ImportRejected, ImportReport, import_prompts
from app.prompts.models import PromptSetStatus
from app.prompts.validation import MAX_CONTENT, single_turn
from app.web import FormData, form_action, redirect, render

router = APIRouter(prefix="/admin/prompt-sets", tags=["admin pages"], dependencies=[allow(Access.admin)])

LONG_FORM = {"max_part_size": 4 * 1024 * 1024}  # a 50-turn conversation pasted as JSON
ShortText = Annotated[str, Form(max_length=2000)]
PageNumber = Annotated[int, Form(ge=1, le=1_000_000)]
LongText = Annotated[str, Form(max_length=MAX_CONTENT)]
JsonText = Annotated[str, Form(max_length=3_000_000)]


class SetFields(BaseModel):
    """What the new-set form and the settings form post, each some of these; the service reads the values."""

    name: ShortText = ""
    description: ShortText = ""
    judgements_per_pair: ShortText = ""
    status: ShortText = ""


class PromptFields(BaseModel):
    """What the add-prompt form posts: one user message or a conversation as JSON (the service says which)."""

    text: LongText = ""
    messages_json: JsonText = ""
    tags: ShortText = ""
    red_team: ShortText = ""  # "1" when ticked


SetForm = Annotated[SetFields, Form()]
PromptForm = Annotated[PromptFields, Form()]


def _sets_page(request: Request, db: DbDep, *, status_code: int = 200, **context: object) -> Response:
    summaries = service.list_sets(db)
    return render(
        request,
        "prompts/sets.html",
        {"sets": summaries, "statuses": list(PromptSetStatus), **context},
        status_code=status_code,
    )


def _set_page(
    request: Request, db: DbDep, set_id: int, *, page: int = 1, status_code: int = 200, **context: object
) -> Response:
    summary = service.set_summary(db, set_id)
    page = max(page, 1)
    prompts, total = service.list_prompts(
        db, set_id=set_id, limit=service.PAGE_SIZE, offset=(page - 1) * service.PAGE_SIZE
    )
    pages = max((total + service.PAGE_SIZE - 1) // service.PAGE_SIZE, 1)
    ctx = {
        "summary": summary, "prompt_set": summary.prompt_set, "prompts": prompts, "total": total, "page": page,
        "pages": pages, "statuses": list(PromptSetStatus), "max_upload": describe_size(importers.MAX_UPLOAD_BYTES),
        "guidelines": guidelines.for_set(summary.prompt_set), "max_guidelines": guidelines.MAX_GUIDELINES,
        **context,
    }  # fmt: skip
    return render(request, "prompts/set_detail.html", ctx, status_code=status_code)


def _after(
    request: Request,
    db: DbDep,
    set_id: int,
    action: Callable[[], Any],
    *,
    form: dict[str, str] | None = None,
    page: int = 1,
    saved: str = "",
) -> Response:
    """Run an admin action and go back to the same page of the set (saying what was ``saved``, if named);
    a refusal is shown on that page."""
    query = "&".join(part for part in (f"page={page}" if page > 1 else "", f"saved={saved}" if saved else "") if part)
    return form_action(
        db,
        action,
        done=lambda _: redirect(f"/admin/prompt-sets/{set_id}" + (f"?{query}" if query else "")),
        failed=lambda exc: _set_page(
            request,
            db,
            set_id,
            page=page,
            status_code=exc.status_code,
            error=exc.message,
            error_field=exc.field,
            form=form or {},
        ),
    )


def messages_from_json(value: str) -> Any:
    """The conversation as pasted; its shape is checked by the service, which names the field."""
    if not value.strip():
        raise Invalid("messages", "must not be empty")
    try:
        return json.loads(value)
    except json.JSONDecodeError as exc:
        raise Invalid("messages", f"not valid JSON ({exc.msg} at line {exc.lineno}, column {exc.colno})") from None
    except RecursionError:
        raise Invalid("messages", "not valid JSON (nested too deeply)") from None


def conversation_from_form(text: str, messages_json: str) -> Any:
    """The add form takes a single user message, or a whole conversation as JSON — one of the two."""
    if text.strip() and messages_json.strip():
        raise Invalid("messages", "fill in the message or the conversation JSON, not both")
    if not text.strip() and not messages_json.strip():
        raise Invalid("text", "write a message, or paste a conversation as JSON")
    return single_turn(text, field="text") if text.strip() else messages_from_json(messages_json)


@router.get("", name="prompt_sets")
def sets_list(request: Request, db: DbDep) -> Response:
    return _sets_page(request, db)


@router.post("", name="prompt_sets_create")
def sets_create(request: Request, db: DbDep, actor: CurrentUser, form: SetForm) -> Response:
    return form_action(
        db,
        lambda: service.create_set(
            db, name=form.name, description=form.description, judgements_per_pair=form.judgements_per_pair, actor=actor
        ),
        done=lambda created: redirect(f"/admin/prompt-sets/{created.id}?created=1"),
        failed=lambda exc: _sets_page(
            request, db, error=exc.message, error_field=exc.field, form=form.model_dump(), status_code=exc.status_code
        ),
    )


@router.get("/{set_id}", name="prompt_set")
def set_detail(
    request: Request, db: DbDep, set_id: int, page: int = 1, created: bool = False, saved: str = ""
) -> Response:
    return _set_page(request, db, set_id, page=page, created=created, saved=saved)


@router.post("/{set_id}/settings", name="prompt_set_settings")
def set_settings(request: Request, db: DbDep, set_id: int, form: SetForm) -> Response:
    def action() -> None:
        service.update_set(
            db,
            set_id=set_id,
            description=form.description,
            judgements_per_pair=form.judgements_per_pair,
            status=form.status,
        )

    return _after(request, db, set_id, action, saved="settings")


@router.post("/{set_id}/guidelines", name="prompt_set_guidelines")
def set_guidelines(request: Request, db: DbDep, set_id: int, form: FormData) -> Response:
    """The guidelines and every label's wording in one form (``label.<key>`` fields; blank: the default)."""
    text = str(form.get("guidelines", ""))
    definitions = {key: str(form.get(f"label.{key}", "")) for key in guidelines.LABEL_KEYS}

    def action() -> None:
        guidelines.update(db, set_id=set_id, text=text, definitions=definitions)

    return _after(request, db, set_id, action, saved="guidelines")


@router.post("/{set_id}/import", name="prompt_set_import", max_body_size=UPLOAD_BODY_LIMIT)
def set_import(
    request: Request,
    db: DbDep,
    actor: CurrentUser,
    set_id: int,
    file: Annotated[UploadFile, File()],
    format: ShortText = "",
) -> Response:
    """Shows the report on the set's page; a rejected file lists every bad line there."""

    def run() -> ImportReport:
        fmt = detect_format(file.filename, format or None)
        limit = importers.MAX_UPLOAD_BYTES
        check_size(file.size, limit)
        return import_prompts(db, set_id=set_id, stream=file.file, fmt=fmt, actor=actor, max_bytes=limit)

    def failed(exc: DomainError) -> Response:
        if isinstance(exc, ImportRejected):
            return _set_page(
                request, db, set_id, import_errors=exc.errors, import_error_total=exc.total, status_code=422
            )
        return _set_page(request, db, set_id, error=exc.message, error_field=exc.field, status_code=exc.status_code)

    return form_action(db, run, done=lambda report: _set_page(request, db, set_id, report=report), failed=failed)


@router.post("/{set_id}/prompts", name="prompt_add", form_limits=LONG_FORM)
def prompt_add(request: Request, db: DbDep, actor: CurrentUser, set_id: int, form: PromptForm) -> Response:
    def action() -> None:
        messages = conversation_from_form(form.text, form.messages_json)
        service.add_prompt(
            db, set_id=set_id, messages=messages, tags=form.tags, red_team=form.red_team == "1", actor=actor
        )

    return _after(request, db, set_id, action, form=form.model_dump())


def _edit_page(
    request: Request, db: DbDep, set_id: int, prompt_id: int, *, status_code: int = 200, **context: object
) -> Response:
    prompt = service.get_prompt(db, set_id=set_id, prompt_id=prompt_id)
    ctx = {
        "prompt_set": service.get_set(db, set_id), "prompt": prompt,
        "messages_json": json.dumps(prompt.messages, indent=2, ensure_ascii=False), "tags": ", ".join(prompt.tags),
        **context,
    }  # fmt: skip
    return render(request, "prompts/prompt_edit.html", ctx, status_code=status_code)


@router.get("/{set_id}/prompts/{prompt_id}", name="prompt_edit")
def prompt_edit(request: Request, db: DbDep, set_id: int, prompt_id: int, saved: bool = False) -> Response:
    return _edit_page(request, db, set_id, prompt_id, saved=saved)


@router.post("/{set_id}/prompts/{prompt_id}", name="prompt_save", form_limits=LONG_FORM)
def prompt_save(
    request: Request, db: DbDep, set_id: int, prompt_id: int, messages_json: JsonText = "", tags: ShortText = ""
) -> Response:
    def run() -> None:
        messages = messages_from_json(messages_json)
        service.update_prompt(db, set_id=set_id, prompt_id=prompt_id, messages=messages, tags=tags)

    form = {"messages_json": messages_json, "tags": tags}
    return form_action(
        db,
        run,
        done=lambda _: redirect(f"/admin/prompt-sets/{set_id}/prompts/{prompt_id}?saved=1"),
        failed=lambda exc: _edit_page(
            request, db, set_id, prompt_id, error=exc.message, status_code=exc.status_code, **form
        ),
    )


def _set_prompt_flag(request: Request, db: DbDep, set_id: int, prompt_id: int, page: int, **flag: bool) -> Response:
    """Turn one of a prompt's switches (``retired``, ``red_team``) on or off, back on the same page of its set."""
    return _after(
        request, db, set_id, lambda: service.update_prompt(db, set_id=set_id, prompt_id=prompt_id, **flag), page=page
    )


@router.post("/{set_id}/prompts/{prompt_id}/retired", name="prompt_retired")
def prompt_retired(
    request: Request, db: DbDep, set_id: int, prompt_id: int, retired: ShortText = "", page: PageNumber = 1
) -> Response:
    return _set_prompt_flag(request, db, set_id, prompt_id, page, retired=retired == "1")


@router.post("/{set_id}/prompts/{prompt_id}/red-team", name="prompt_red_team")
def prompt_red_team(
    request: Request, db: DbDep, set_id: int, prompt_id: int, red_team: ShortText = "", page: PageNumber = 1
) -> Response:
    return _set_prompt_flag(request, db, set_id, prompt_id, page, red_team=red_team == "1")
