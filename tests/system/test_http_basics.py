"""Health check, security headers, and errors that never leak a stack trace."""

from __future__ import annotations

from fastapi.testclient import TestClient

from app.auth.policy import Access, allow


def test_healthz_reports_the_database(client):
    response = client.get("/healthz")
    assert response.status_code == 200 and response.json() == {"status": "ok", "database": "ok"}


def test_security_headers_on_pages_api_and_errors(client):
    for path in ("/login", "/api/v1/me", "/no/such/page", "/static/app.css"):
        response = client.get(path, follow_redirects=False)
        csp = response.headers["content-security-policy"]
        assert "script-src 'self'" in csp and "unsafe-inline" not in csp and "frame-ancestors 'none'" in csp, path
        assert response.headers["x-content-type-options"] == "nosniff"
        assert response.headers["referrer-policy"]


def test_pages_carry_no_inline_script(client):
    html = client.get("/login").text
    assert "<script>" not in html and " on" + "load=" not in html


def test_unexpected_error_is_a_plain_500(app, client):
    def explode() -> None:
        raise RuntimeError("secret internals /etc/passwd")

    app.add_api_route("/api/v1/explode", explode, dependencies=[allow(Access.public)])
    app.add_api_route("/explode", explode, dependencies=[allow(Access.public)])
    with TestClient(app, raise_server_exceptions=False) as c:
        api = c.get("/api/v1/explode")
        page = c.get("/explode")
    assert api.status_code == page.status_code == 500
    for body in (api.text, page.text):
        assert "secret internals" not in body and "Traceback" not in body
    assert api.json()["title"] == "Internal error"


def test_unknown_page_and_api_path_are_404_in_their_own_format(client):
    assert client.get("/api/v1/nothing").headers["content-type"].startswith("application/problem+json")
    page = client.get("/nothing-here")
    assert page.status_code == 404 and page.headers["content-type"].startswith("text/html")
