"""A request-body limit enforced while the body is read, before routing and authentication.

FastAPI reads (and parses) a JSON or form body before a route's dependencies run, so without a
limit here an anonymous client could make the server hold any amount of memory before it learns
it is not signed in. This pure ASGI middleware sits in front of everything: a declared
``Content-Length`` over the limit is refused at once, unread; otherwise the bytes are counted as
the app receives them and the request stops with 413 as soon as the count passes the limit, so
the excess is never read into memory (the server discards what the client still sends). Chunked
bodies, which declare no length, are counted the same way.

Routes that take larger bodies (the import uploads) are named by a path pattern with their own cap.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from starlette.datastructures import Headers
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.http_errors import problem, wants_json

KIB = 1024
MIB = 1024 * KIB
GIB = 1024 * MIB


class BodyTooLarge(Exception):
    """Raised into the app by ``receive`` once the body has passed its limit; the middleware answers 413."""

    def __init__(self, limit: int) -> None:
        super().__init__(f"request body over the {describe_limit(limit)} limit")
        self.limit = limit


def describe_limit(limit: int) -> str:
    for unit, name in ((GIB, "GiB"), (MIB, "MiB"), (KIB, "KiB")):
        if limit >= unit:
            value = limit / unit
            return f"{value:g} {name}" if value == int(value) else f"{value:.1f} {name}"
    return f"{limit:,} bytes"


def declared_length(scope: Scope) -> int | None:
    value = Headers(scope=scope).get("content-length")
    if value is None:
        return None
    try:
        return int(value)
    except ValueError:
        return None  # the server refuses a malformed length before the app is called


def too_large_response(scope: Scope, limit: int) -> Response:
    title = "Payload too large"
    detail = f"The request body is larger than the {describe_limit(limit)} limit."
    if wants_json(Request(scope)):
        return problem(413, title, detail, max_bytes=limit)
    html = f"<!doctype html>\n<title>{title}</title>\n<h1>{title}</h1>\n<p>{detail}</p>\n"
    return HTMLResponse(html, status_code=413)


class BodyLimitMiddleware:
    """``max_bytes`` for every request; ``overrides`` are ``(path regex, cap)`` pairs, the first full match wins."""

    def __init__(self, app: ASGIApp, *, max_bytes: int, overrides: Iterable[tuple[str, int]] = ()) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.overrides = [(re.compile(pattern), cap) for pattern, cap in overrides]

    def limit_for(self, path: str) -> int:
        for pattern, cap in self.overrides:
            if pattern.fullmatch(path):
                return cap
        return self.max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self.limit_for(scope["path"])
        declared = declared_length(scope)
        if declared is not None and declared > limit:
            await too_large_response(scope, limit)(scope, receive, send)
            return

        received = 0
        exceeded = False
        response_started = False

        async def limited_receive() -> Message:
            nonlocal received, exceeded
            if exceeded:
                raise BodyTooLarge(limit)
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    exceeded = True
                    raise BodyTooLarge(limit)
            return message

        async def guarded_send(message: Message) -> None:
            nonlocal response_started
            if exceeded and not response_started:
                return  # whatever the app makes of a cut-off body (400, 422, 500) gives way to the 413
            if message["type"] == "http.response.start":
                response_started = True
            await send(message)

        try:
            await self.app(scope, limited_receive, guarded_send)
        except Exception:
            if not exceeded or response_started:
                raise
        if exceeded and not response_started:
            await too_large_response(scope, limit)(scope, receive, send)
