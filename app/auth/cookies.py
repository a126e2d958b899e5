"""The signed session cookie and the pre-login CSRF nonce cookie (itsdangerous signers)."""

from __future__ import annotations

import hashlib
import hmac

from fastapi import Request, Response
from itsdangerous import BadSignature, TimestampSigner

SESSION_COOKIE = "rlhf_session"
NONCE_COOKIE = "rlhf_csrf"


def _signer(secret: str, salt: str) -> TimestampSigner:
    return TimestampSigner(secret, salt=salt)


def _secure(request: Request, forced: bool | None) -> bool:
    return forced if forced is not None else request.url.scheme == "https"


def read_session_id(request: Request, secret: str, max_age_s: int) -> str | None:
    value = request.cookies.get(SESSION_COOKIE)
    if not value:
        return None
    try:
        return _signer(secret, "session").unsign(value, max_age=max_age_s).decode()
    except BadSignature:
        return None


def set_session_cookie(
    response: Response, request: Request, *, secret: str, raw_id: str, max_age_s: int, secure: bool | None
) -> None:
    value = _signer(secret, "session").sign(raw_id).decode()
    response.set_cookie(
        SESSION_COOKIE,
        value,
        max_age=max_age_s,
        httponly=True,
        samesite="lax",
        secure=_secure(request, secure),
        path="/",
    )


def clear_session_cookie(response: Response) -> None:
    response.delete_cookie(SESSION_COOKIE, path="/")


def anonymous_csrf_token(secret: str, nonce: str) -> str:
    """Token for forms shown before login: an HMAC of a random nonce kept in its own cookie."""
    return hmac.new(secret.encode(), b"csrf:" + nonce.encode(), hashlib.sha256).hexdigest()


def set_nonce_cookie(response: Response, request: Request, nonce: str, secure: bool | None) -> None:
    response.set_cookie(
        NONCE_COOKIE, nonce, httponly=True, samesite="strict", secure=_secure(request, secure), path="/"
    )
