"""Every route declares who may use it, and the declaration holds for every kind of caller."""

from __future__ import annotations

import re

import pytest
from fastapi.routing import iter_route_contexts

from app.auth import cookies
from app.auth import service as auth_service
from app.auth.models import Role
from app.auth.policy import Access, endpoints, route_access
from tests.factories import UserFactory

# Routes that FastAPI/Starlette add themselves, with the access they give (documented here on purpose).
FRAMEWORK_ROUTES = {"/api/v1/openapi.json": Access.public, "/static": Access.public}
CALLERS = ("anonymous", "deactivated", "annotator", "researcher", "admin")


def _all_paths(app) -> list[str]:
    return [getattr(c, "path", "") for c in iter_route_contexts(app.routes)]


def test_every_route_declares_a_rule(app):
    undeclared = [f"{sorted(r.methods)} {r.path}" for r in endpoints(app) if route_access(r) is None]
    assert undeclared == []
    others = [p for p in _all_paths(app) if p not in {r.path for r in endpoints(app)}]
    assert sorted(others) == sorted(FRAMEWORK_ROUTES), "a non-API route appeared without a documented rule"


def _caller_credentials(db, settings, caller: str) -> dict:
    """Headers/cookies for one request by this caller: a fresh session and token each time, so
    that a route's side effects (logout, deactivation) cannot leak into the next check."""
    if caller == "anonymous":
        return {"cookie": None, "token": None, "csrf": ""}
    role = Role.annotator if caller == "deactivated" else Role(caller)
    user = UserFactory(role=role)
    session = auth_service.start_session(db, settings, user)
    _, token = auth_service.create_token(db, user=user, name="policy test")
    if caller == "deactivated":
        user.is_active = False
    db.commit()
    from itsdangerous import TimestampSigner

    signed = TimestampSigner(settings.ensure_secret_key(), salt="session").sign(session.raw_id).decode()
    return {"cookie": signed, "token": token, "csrf": session.row.csrf_token}


def _expected_denial(access: Access, caller: str, is_api: bool) -> str | None:
    if access is Access.public:
        return None
    if caller in ("anonymous", "deactivated"):
        return "unauthenticated"
    if Role(caller).rank < access:
        return "forbidden"
    return None


def _request(client, method: str, path: str, creds: dict, is_api: bool):
    url = re.sub(r"\{[^}]+\}", "999999", path)
    client.cookies.clear()
    headers = {}
    if is_api:
        if creds["token"]:
            headers["Authorization"] = f"Bearer {creds['token']}"
        kwargs = {"json": {}} if method in ("POST", "PUT", "PATCH") else {}
        return client.request(method, url, headers=headers, follow_redirects=False, **kwargs)
    if creds["cookie"]:
        client.cookies.set(cookies.SESSION_COOKIE, creds["cookie"])
    kwargs = {"data": {"csrf_token": creds["csrf"]}} if method == "POST" else {}
    return client.request(method, url, follow_redirects=False, **kwargs)


@pytest.mark.parametrize("caller", CALLERS)
def test_routes_answer_each_caller_as_declared(app, client, db, settings, caller):
    checked = 0
    for route in endpoints(app):
        access = route_access(route)
        is_api = route.path.startswith("/api/")
        for method in route.methods - {"HEAD"}:
            if route.path == "/login" and method == "POST":
                continue  # public form, checked by the login tests with a real nonce cookie
            creds = _caller_credentials(db, settings, caller)
            response = _request(client, method, route.path, creds, is_api)
            denial = _expected_denial(access, caller, is_api)
            where = f"{caller} {method} {route.path} -> {response.status_code}"
            if denial == "unauthenticated":
                if is_api:
                    assert response.status_code == 401, where
                else:
                    assert response.status_code == 303 and response.headers["location"].startswith("/login?next="), (
                        where
                    )
            elif denial == "forbidden":
                assert response.status_code == 403, where
            else:
                assert response.status_code not in (401, 403), where
                assert not response.headers.get("location", "").startswith("/login?next="), where
            checked += 1
    assert checked >= 20
