"""Login, logout, sessions, CSRF and throttling through the real pages."""

from __future__ import annotations

import re

from fastapi.testclient import TestClient
from sqlalchemy import func, select

from app.auth.cookies import SESSION_COOKIE
from app.auth.models import LoginFailure, Role, UserSession
from app.users import service as users
from tests.factories import PASSWORD, UserFactory
from tests.helpers import csrf_from, login


def _post_login(client, username, password):
    page = client.get("/login")
    return client.post(
        "/login",
        data={"username": username, "password": password, "csrf_token": csrf_from(page.text)},
        follow_redirects=False,
    )


class TestLogin:
    def test_good_password_starts_a_session_with_safe_cookie_flags(self, client, db):
        UserFactory(username="ann")
        response = _post_login(client, "ann", PASSWORD)
        assert response.status_code == 303
        cookie = response.headers["set-cookie"]
        assert (
            f"{SESSION_COOKIE}=" in cookie and "HttpOnly" in cookie and "SameSite=lax" in cookie.replace("Lax", "lax")
        )
        assert "Secure" not in cookie  # plain http in this test
        assert db.scalar(select(func.count()).select_from(UserSession)) == 1

    def test_secure_cookie_over_https(self, app, db):
        from fastapi.testclient import TestClient

        UserFactory(username="sec")
        with TestClient(app, base_url="https://testserver") as client:
            response = _post_login(client, "sec", PASSWORD)
        assert response.status_code == 303 and "Secure" in response.headers["set-cookie"]

    def test_unknown_user_and_wrong_password_get_the_same_answer(self, client, db):
        UserFactory(username="bob")
        wrong = _post_login(client, "bob", "not-the-password")
        unknown = _post_login(client, "nobody", "not-the-password")
        assert wrong.status_code == unknown.status_code == 400
        error = re.compile(r'<p class="error" role="alert">([^<]*)</p>')
        assert error.findall(wrong.text) == error.findall(unknown.text) == ["Unknown username or wrong password."]

    def test_a_nul_in_the_username_is_an_ordinary_failed_login(self, client, db):
        UserFactory(username="bob")
        response = _post_login(client, "bob\x00", PASSWORD)  # PostgreSQL refuses NUL even in a query's parameters
        assert response.status_code == 400 and "Unknown username or wrong password." in response.text
        assert db.scalar(select(LoginFailure.username)) == "bob\ufffd"  # counted against the throttle as well

    def test_each_login_gets_a_new_session_and_logout_ends_it(self, client, db):
        UserFactory(username="carl")
        login(client, "carl")
        first = client.cookies.get(SESSION_COOKIE)
        csrf = login(client, "carl")
        second = client.cookies.get(SESSION_COOKIE)
        assert first != second
        assert client.post("/logout", data={"csrf_token": csrf}, follow_redirects=False).status_code == 303
        client.cookies.set(SESSION_COOKIE, second)  # replay the old cookie
        assert client.get("/", follow_redirects=False).headers["location"].startswith("/login")

    def test_deactivated_user_is_refused_on_next_request(self, client, db):
        admin = UserFactory(role=Role.admin)
        user = UserFactory(username="dora")
        login(client, "dora")
        token = client.post(
            "/api/v1/tokens", json={"name": "t"}, headers={"X-CSRF-Token": csrf_from(client.get("/").text)}
        ).json()["token"]
        assert client.get("/", follow_redirects=False).status_code == 200
        users.set_active(db, actor=admin, user_id=user.id, active=False)
        assert client.get("/", follow_redirects=False).headers["location"].startswith("/login")
        client.cookies.clear()
        assert client.get("/api/v1/me", headers={"Authorization": f"Bearer {token}"}).status_code == 401

    def test_next_parameter_is_not_an_open_redirect(self, client, db):
        UserFactory(username="eve")
        page = client.get("/login")
        response = client.post(
            "/login",
            data={
                "username": "eve",
                "password": PASSWORD,
                "csrf_token": csrf_from(page.text),
                "next": "//evil.example/x",
            },
            follow_redirects=False,
        )
        assert response.headers["location"] == "/"


class TestCsrf:
    def test_login_without_token_is_403(self, client, db):
        UserFactory(username="fay")
        client.get("/login")
        response = client.post("/login", data={"username": "fay", "password": PASSWORD}, follow_redirects=False)
        assert response.status_code == 403 and "CSRF" in response.text

    def test_form_post_without_or_with_wrong_token_is_403_and_writes_nothing(self, client, db):
        UserFactory(username="root", role=Role.admin)
        login(client, "root")
        before = len(users.list_users(db))
        for data in ({}, {"csrf_token": "forged"}):
            response = client.post("/admin/users", data={**data, "username": "mallory", "password": "longenough1"})
            assert response.status_code == 403
        assert len(users.list_users(db)) == before

    def test_api_call_with_session_cookie_needs_the_header(self, client, db):
        UserFactory(username="gus")
        csrf = login(client, "gus")
        assert client.post("/api/v1/tokens", json={"name": "x"}).status_code == 403
        assert client.post("/api/v1/tokens", json={"name": "x"}, headers={"X-CSRF-Token": csrf}).status_code == 201


class TestThrottle:
    def test_ten_failures_for_an_account_then_429_with_retry_after(self, client, db, settings):
        UserFactory(username="hal")
        for _ in range(10):
            assert _post_login(client, "hal", "wrong-password").status_code == 400
        blocked = _post_login(client, "hal", PASSWORD)  # even the right password now, from this address
        assert blocked.status_code == 429
        assert "Too many failed logins" in blocked.text
        retry_after = int(blocked.headers["Retry-After"])
        assert 0 < retry_after <= settings.login_window_minutes * 60
        assert db.scalar(select(func.count()).select_from(LoginFailure)) == 10

    def test_failures_from_one_address_do_not_lock_the_account_for_other_addresses(self, client, db, app):
        UserFactory(username="hal")
        for _ in range(10):
            _post_login(client, "hal", "wrong-password")
        assert _post_login(client, "hal", PASSWORD).status_code == 429
        with TestClient(app, client=("203.0.113.7", 40000)) as owner:
            assert _post_login(owner, "hal", PASSWORD).status_code == 303

    def test_ten_failures_from_one_address_do_not_lock_other_accounts_from_it(self, client, db):
        UserFactory(username="ivy")
        for i in range(10):
            _post_login(client, f"ghost{i}", "wrong-password")
        assert _post_login(client, "ivy", PASSWORD).status_code == 303

    def test_one_address_failing_across_accounts_hits_the_per_client_ceiling(self, client, db, settings):
        UserFactory(username="ivy")
        settings.login_max_failures_per_client = 12
        for i in range(12):
            assert _post_login(client, f"ghost{i}", "wrong-password").status_code == 400
        blocked = _post_login(client, "ivy", PASSWORD)
        assert blocked.status_code == 429 and int(blocked.headers["Retry-After"]) > 0
