"""Admin user management through the pages and the API, including bad input that must write nothing."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select

from app.auth.models import Role, User, UserSession
from tests.factories import PASSWORD, UserFactory
from tests.helpers import api_headers, csrf_from, log_in_as, login


@pytest.fixture()
def admin_client(client, db):
    log_in_as(client, "root", Role.admin)
    return client


def _user_count(db) -> int:
    return db.scalar(select(func.count()).select_from(User))


class TestAdminPages:
    def test_create_change_role_deactivate_reset(self, admin_client, db):
        c = admin_client
        created = c.post(
            "/admin/users",
            data={"csrf_token": c.csrf, "username": "newbie", "password": "longenough1", "role": "annotator"},
        )
        assert created.status_code == 200 and "User created." in created.text
        user = db.scalar(select(User).where(User.username == "newbie"))
        assert user.role is Role.annotator
        c.post(f"/admin/users/{user.id}/role", data={"csrf_token": c.csrf, "role": "researcher"})
        db.refresh(user)
        assert user.role is Role.researcher
        reset = c.post(f"/admin/users/{user.id}/password", data={"csrf_token": c.csrf})
        assert "shown once" in reset.text
        c.post(f"/admin/users/{user.id}/active", data={"csrf_token": c.csrf, "active": "0"})
        db.refresh(user)
        assert user.is_active is False
        assert "deactivated" in c.get("/admin/users").text

    def test_reset_password_ends_sessions_and_old_password(self, admin_client, db, app):
        from fastapi.testclient import TestClient

        target = UserFactory(username="wendy")
        with TestClient(app) as other:
            login(other, "wendy")
            assert db.scalar(select(func.count()).select_from(UserSession).where(UserSession.user_id == target.id)) == 1
            admin_client.post(f"/admin/users/{target.id}/password", data={"csrf_token": admin_client.csrf})
            assert other.get("/", follow_redirects=False).status_code == 303
            page = other.get("/login")
            failed = other.post(
                "/login", data={"username": "wendy", "password": PASSWORD, "csrf_token": csrf_from(page.text)}
            )
            assert failed.status_code == 400

    def test_reset_password_revokes_api_tokens(self, admin_client, db):
        from app.auth import service as auth_service

        target = UserFactory(username="tokenholder")
        _, raw = auth_service.create_token(db, user=target, name="cli")
        token = {"Authorization": f"Bearer {raw}"}
        assert admin_client.get("/api/v1/annotation/progress", headers=token).status_code == 200
        admin_client.post(f"/admin/users/{target.id}/password", data={"csrf_token": admin_client.csrf})
        assert admin_client.get("/api/v1/annotation/progress", headers=token).status_code == 401

    def test_last_admin_cannot_be_demoted(self, admin_client, db):
        root = db.scalar(select(User).where(User.username == "root"))
        page = admin_client.post(
            f"/admin/users/{root.id}/role", data={"csrf_token": admin_client.csrf, "role": "annotator"}
        )
        assert page.status_code == 409 and "last active admin" in page.text
        db.refresh(root)
        assert root.role is Role.admin

    @pytest.mark.parametrize(
        ("form", "status", "message"),
        [
            ({"username": "", "password": "longenough1", "role": "annotator"}, 422, "username: must not be empty"),
            ({"username": "x" * 65, "password": "longenough1", "role": "annotator"}, 422, "at most 64 characters"),
            ({"username": "ok", "password": "short", "role": "annotator"}, 422, "at least 8 characters"),
            ({"username": "ok", "password": "longenough1", "role": "emperor"}, 422, "unknown role"),
            ({"username": "root", "password": "longenough1", "role": "annotator"}, 409, "is taken"),
            ({"username": "a<b>", "password": "longenough1", "role": "annotator"}, 422, "may hold only"),
        ],
    )
    def test_bad_form_input_names_the_problem_and_writes_nothing(self, admin_client, db, form, status, message):
        before = _user_count(db)
        response = admin_client.post("/admin/users", data={"csrf_token": admin_client.csrf, **form})
        assert response.status_code == status
        assert message in response.text
        assert _user_count(db) == before

    def test_oversized_form_field_is_rejected(self, admin_client, db):
        before = _user_count(db)
        response = admin_client.post(
            "/admin/users", data={"csrf_token": admin_client.csrf, "username": "y" * 5000, "password": "longenough1"}
        )
        assert response.status_code == 422 and "username" in response.text
        assert _user_count(db) == before


class TestUsersApi:
    @pytest.fixture()
    def auth(self, db):
        return api_headers(db, Role.admin)

    def test_create_and_update(self, client, db, auth):
        created = client.post(
            "/api/v1/users",
            json={"username": "api-user", "password": "longenough1", "role": "researcher"},
            headers=auth,
        )
        assert created.status_code == 201 and created.json()["role"] == "researcher"
        uid = created.json()["id"]
        updated = client.patch(f"/api/v1/users/{uid}", json={"role": "annotator", "is_active": False}, headers=auth)
        assert updated.status_code == 200 and updated.json() == {
            **updated.json(),
            "role": "annotator",
            "is_active": False,
        }

    @pytest.mark.parametrize(
        ("kwargs", "status", "needle"),
        [
            ({"json": {"username": "", "password": "longenough1"}}, 422, "username"),
            ({"json": {"username": "z" * 500, "password": "longenough1"}}, 422, "username"),
            ({"json": {"username": "zed", "password": "longenough1", "role": "emperor"}}, 422, "role"),
            ({"json": {"username": "zed", "password": "longenough1", "extra": 1}}, 422, "extra"),
            (
                {"content": b'{"username": "zed", ', "headers": {"content-type": "application/json"}},
                422,
                "malformed JSON",
            ),
            (
                {"content": b"username=zed", "headers": {"content-type": "text/plain"}},
                415,
                "Content-Type must be application/json",
            ),
        ],
    )
    def test_bad_input_is_a_4xx_naming_the_problem(self, client, db, auth, kwargs, status, needle):
        before = _user_count(db)
        kwargs = dict(kwargs)
        headers = {**auth, **kwargs.pop("headers", {})}
        response = client.post("/api/v1/users", headers=headers, **kwargs)
        assert response.status_code == status, response.text
        assert response.headers["content-type"].startswith("application/problem+json")
        assert needle in response.json()["detail"]
        assert _user_count(db) == before

    def test_duplicate_username_is_409(self, client, db, auth):
        UserFactory(username="taken")
        before = _user_count(db)
        response = client.post("/api/v1/users", json={"username": "taken", "password": "longenough1"}, headers=auth)
        assert response.status_code == 409 and "taken" in response.json()["detail"]
        assert _user_count(db) == before

    def test_password_change_over_the_api_revokes_the_users_tokens(self, client, db, auth):
        from app.auth import service as auth_service

        target = UserFactory(role=Role.annotator)
        _, raw = auth_service.create_token(db, user=target, name="cli")
        token = {"Authorization": f"Bearer {raw}"}
        assert client.get("/api/v1/annotation/progress", headers=token).status_code == 200
        changed = client.patch(f"/api/v1/users/{target.id}", json={"password": "a-new-password-1"}, headers=auth)
        assert changed.status_code == 200, changed.text
        assert client.get("/api/v1/annotation/progress", headers=token).status_code == 401

    def test_refused_update_writes_nothing(self, client, db, auth):
        target = UserFactory(role=Role.annotator)
        response = client.patch(
            f"/api/v1/users/{target.id}", json={"role": "researcher", "password": "short"}, headers=auth
        )
        assert response.status_code == 422
        db.refresh(target)
        assert target.role is Role.annotator
