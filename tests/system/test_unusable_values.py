"""Values a database refuses (an id past PostgreSQL's integer range, a NUL in a filter, a page number past
64 bits) are bad input: a clear 422 on either backend, never a 500."""

from __future__ import annotations

import pytest

from app.auth.models import Role
from tests.helpers import log_in_as

HUGE_ID = 2**31  # one past PostgreSQL's integer; SQLite stores up to 2**63 - 1


@pytest.mark.parametrize(
    ("url", "found"),
    [
        (f"/api/v1/jobs/{HUGE_ID}", "job"),
        (f"/api/v1/models/{HUGE_ID}", "model version"),
        (f"/api/v1/prompt-sets/{HUGE_ID}", "prompt set"),
    ],
)
def test_an_id_past_the_columns_range_is_not_found_or_refused(client, db, url, found):
    log_in_as(client, "ada", Role.admin)
    response = client.get(url)
    if db.bind.dialect.name == "postgresql":
        assert response.status_code == 422 and response.json()["detail"].endswith("integer out of range.")
    else:
        assert response.status_code == 404 and response.json()["detail"] == f"{found} {HUGE_ID} not found"


def test_a_nul_in_a_query_filter_is_refused_or_matches_nothing(client, db):
    log_in_as(client, "ada", Role.admin)
    response = client.get("/api/v1/jobs", params={"kind": "export\x00"})
    if db.bind.dialect.name == "postgresql":
        assert response.status_code == 422 and "NUL" in response.json()["detail"]
    else:
        assert response.status_code == 200 and response.json()["total"] == 0


def test_a_page_number_past_64_bits_is_a_422_on_a_page(client, db):
    log_in_as(client, "ada", Role.admin)
    response = client.get("/dashboard/jobs", params={"page": str(10**20)})
    assert response.status_code == 422 and "A value in the request cannot be used" in response.text
