"""The JSON API: who may use it, validation answers, and the rows behind each answer."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select

from app.auth import service as auth_service
from app.auth.models import Role
from app.jobs.lifecycle import claim_next
from app.jobs.models import Job, JobMetric, JobStatus
from tests.factories import UserFactory


def bearer(db, role: Role):
    user = UserFactory(role=role)
    _, raw = auth_service.create_token(db, user=user, name="test")
    return user, {"Authorization": f"Bearer {raw}"}


@pytest.fixture()
def researcher(db):
    return bearer(db, Role.researcher)


def create(client, headers, **body):
    return client.post("/api/v1/jobs", json={"kind": "test.offered", "params": {"size": 2}, **body}, headers=headers)


class TestAccess:
    def test_annotators_and_strangers_are_refused(self, client, db):
        _, headers = bearer(db, Role.annotator)
        assert client.get("/api/v1/jobs", headers=headers).status_code == 403
        assert client.get("/api/v1/jobs").status_code == 401


class TestCreate:
    def test_creates_a_queued_job_owned_by_the_caller(self, client, db, researcher, settings):
        user, headers = researcher
        response = create(client, headers)
        assert response.status_code == 201, response.text
        body = response.json()
        assert (body["status"], body["created_by_id"], body["params"]) == ("queued", user.id, {"size": 2, "name": "x"})
        job = db.get(Job, body["id"])
        assert (job.kind, job.max_attempts) == ("test.offered", settings.job_max_attempts)

    @pytest.mark.parametrize(
        ("body", "field"),
        [
            ({"kind": "nope"}, "kind"),
            ({"params": {"size": 0}}, "params.size"),
            ({"params": {}}, "params.size"),
            ({"max_attempts": 0}, "max_attempts"),
            ({"surprise": 1}, "surprise"),
            ({"params": {"size": 2, "name": "nul\x00"}}, "params.name"),  # PostgreSQL's JSONB cannot hold it
        ],
    )
    def test_bad_input_is_a_422_naming_the_field_and_writes_nothing(self, client, db, researcher, body, field):
        response = create(client, researcher[1], **body)
        assert response.status_code == 422, response.text
        problem = response.json()
        named = problem.get("field") or ",".join(e["field"] for e in problem.get("errors", []))
        assert field in named
        assert db.scalar(select(func.count()).select_from(Job)) == 0

    def test_kinds_lists_only_what_the_ui_offers(self, client, researcher):
        names = [k["name"] for k in client.get("/api/v1/jobs/kinds", headers=researcher[1]).json()]
        assert "test.offered" in names and "test.record" not in names


class TestRead:
    def test_list_get_metrics_and_log(self, client, db, researcher):
        headers = researcher[1]
        ids = [create(client, headers, params={"size": n}).json()["id"] for n in (1, 2, 3)]
        page = client.get(
            "/api/v1/jobs", params={"status": "queued", "kind": "test.offered", "limit": 2}, headers=headers
        ).json()
        assert (page["total"], [j["id"] for j in page["items"]]) == (3, [ids[2], ids[1]])
        assert client.get("/api/v1/jobs", params={"status": "bogus"}, headers=headers).status_code == 422
        job = db.get(Job, ids[0])
        job.log_tail = "hello\n"
        db.add_all(
            [
                JobMetric(job_id=job.id, step=s, name=n, value=v)
                for s, n, v in [(2, "loss", 0.5), (1, "loss", 1.0), (1, "kl", 0.1)]
            ]
        )
        db.commit()
        assert client.get(f"/api/v1/jobs/{job.id}", headers=headers).json()["id"] == job.id
        points = client.get(f"/api/v1/jobs/{job.id}/metrics", params={"name": "loss"}, headers=headers).json()
        assert [(p["step"], p["value"]) for p in points] == [(1, 1.0), (2, 0.5)]
        assert len(client.get(f"/api/v1/jobs/{job.id}/metrics", params={"since_step": 1}, headers=headers).json()) == 1
        assert client.get(f"/api/v1/jobs/{job.id}/log", headers=headers).json() == {"job_id": job.id, "log": "hello\n"}
        assert client.get("/api/v1/jobs/999999", headers=headers).status_code == 404
        assert client.get("/api/v1/jobs/999999/metrics", headers=headers).status_code == 404


class TestCancel:
    def test_creator_and_admin_may_cancel_others_may_not(self, client, db, researcher):
        job_id = create(client, researcher[1]).json()["id"]
        _, other = bearer(db, Role.researcher)
        assert client.post(f"/api/v1/jobs/{job_id}/cancel", headers=other).status_code == 403
        assert db.get(Job, job_id).status is JobStatus.queued
        response = client.post(f"/api/v1/jobs/{job_id}/cancel", headers=researcher[1])
        assert (response.status_code, response.json()["status"]) == (200, "cancelled")
        again = client.post(f"/api/v1/jobs/{job_id}/cancel", headers=researcher[1])
        assert (again.status_code, again.json()["status"]) == (200, "cancelled")

    def test_cancelling_a_running_job_requests_it(self, client, db, researcher):
        job_id = create(client, researcher[1]).json()["id"]
        claim_next(db, worker_id="w", kinds=["test.offered"], lease_seconds=60)
        db.commit()
        _, admin = bearer(db, Role.admin)
        body = client.post(f"/api/v1/jobs/{job_id}/cancel", headers=admin).json()
        assert (body["status"], body["cancel_requested"]) == ("running", True)
