"""The pool and model pages: escaped model output, per-version counts, promote and archive by form,
the annotate page's nudge, and who may see what."""

from __future__ import annotations

from sqlalchemy import select

from app.auth.models import Role
from app.jobs.models import Job
from app.pool.models import PairStatus
from app.registry.models import ModelStatus
from tests.factories import ModelVersionFactory, PairFactory, PromptFactory, ResponseFactory, UserFactory
from tests.helpers import csrf_from, login
from tests.pool.conftest import add_prompts

XSS = '<script>alert("pwned")</script><img src=x onerror=alert(1)>'


def _pair(version, text_a: str = "plain answer", text_b: str = XSS, other=None):
    prompt = PromptFactory(messages=[{"role": "user", "content": "Prompt with <b>markup</b>"}])
    a = ResponseFactory(prompt=prompt, policy_version_id=version.id, text=text_a, source=f"policy:{version.name}")
    b = ResponseFactory(prompt=prompt, policy_version_id=(other or version).id, text=text_b)
    return PairFactory(prompt=prompt, response_a=a, response_b=b, cross_version=other is not None)


class TestPoolPage:
    def test_lists_pending_pairs_escaped_with_per_version_counts(self, client, db):
        promoted = ModelVersionFactory(name="policy-promoted", status=ModelStatus.promoted)
        ready = ModelVersionFactory(name="policy-ready")
        _pair(promoted)
        _pair(promoted, other=ready)
        done = _pair(ready, text_a="already judged")
        done.status = PairStatus.complete
        UserFactory(username="rita", role=Role.researcher)
        db.commit()
        login(client, "rita")

        page = client.get("/pool")

        assert page.status_code == 200
        html = page.text
        assert XSS not in html and "<b>markup</b>" not in html
        assert "&lt;script&gt;alert(&#34;pwned&#34;)&lt;/script&gt;" in html and "&lt;b&gt;markup&lt;/b&gt;" in html
        assert "2 pending pair(s)" in html and "already judged" not in html
        counts = html.split('id="version-counts"')[1].split("</table>")[0]
        assert "policy-promoted" in counts and "<td>1</td><td>1</td>" in counts  # one same-, one cross-version
        assert "<strong>2</strong> pending of a target of 50" in html

    def test_generate_button_queues_a_job(self, client, db):
        ModelVersionFactory(status=ModelStatus.promoted)
        add_prompts(db, 2)
        UserFactory(username="rita", role=Role.researcher)
        db.commit()
        csrf = login(client, "rita")
        answer = client.post("/pool/generate", data={"csrf_token": csrf}, follow_redirects=False)
        assert answer.status_code == 303 and answer.headers["location"] == "/pool?queued=1"
        assert db.scalars(select(Job.kind)).all() == ["generate"]
        assert client.post("/pool/generate", data={}, follow_redirects=False).status_code == 403  # no CSRF token

    def test_annotators_may_not_see_it(self, client, db):
        UserFactory(username="ann", role=Role.annotator)
        db.commit()
        login(client, "ann")
        assert client.get("/pool").status_code == 403
        assert client.get("/models").status_code == 403


class TestModelPages:
    def test_list_and_detail(self, client, db):
        ModelVersionFactory(
            name="policy-a",
            status=ModelStatus.promoted,
            base_model="<i>base</i>",
            config={"backend": "openai", "base_url": "http://x"},
        )
        ModelVersionFactory(name="rm-1", kind="reward")
        UserFactory(username="rita", role=Role.researcher)
        db.commit()
        login(client, "rita")
        listing = client.get("/models")
        assert listing.status_code == 200 and "policy-a" in listing.text and "rm-1" in listing.text
        assert "&lt;i&gt;base&lt;/i&gt;" in listing.text and "<i>base</i>" not in listing.text
        version_id = db.scalar(
            select(ModelVersionFactory._meta.model.id).where(ModelVersionFactory._meta.model.name == "policy-a")
        )
        detail = client.get(f"/models/{version_id}")
        assert detail.status_code == 200 and "http://x" in detail.text and "openai" in detail.text
        assert client.get("/models/999999").status_code == 404

    def test_promote_and_archive_by_form(self, client, db):
        old = ModelVersionFactory(name="old", status=ModelStatus.promoted)
        new = ModelVersionFactory(name="new")
        pair = _pair(old)
        UserFactory(username="rita", role=Role.researcher)
        db.commit()
        login(client, "rita")
        page = client.get(f"/models/{new.id}")
        answer = client.post(
            f"/models/{new.id}/promote", data={"csrf_token": csrf_from(page.text)}, follow_redirects=False
        )
        assert answer.status_code == 303 and answer.headers["location"] == f"/models/{new.id}?promoted=1&retired=1"
        for row in (old, new, pair):
            db.refresh(row)
        assert (
            new.status is ModelStatus.promoted and old.status is ModelStatus.ready and pair.status is PairStatus.retired
        )
        assert "1 unjudged pair(s)" in client.get(answer.headers["location"]).text

        csrf = csrf_from(client.get(f"/models/{new.id}").text)
        refused = client.post(f"/models/{new.id}/archive", data={"csrf_token": csrf})
        assert refused.status_code == 409 and "promote another version first" in refused.text
        archived = client.post(f"/models/{old.id}/archive", data={"csrf_token": csrf}, follow_redirects=False)
        assert archived.status_code == 303
        db.refresh(old)
        assert old.status is ModelStatus.archived


class TestModelsApi:
    def test_list_get_promote_archive(self, client, db):
        from app.auth import service as auth_service

        user = UserFactory(role=Role.researcher)
        _, token = auth_service.create_token(db, user=user, name="t")
        policy = ModelVersionFactory(name="p1")
        reward = ModelVersionFactory(name="r1", kind="reward")
        db.commit()
        headers = {"Authorization": f"Bearer {token}"}
        listed = client.get("/api/v1/models?kind=policy", headers=headers).json()
        assert [v["name"] for v in listed] == ["p1"]
        assert client.get(f"/api/v1/models/{reward.id}", headers=headers).json()["kind"] == "reward"
        refused = client.post(f"/api/v1/models/{reward.id}/promote", headers=headers)
        assert refused.status_code == 422 and "only policy versions" in refused.json()["detail"]
        promoted = client.post(f"/api/v1/models/{policy.id}/promote", headers=headers).json()
        assert promoted["previous_id"] is None and promoted["generate_job_id"] is None  # no prompts yet
        assert client.post(f"/api/v1/models/{reward.id}/archive", headers=headers).json()["status"] == "archived"
        pool = client.get("/api/v1/pool", headers=headers).json()
        assert pool["promoted_policy_id"] == policy.id and pool["promoted_pending"] == 0 and pool["target"] == 50


def test_the_empty_annotate_page_nudges_the_generator(client, db):
    ModelVersionFactory(status=ModelStatus.promoted)
    add_prompts(db, 2)
    UserFactory(username="ann", role=Role.annotator)
    db.commit()
    login(client, "ann")
    page = client.get("/annotate")
    assert page.status_code == 200 and "No pairs are waiting" in page.text
    jobs = db.scalars(select(Job)).all()
    assert [(j.kind, j.params["reason"]) for j in jobs] == [("generate", "nudge")]
    client.get("/annotate")
    assert len(db.scalars(select(Job)).all()) == 1  # the queued job is enough
