"""The OpenAPI document programs read (``/api/v1/openapi.json``, shown at ``/docs``).

It documents what programs use: the JSON API under ``/api/`` and ``/healthz``, the paths whose errors are
problem bodies (``http_errors.is_json_path``); the pages are for people and their form posts need a CSRF
token, so they are left out. Every tag is described, and every refusal is documented as the one error
schema the handlers really send, ``Problem`` (RFC 9457), instead of FastAPI's default 422 shape, which
they never send; clients and schema checkers (the schemathesis run in the tests) then hold every answer to
its real schema.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi
from fastapi.routing import iter_route_contexts

from app.http_errors import PROBLEM_RESPONSE, PROBLEM_SCHEMA, is_json_path

DESCRIPTION = (
    "The JSON API of RLHF Loop. Authenticate with `Authorization: Bearer <token>` (create a token on the "
    "**API tokens** page or with `POST /api/v1/tokens`). Every refusal is an RFC 9457 problem body "
    "(`application/problem+json`, schema `Problem`); `field` or `errors` name the input to fix."
)
TAGS: list[dict[str, str]] = [
    {
        "name": "annotation",
        "description": "The annotator's queue: next pair, verdicts, skips, progress; gold pairs.",
    },
    {"name": "account", "description": "Who the caller is, and their API tokens."},
    {"name": "users", "description": "Accounts and roles (admins)."},
    {"name": "prompts", "description": "Prompt sets and their prompts."},
    {"name": "self-instruct", "description": "Review of prompt sets generated with SELF-INSTRUCT."},
    {"name": "pool", "description": "The pair pool that keeps annotators supplied."},
    {"name": "jobs", "description": "Background jobs (training, generation, export, import): launch, follow, cancel."},
    {"name": "models", "description": "Registered model versions: policies, reward models, classifiers."},
    {"name": "rewards", "description": "Scoring (prompt, response) pairs with a reward model or a classifier."},
    {"name": "dashboard", "description": "The research dashboard's data: volume, agreement, leaderboard."},
    {"name": "system", "description": "Health check."},
]
# FastAPI's own error schemas, which no handler here sends (``http_errors`` answers every refusal).
FRAMEWORK_ERRORS = ("HTTPValidationError", "ValidationError")


def build_schema(app: FastAPI) -> dict[str, Any]:
    """The document of ``app``'s JSON routes, every refusal a ``Problem``."""
    routes = [context for context in iter_route_contexts(app.routes) if is_json_path(getattr(context, "path", ""))]
    schema = get_openapi(title=app.title, version=app.version, description=DESCRIPTION, routes=routes, tags=TAGS)
    schemas = schema.setdefault("components", {}).setdefault("schemas", {})
    for name in FRAMEWORK_ERRORS:
        schemas.pop(name, None)
    schemas["Problem"] = PROBLEM_SCHEMA
    for operations in schema.get("paths", {}).values():
        for operation in operations.values():
            operation["responses"].pop("422", None)
            operation["responses"]["4XX"] = PROBLEM_RESPONSE
    return schema


def install_openapi(app: FastAPI) -> None:
    """Serve :func:`build_schema` (built once, on first request) as ``app``'s OpenAPI document."""

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            app.openapi_schema = build_schema(app)
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
