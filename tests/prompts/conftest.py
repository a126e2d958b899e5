"""Fixtures for the prompts tests: an admin's browser and API tokens by role."""

from __future__ import annotations

import pytest

from app.auth import service as auth_service
from app.auth.models import Role
from tests.factories import UserFactory
from tests.helpers import login


@pytest.fixture()
def admin_client(client, db):
    UserFactory(username="root", role=Role.admin)
    client.csrf = login(client, "root")
    return client


def _bearer(db, role: Role) -> dict[str, str]:
    user = UserFactory(role=role)
    _, raw = auth_service.create_token(db, user=user, name="api")
    return {"Authorization": f"Bearer {raw}"}


@pytest.fixture()
def admin_api(db) -> dict[str, str]:
    return _bearer(db, Role.admin)


@pytest.fixture()
def researcher_api(db) -> dict[str, str]:
    return _bearer(db, Role.researcher)


@pytest.fixture(scope="session")
def oversize_body() -> bytes:
    """A JSONL body just over the upload cap (built once: it is 50 MB)."""
    from app.prompts.importers import MAX_UPLOAD_BYTES

    line = b'{"prompt": "' + b"x" * 1000 + b'"}\n'
    return line * (MAX_UPLOAD_BYTES // len(line) + 1100)
