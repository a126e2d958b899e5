"""Fixtures for the prompts tests: an admin's browser and API tokens by role."""

from __future__ import annotations

import pytest

from app.auth.models import Role
from tests.helpers import api_headers, log_in_as


@pytest.fixture()
def admin_client(client, db):
    log_in_as(client, "root", Role.admin)
    return client


@pytest.fixture()
def admin_api(db) -> dict[str, str]:
    return api_headers(db, Role.admin)


@pytest.fixture()
def researcher_api(db) -> dict[str, str]:
    return api_headers(db, Role.researcher)


@pytest.fixture(scope="session")
def oversize_body() -> bytes:
    """A JSONL body just over the upload cap (built once: it is 50 MB)."""
    from app.prompts.importers import MAX_UPLOAD_BYTES

    line = b'{"prompt": "' + b"x" * 1000 + b'"}\n'
    return line * (MAX_UPLOAD_BYTES // len(line) + 1100)
