"""Small helpers for tests that drive the app over HTTP."""

from __future__ import annotations

import re

from fastapi.testclient import TestClient
from sqlalchemy.orm import Session

from app.auth.models import Role, User
from tests.factories import PASSWORD, UserFactory

CSRF_RE = re.compile(r'name="csrf_token" value="([^"]+)"')


def csrf_from(html: str) -> str:
    match = CSRF_RE.search(html)
    assert match, "page has no CSRF token"
    return match.group(1)


def login(client: TestClient, username: str, password: str = PASSWORD) -> str:
    """Log in through the real form; returns the session's CSRF token for later form posts."""
    page = client.get("/login")
    response = client.post(
        "/login", data={"username": username, "password": password, "csrf_token": csrf_from(page.text)}, follow_redirects=False
    )
    assert response.status_code == 303, response.text
    home = client.get("/")
    return csrf_from(home.text)


def log_in_as(client: TestClient, username: str, role: Role) -> User:
    """Create ``username`` with ``role`` and log ``client`` in as them; ``client.csrf`` keeps the token
    that the test's later form posts need."""
    user = UserFactory(username=username, role=role)
    client.csrf = login(client, username)  # type: ignore[attr-defined]
    return user


def api_headers(db: Session, role: Role) -> dict[str, str]:
    """The Authorization header of a fresh API token for a new user with ``role``."""
    from app.auth import service as auth_service

    _, raw = auth_service.create_token(db, user=UserFactory(role=role), name="api")
    return {"Authorization": f"Bearer {raw}"}
