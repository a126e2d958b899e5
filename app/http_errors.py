"""The one place that maps domain errors (and the framework's own) to HTTP answers.

Pages get an HTML error page, the JSON API an RFC 9457 problem body; nothing else reaches a
client, least of all a stack trace.
"""

from __future__ import annotations

import logging
from typing import Any

import sqlalchemy.exc
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, RedirectResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException

from app.errors import DomainError, TooManyRequests, Unauthenticated

log = logging.getLogger(__name__)


def is_json_path(path: str) -> bool:
    """The paths programs call (the JSON API and the health check): their errors are problem bodies, and
    they are what the OpenAPI document describes (``app.openapi``)."""
    return path.startswith("/api/") or path == "/healthz"


def wants_json(request: Request) -> bool:
    return is_json_path(request.url.path)


def problem(status: int, title: str, detail: str, **extra: Any) -> JSONResponse:
    body = {"type": "about:blank", "title": title, "status": status, "detail": detail, **extra}
    return JSONResponse(body, status_code=status, media_type="application/problem+json")


def _html_error(request: Request, status: int, title: str, detail: str) -> Response:
    templates = request.app.state.templates
    return templates.TemplateResponse(
        request, "error.html", {"title": title, "detail": detail, "status": status}, status_code=status
    )


def _respond(
    request: Request, status: int, title: str, detail: str, headers: dict[str, str] | None = None, **extra: Any
) -> Response:
    response = (
        problem(status, title, detail, **extra) if wants_json(request) else _html_error(request, status, title, detail)
    )
    if headers:
        response.headers.update(headers)
    return response


async def _domain_error(request: Request, exc: DomainError) -> Response:
    if isinstance(exc, Unauthenticated) and not wants_json(request):
        return RedirectResponse(f"/login?next={request.url.path}", status_code=303)
    extra = {"field": exc.field} if exc.field else {}
    headers = {"Retry-After": str(exc.retry_after)} if isinstance(exc, TooManyRequests) else None
    if isinstance(exc, Unauthenticated):
        headers = {"WWW-Authenticate": "Bearer"}
    return _respond(request, exc.status_code, exc.title, exc.message, headers, **extra)


def _describe_validation(errors: list[dict[str, Any]]) -> tuple[str, list[dict[str, str]]]:
    fields = []
    for error in errors:
        loc = [str(part) for part in error.get("loc", ()) if part not in ("body", "query", "path", "form")]
        name = ".".join(loc) or "body"
        message = error.get("msg", "invalid")
        if error.get("type") == "json_invalid":
            name, message = "body", "malformed JSON: " + str(error.get("ctx", {}).get("error", "cannot be parsed"))
        fields.append({"field": name, "message": message})
    detail = "; ".join(f"{f['field']}: {f['message']}" for f in fields)
    return detail, fields


def _wrong_content_type(request: Request, errors: list[dict[str, Any]]) -> str | None:
    """A JSON body sent as another media type fails as "body is not an object"; say what is wrong."""
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    whole_body = any(tuple(e.get("loc", ())) == ("body",) for e in errors)
    if whole_body and request.url.path.startswith("/api/") and content_type != "application/json":
        return content_type or "none"
    return None


async def _validation_error(request: Request, exc: RequestValidationError) -> Response:
    errors = list(exc.errors())
    sent = _wrong_content_type(request, errors)
    if sent is not None:
        return _respond(request, 415, "Unsupported media type", f"Content-Type must be application/json, got {sent}")
    detail, fields = _describe_validation(errors)
    return _respond(request, 422, "Invalid input", detail, errors=fields)


async def _http_error(request: Request, exc: StarletteHTTPException) -> Response:
    titles = {404: "Not found", 405: "Method not allowed", 415: "Unsupported media type", 413: "Payload too large"}
    title = titles.get(exc.status_code, "Error")
    detail = exc.detail if isinstance(exc.detail, str) else title
    return _respond(request, exc.status_code, title, detail, dict(exc.headers or {}))


async def _unusable_value(request: Request, exc: Exception) -> Response:
    """The database refused a value the request carried: an id past the column's range, a NUL in text
    used as a filter, a page number too large to count to. That is bad input, not a fault of ours, so
    the client hears which value class failed; the traceback is logged in case it was our own value."""
    original = getattr(exc, "orig", None) or exc
    reason = (str(original).strip().splitlines() or ["not storable"])[0][:200]
    log.warning("refused a value on %s %s: %s", request.method, request.url.path, reason, exc_info=exc)
    return _respond(request, 422, "Invalid value", f"A value in the request cannot be used: {reason}.")


async def _unexpected(request: Request, exc: Exception) -> Response:
    log.exception("unhandled error on %s %s", request.method, request.url.path, exc_info=exc)
    return _respond(request, 500, "Internal error", "Something went wrong on our side; the error has been logged.")


# What every JSON API error answer is (``problem``), as the OpenAPI document says it (``app.openapi``).
PROBLEM_SCHEMA: dict[str, Any] = {
    "type": "object",
    "title": "Problem",
    "description": "An RFC 9457 problem: what was refused and why; ``field`` or ``errors`` name the input to fix.",
    "required": ["type", "title", "status", "detail"],
    "properties": {
        "type": {"type": "string"},
        "title": {"type": "string"},
        "status": {"type": "integer"},
        "detail": {"type": "string"},
        "field": {"type": "string"},
        "errors": {
            "type": "array",
            "items": {
                "type": "object",
                "required": ["field", "message"],
                "properties": {"field": {"type": "string"}, "message": {"type": "string"}},
            },
        },
    },
}
PROBLEM_RESPONSE = {
    "description": "Refused: bad input (422), not signed in (401), not allowed (403), not found (404), …",
    "content": {"application/problem+json": {"schema": {"$ref": "#/components/schemas/Problem"}}},
}


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(DomainError, _domain_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(sqlalchemy.exc.DataError, _unusable_value)  # PostgreSQL: out of range, NUL
    app.add_exception_handler(OverflowError, _unusable_value)  # SQLite: an integer past 64 bits
    app.add_exception_handler(Exception, _unexpected)
