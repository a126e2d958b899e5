"""Issue 18, finding 4: a streamed export is validated, and its query run, before the response starts, so
an id no database holds is a 422 naming the filter, never a 200 and a header row followed by a dropped
connection (``prompt_set_id=2**70`` did that on SQLite, ``2**40`` on PostgreSQL)."""

from __future__ import annotations

import pytest
import sqlalchemy.exc

from app.auth import service as auth_service
from app.auth.models import Role
from app.export.filters import ExportFormat, ExportParams
from app.export.service import stream_export
from tests.export.data import judged_pair
from tests.factories import UserFactory
from tests.helpers import log_in_as


@pytest.mark.parametrize("value", [2**40, 2**70])
@pytest.mark.parametrize("name", ["prompt_set_id", "policy_version_id"])
@pytest.mark.parametrize("fmt", ["csv", "trl"])
def test_an_id_past_the_columns_is_a_422_before_any_byte(client, db, value, name, fmt):
    log_in_as(client, "root", Role.admin)
    judged_pair(db, verdicts=[(UserFactory(), "a")])
    form = {"format": fmt, name: str(value), "csrf_token": client.csrf}
    response = client.post("/admin/export/download", data=form)
    assert response.status_code == 422, response.text[:300]
    assert "content-disposition" not in response.headers
    assert name in response.text and "less than or equal to 2147483647" in response.text


def test_the_export_job_refuses_it_when_queued(client, db):
    _, raw = auth_service.create_token(db, user=UserFactory(role=Role.admin), name="t")
    body = {"kind": "export", "params": {"format": "csv", "prompt_set_id": 2**70}}
    response = client.post("/api/v1/jobs", json=body, headers={"Authorization": f"Bearer {raw}"})
    assert response.status_code == 422 and response.json()["field"] == "params.prompt_set_id", response.text


def test_the_first_query_runs_before_the_stream_is_handed_over(db, session_factory):
    """Past validation (parameters built by code, not by a request) the database itself refuses the value:
    that happens when ``stream_export`` is called, while the caller can still answer with an error."""
    judged_pair(db, verdicts=[(UserFactory(), "a")])
    db.commit()
    refused = 2**70 if db.bind.dialect.name == "sqlite" else 2**40  # past SQLite's INTEGER / PostgreSQL's
    for fmt in (ExportFormat.csv, ExportFormat.trl):
        params = ExportParams.model_construct(
            **{**ExportParams().model_dump(), "format": fmt, "prompt_set_id": refused}
        )
        with pytest.raises((OverflowError, sqlalchemy.exc.DataError)):
            stream_export(session_factory, params)
    rows = b"".join(stream_export(session_factory, ExportParams(format=ExportFormat.trl))).splitlines()
    assert len(rows) == 1  # a good export still streams every row, the first one read ahead included
