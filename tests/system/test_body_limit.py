"""Request bodies are limited while they are read, before routing and sign-in (issue 18).

An anonymous over-limit body is answered 413, not 401 or 422, whether it declares its length or
is chunked; the import uploads keep their own, larger cap.
"""

from __future__ import annotations

import pytest

from app.auth.models import Role
from app.body_limit import BodyLimitMiddleware, describe_limit
from app.importing.views import UPLOAD_BODY_LIMIT as PREFERENCE_UPLOAD_LIMIT
from app.main import BODY_LIMIT_OVERRIDES, PROMPT_BODY_LIMIT, PROMPT_UPLOAD_LIMIT
from app.prompts.importers import MAX_UPLOAD_BYTES
from tests.factories import PromptSetFactory
from tests.helpers import api_headers, run_async
from tests.prompts.util import prompt_count

MIB = 1024 * 1024
JUDGEMENTS = "/api/v1/annotation/judgements"


def _chunks(total: int, size: int = 64 * 1024):
    sent = 0
    while sent < total:
        yield b"x" * min(size, total - sent)
        sent += size


# --- the middleware on its own: it stops reading at the limit ---------------------------------


class _Endless:
    """``receive`` of a client that would send 64 KiB chunks forever; counts what was read."""

    def __init__(self) -> None:
        self.reads = 0

    async def __call__(self) -> dict:
        self.reads += 1
        return {"type": "http.request", "body": b"x" * 65536, "more_body": True}


async def _read_all(scope, receive, send) -> None:
    """An app that buffers the whole body, as FastAPI does before the route's dependencies run."""
    body = b""
    while True:
        message = await receive()
        body += message.get("body", b"")
        if not message.get("more_body"):
            break
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"ok"})


async def _swallowing(scope, receive, send) -> None:
    """An app that turns a failed body read into its own answer (as FastAPI's 400 "error parsing the body")."""
    try:
        await _read_all(scope, receive, send)
    except Exception:
        await send({"type": "http.response.start", "status": 400, "headers": []})
        await send({"type": "http.response.body", "body": b"bad"})


def _call(app, path: str, headers: list[tuple[bytes, bytes]], receive) -> list[dict]:
    sent: list[dict] = []

    async def send(message: dict) -> None:
        sent.append(message)

    scope = {"type": "http", "method": "POST", "path": path, "headers": headers, "query_string": b""}
    run_async(app(scope, receive, send))
    return sent


@pytest.mark.parametrize("inner", [_read_all, _swallowing])
def test_a_chunked_body_is_cut_off_at_the_limit_and_never_read_further(inner):
    receive = _Endless()
    sent = _call(BodyLimitMiddleware(inner, max_bytes=MIB), "/api/v1/x", [], receive)
    assert sent[0]["status"] == 413
    assert [m for m in sent if m["type"] == "http.response.start"] == [sent[0]]  # the app's own answer was dropped
    assert receive.reads == MIB // 65536 + 1  # one chunk past the limit, then no more


def test_a_declared_length_over_the_limit_is_refused_unread():
    receive = _Endless()
    headers = [(b"content-length", str(200 * MIB).encode())]
    sent = _call(BodyLimitMiddleware(_read_all, max_bytes=MIB), "/login", headers, receive)
    assert sent[0]["status"] == 413 and receive.reads == 0
    assert (b"content-type", b"text/html; charset=utf-8") in sent[0]["headers"]


