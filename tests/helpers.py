"""Small helpers for tests that drive the app over HTTP."""

from __future__ import annotations

import re

from fastapi.testclient import TestClient

from tests.factories import PASSWORD

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
