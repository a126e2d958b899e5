"""API tokens: shown once, stored hashed, revocable, refused once revoked."""

from __future__ import annotations

from sqlalchemy import select

from app.auth.models import ApiToken
from tests.factories import UserFactory
from tests.helpers import login


class TestApiTokens:
    def test_token_lifecycle(self, client, db):
        UserFactory(username="tess")
        csrf = login(client, "tess")
        created = client.post("/api/v1/tokens", json={"name": "script"}, headers={"X-CSRF-Token": csrf})
        assert created.status_code == 201
        raw = created.json()["token"]
        row = db.scalar(select(ApiToken).where(ApiToken.id == created.json()["id"]))
        assert row.token_hash != raw and raw not in row.token_hash and len(row.token_hash) == 64
        client.cookies.clear()
        auth = {"Authorization": f"Bearer {raw}"}
        me = client.get("/api/v1/me", headers=auth)
        assert me.status_code == 200 and me.json()["username"] == "tess"
        db.refresh(row)
        assert row.last_used_at is not None  # recorded (at most every few minutes, not per request)
        listed = client.get("/api/v1/tokens", headers=auth).json()
        assert all("token" not in t for t in listed) and listed[0]["prefix"] == raw[:11]
        assert client.delete(f"/api/v1/tokens/{row.id}", headers=auth).status_code == 200
        assert client.get("/api/v1/me", headers=auth).status_code == 401

    def test_a_name_a_database_cannot_store_is_a_422_naming_it(self, client, db):
        UserFactory(username="nul")
        csrf = login(client, "nul")
        refused = client.post("/api/v1/tokens", json={"name": "script\x00"}, headers={"X-CSRF-Token": csrf})
        assert refused.status_code == 422 and refused.json()["field"] == "name" and "NUL" in refused.json()["detail"]
        assert db.scalar(select(ApiToken)) is None

    def test_token_page_shows_the_secret_once(self, client, db):
        UserFactory(username="uma")
        csrf = login(client, "uma")
        page = client.post("/account/tokens", data={"csrf_token": csrf, "name": "laptop"})
        assert page.status_code == 200 and "shown this once" in page.text
        again = client.get("/account/tokens")
        assert "laptop" in again.text and "shown this once" not in again.text

    def test_unknown_token_is_401(self, client, db):
        response = client.get("/api/v1/me", headers={"Authorization": "Bearer rlhf_nonsense"})
        assert response.status_code == 401 and response.headers["content-type"].startswith("application/problem+json")

    def test_cannot_revoke_another_users_token(self, client, db):
        from app.auth import service

        other = UserFactory()
        token, _ = service.create_token(db, user=other, name="theirs")
        UserFactory(username="vic")
        csrf = login(client, "vic")
        response = client.delete(f"/api/v1/tokens/{token.id}", headers={"X-CSRF-Token": csrf})
        assert response.status_code == 404
        db.refresh(token)
        assert token.revoked_at is None