def test_the_import_routes_have_their_own_caps():
    limits = BodyLimitMiddleware(_read_all, max_bytes=MIB, overrides=BODY_LIMIT_OVERRIDES)
    assert limits.limit_for("/api/v1/prompt-sets/7/import") == PROMPT_UPLOAD_LIMIT > MAX_UPLOAD_BYTES
    assert limits.limit_for("/admin/prompt-sets/7/import") == PROMPT_UPLOAD_LIMIT
    assert limits.limit_for("/admin/import") == PREFERENCE_UPLOAD_LIMIT
    assert limits.limit_for("/admin/prompt-sets/7/prompts") == PROMPT_BODY_LIMIT
    assert limits.limit_for("/api/v1/prompt-sets/7/prompts/3") == PROMPT_BODY_LIMIT
    for path in (JUDGEMENTS, "/api/v1/prompt-sets/7/import/x", "/admin/import/../x", "/login", "/api/v1/prompt-sets"):
        assert limits.limit_for(path) == MIB, path


def test_limits_are_named_readably():
    assert describe_limit(MIB) == "1 MiB" and describe_limit(2 * 1024**3) == "2 GiB"
    assert describe_limit(PROMPT_UPLOAD_LIMIT) == "51 MiB" and describe_limit(1500) == "1.5 KiB"


# --- the app --------------------------------------------------------------------------------


def _is_413_problem(response) -> None:
    assert response.status_code == 413, response.text[:300]
    assert response.headers["content-type"] == "application/problem+json"
    body = response.json()
    assert body["status"] == 413 and body["title"] == "Payload too large" and "1 MiB" in body["detail"]
    assert body["max_bytes"] == MIB
    assert response.headers["x-content-type-options"] == "nosniff"  # the security headers still apply


def test_an_anonymous_json_body_over_the_limit_is_413_not_401(client):
    body = b'{"pair_id": 1, "choice": "a", "note": "' + b"x" * (2 * MIB) + b'"}'
    _is_413_problem(client.post(JUDGEMENTS, content=body, headers={"content-type": "application/json"}))


def test_an_anonymous_chunked_json_body_over_the_limit_is_413_not_401(client):
    response = client.post(JUDGEMENTS, content=_chunks(2 * MIB), headers={"content-type": "application/json"})
    assert "content-length" not in response.request.headers  # really sent chunked
    _is_413_problem(response)


def test_a_page_form_over_the_limit_is_413_in_html(client):
    response = client.post(
        "/login", content=_chunks(2 * MIB), headers={"content-type": "application/x-www-form-urlencoded"}
    )
    assert response.status_code == 413 and response.headers["content-type"].startswith("text/html")
    assert "Payload too large" in response.text


def test_a_body_at_the_limit_goes_on_to_sign_in_and_validation(client, db):
    padded = b'{"pair_id": 1, "choice": "a", "note": "' + b"x" * (MIB - 100) + b'"}'
    assert len(padded) <= MIB
    assert client.post(JUDGEMENTS, content=padded, headers={"content-type": "application/json"}).status_code == 401
    created = client.post("/api/v1/prompt-sets", json={"name": "normal"}, headers=api_headers(db, Role.admin))
    assert created.status_code == 201, created.text


def test_an_import_upload_over_a_mebibyte_within_its_own_cap_still_works(client, db):
    prompt_set = PromptSetFactory()
    lines = b"".join(b'{"prompt": "q%d %s"}\n' % (i, b"x" * 1000) for i in range(3000))
    assert MIB * 2 < len(lines) < MAX_UPLOAD_BYTES
    response = client.post(
        f"/api/v1/prompt-sets/{prompt_set.id}/import",
        headers=api_headers(db, Role.admin),
        files={"file": ("p.jsonl", lines, "application/octet-stream")},
    )
    assert response.status_code == 200, response.text[:300]
    assert response.json()["imported"] == 3000 and prompt_count(db, prompt_set.id) == 3000


def test_an_anonymous_import_upload_over_its_own_cap_is_413_before_sign_in(client):
    response = client.post(
        "/api/v1/prompt-sets/1/import",
        content=_chunks(PROMPT_UPLOAD_LIMIT + 1),
        headers={"content-type": "multipart/form-data; boundary=x"},
    )
    assert response.status_code == 413 and describe_limit(PROMPT_UPLOAD_LIMIT) in response.json()["detail"]
