"""Issue 18, finding 3: who may queue which kind of job, where a job may load a model from, and who
reads a job's tracebacks. Each over HTTP, as a researcher and as an admin, on both backends."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select

from app.auth import service as auth_service
from app.auth.models import Role
from app.jobs.models import Job
from app.jobs.service import HIDDEN_TRACEBACK
from app.registry.locations import refusal
from tests.factories import ModelVersionFactory, UserFactory
from tests.helpers import log_in_as, run_job

UPLOAD = "0" * 32 + ".jsonl"


def bearer(db, role: Role) -> dict[str, str]:
    _, raw = auth_service.create_token(db, user=UserFactory(role=role), name="test")
    return {"Authorization": f"Bearer {raw}"}


def jobs_in(db) -> int:
    return db.scalar(select(func.count()).select_from(Job))


class TestAudience:
    @pytest.mark.parametrize(
        ("kind", "params"),
        [
            ("import", {"upload": UPLOAD, "name": "hh"}),
            ("bootstrap", {"model": "/etc"}),
            ("test.admin_only", {"size": 1}),
        ],
    )
    def test_a_researcher_cannot_queue_an_admins_kind(self, client, db, kind, params):
        response = client.post(
            "/api/v1/jobs", json={"kind": kind, "params": params}, headers=bearer(db, Role.researcher)
        )
        assert response.status_code == 403, response.text
        assert response.json()["detail"] == f"{kind} jobs need the admin role; you are researcher"
        assert jobs_in(db) == 0

    def test_a_researcher_may_export_and_an_annotator_may_not(self, client, db):
        mine = client.post(
            "/api/v1/jobs", json={"kind": "export", "params": {"format": "trl"}}, headers=bearer(db, Role.researcher)
        )
        assert mine.status_code == 201, mine.text
        theirs = client.post(
            "/api/v1/jobs", json={"kind": "export", "params": {"format": "trl"}}, headers=bearer(db, Role.annotator)
        )
        assert theirs.status_code == 403 and jobs_in(db) == 1

    def test_an_admin_can(self, client, db):
        headers = bearer(db, Role.admin)
        for kind, params in [("export", {"format": "trl"}), ("test.admin_only", {"size": 1})]:
            response = client.post("/api/v1/jobs", json={"kind": kind, "params": params}, headers=headers)
            assert response.status_code == 201, response.text
        assert jobs_in(db) == 2

    def test_kinds_are_listed_to_those_who_may_queue_them(self, client, db):
        def names(role: Role) -> list[str]:
            return [k["name"] for k in client.get("/api/v1/jobs/kinds", headers=bearer(db, role)).json()]

        assert "test.admin_only" not in names(Role.researcher) and "reward" in names(Role.researcher)
        assert "test.admin_only" in names(Role.admin)

    def test_the_dashboard_neither_offers_nor_launches_it_for_a_researcher(self, client, db):
        log_in_as(client, "rita", Role.researcher)
        assert "/dashboard/jobs/new/test.admin_only" not in client.get("/dashboard/jobs").text
        assert client.get("/dashboard/jobs/new/test.admin_only").status_code == 403
        form = {"param.size": "1", "csrf_token": client.csrf}
        assert client.post("/dashboard/jobs/new/test.admin_only", data=form).status_code == 403
        assert jobs_in(db) == 0

    def test_the_dashboard_launches_it_for_an_admin(self, client, db):
        log_in_as(client, "ada", Role.admin)
        assert "/dashboard/jobs/new/test.admin_only" in client.get("/dashboard/jobs").text
        form = {"param.size": "1", "csrf_token": client.csrf}
        response = client.post("/dashboard/jobs/new/test.admin_only", data=form, follow_redirects=False)
        assert response.status_code == 303, response.text
        assert jobs_in(db) == 1


def reward(client, headers, backbone: str):
    return client.post("/api/v1/jobs", json={"kind": "reward", "params": {"backbone": backbone}}, headers=headers)


class TestModelLocations:
    def refused_everywhere_else(self, client, db, settings, tmp_path) -> list[str]:
        """Every location outside the rule, existing or not: each gets the same 422, naming the field."""
        models = settings.resolved_models_dir
        (models / "reward").mkdir(parents=True)
        (models / "reward" / "escape").symlink_to("/etc")
        (tmp_path / "elsewhere").mkdir()
        headers = bearer(db, Role.researcher)
        details = []
        for backbone in [
            "/etc",  # exists
            "/etc/passwd",  # exists, a file
            "/no/such/folder",  # does not
            str(tmp_path / "elsewhere"),  # an existing folder outside the models folder
            f"{models}/../secret_key",  # out of the models folder by ..
            str(models / "reward" / "escape"),  # out of it by a link
            str(models),  # the models folder itself is no model
            "http://127.0.0.1:9/model",
            "hf://owner/name",
            "../../etc",
        ]:
            response = reward(client, headers, backbone)
            assert response.status_code == 422, (backbone, response.text)
            assert response.json()["field"] == "params.backbone"
            details.append(response.json()["detail"])
        assert jobs_in(db) == 0
        return details

    def test_anything_but_the_allowed_locations_is_one_and_the_same_422(self, client, db, settings, tmp_path):
        details = self.refused_everywhere_else(client, db, settings, tmp_path)
        assert set(details) == {"params.backbone: " + refusal(settings)}
        assert "hub access" in details[0] and "/etc" not in details[0]
        hub = reward(client, bearer(db, Role.researcher), "sentence-transformers/all-MiniLM-L6-v2")
        assert hub.status_code == 422 and hub.json()["detail"] == details[0]

    def test_with_hub_access_a_hub_id_passes_and_paths_are_still_refused(self, client, db, settings, tmp_path):
        settings.allow_hub_models = True  # the app reads the same settings object
        details = self.refused_everywhere_else(client, db, settings, tmp_path)
        assert set(details) == {"params.backbone: " + refusal(settings)}
        hub = reward(client, bearer(db, Role.researcher), "sentence-transformers/all-MiniLM-L6-v2")
        assert hub.status_code == 201, hub.text

    def test_the_default_a_models_folder_and_a_registered_version_pass(self, client, db, settings, tmp_path):
        outside = tmp_path / "registered-elsewhere"
        ModelVersionFactory(path=str(outside))
        models = settings.resolved_models_dir
        (models / "policy" / "policy-v0").mkdir(parents=True)
        headers = bearer(db, Role.researcher)
        for backbone in [
            "all-MiniLM-L6-v2",
            str(models / "policy" / "policy-v0"),
            str(models / "reward" / "not-there-yet"),  # under the folder: the job says if it is missing
            str(outside),
        ]:
            response = reward(client, headers, backbone)
            assert response.status_code == 201, (backbone, response.text)

    def test_the_bootstraps_model_is_checked_as_well(self, client, db, settings):
        headers = bearer(db, Role.admin)
        response = client.post("/api/v1/jobs", json={"kind": "bootstrap", "params": {"model": "/etc"}}, headers=headers)
        assert response.status_code == 422 and response.json()["field"] == "params.model", response.text
        default = client.post("/api/v1/jobs", json={"kind": "bootstrap", "params": {"model": ""}}, headers=headers)
        assert default.status_code == 201, default.text

    def test_the_dashboard_form_refuses_it_beside_the_input(self, client, db):
        log_in_as(client, "rita", Role.researcher)
        form = {"param.backbone": "/etc", "csrf_token": client.csrf}
        response = client.post("/dashboard/jobs/new/reward", data=form)
        assert response.status_code == 422
        assert "not an allowed model location" in response.text and "/etc/" not in response.text
        assert jobs_in(db) == 0


class TestTracebacks:
    @pytest.fixture()
    def crashed(self, db, session_factory, settings) -> Job:
        """A job whose attempt raised: its log holds the traceback the worker wrote."""
        job = run_job(db, session_factory, settings, kind="test.crash", params={"mode": "raise"})
        assert "Traceback (most recent call last)" in job.log_tail
        return job

    def test_a_researcher_reads_the_error_and_the_log_but_no_traceback(self, client, db, crashed):
        headers = bearer(db, Role.researcher)
        assert client.get(f"/api/v1/jobs/{crashed.id}", headers=headers).json()["error"] == "RuntimeError: boom"
        log = client.get(f"/api/v1/jobs/{crashed.id}/log", headers=headers).json()["log"]
        assert "about to raise" in log and HIDDEN_TRACEBACK in log
        assert "Traceback" not in log and 'File "' not in log and ".py" not in log

    def test_an_admin_reads_the_traceback(self, client, db, crashed):
        log = client.get(f"/api/v1/jobs/{crashed.id}/log", headers=bearer(db, Role.admin)).json()["log"]
        assert "Traceback (most recent call last)" in log and 'raise RuntimeError("boom")' in log

    def test_the_job_page_shows_each_what_they_may_read(self, client, db, crashed):
        log_in_as(client, "rita", Role.researcher)
        page = client.get(f"/dashboard/jobs/{crashed.id}").text
        assert "about to raise" in page and "Traceback" not in page
        client.cookies.clear()
        log_in_as(client, "ada", Role.admin)
        assert "Traceback (most recent call last)" in client.get(f"/dashboard/jobs/{crashed.id}").text
