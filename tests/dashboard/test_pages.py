"""The dashboard pages over HTTP: what they show, escaping, promote/archive, launching and cancelling jobs."""

from __future__ import annotations

import re

import pytest
from sqlalchemy import select

import tests.dashboard.handlers  # noqa: F401 - registers test.curves, a kind the dashboard offers
from app.auth.models import Role
from app.finetune.policy_step import DEFAULT_POLICY_METHOD, POLICY_METHODS
from app.jobs import registry
from app.jobs.models import Job, JobStatus
from app.registry.models import ModelKind, ModelStatus
from tests.dashboard.forms_html import form_values
from tests.export.data import judged_pair
from tests.factories import JobFactory, ModelVersionFactory, UserFactory
from tests.helpers import log_in_as, login, run_job

XSS = '<img src=x onerror="alert(1)">'


@pytest.fixture()
def researcher(client, db):
    return log_in_as(client, "rita", Role.researcher)


def test_overview_counts_and_plot(client, db, researcher):
    judged_pair(db, verdicts=[(UserFactory(), "a"), (UserFactory(), "b")])
    page = client.get("/dashboard")
    assert page.status_code == 200
    assert re.search(r'id="stat-total">2<', page.text) and re.search(r'id="stat-done">0<', page.text)
    assert (
        'id="judgements-chart"' in page.text
        and "/static/vendor/node_modules/chart.js/dist/chart.umd.min.js" in page.text
    )
    assert '<a href="/dashboard"' in page.text  # in the researcher's navigation


def test_agreement_page_lists_annotators_escaped(client, db, researcher):
    a, b = UserFactory(username="amy"), UserFactory(username="bob")
    judged_pair(db, verdicts=[(a, "a"), (b, "a")])
    page = client.get("/dashboard/agreement")
    assert page.status_code == 200 and "amy" in page.text and "100.0%" in page.text


def test_models_page_shows_the_leaderboard_and_escapes_names(client, db, researcher):
    v1 = ModelVersionFactory(name=XSS)
    v2 = ModelVersionFactory(name="policy-two", parent_id=v1.id)
    ModelVersionFactory(name="rm-1", kind=ModelKind.reward, metrics={"val_accuracy": 0.75})
    ModelVersionFactory(name="rm-elo", kind=ModelKind.reward, metrics={"val_accuracy": 0.7, "val_bt_accuracy": 0.8})
    ModelVersionFactory(name="clf-1", kind=ModelKind.classifier, metrics={"quality_accuracy": 0.5, "note": "x"})
    users = [UserFactory() for _ in range(3)]
    for i in range(6):
        judged_pair(db, versions=(v1.id, v2.id), verdicts=[(users[i % 3], "b" if i < 5 else "a")])
    page = client.get("/dashboard/models")
    assert page.status_code == 200
    assert XSS not in page.text and "&lt;img src=x onerror=" in page.text
    leaderboard = page.text.split('id="leaderboard"')[1].split("</table>")[0]
    assert leaderboard.index("policy-two") < leaderboard.index("&lt;img")  # five wins of six: rated first
    assert "75.0%" in page.text and "quality_accuracy 0.5" in page.text
    assert page.text.count("data-bt-accuracy") == 1 and "70.0% <span" in page.text
    assert "(Elo target; Bradley–Terry head 80.0%)" in page.text  # the BT head beside it, same held-out pairs
    assert "83%" in page.text.split('id="win-rates"')[1]  # policy-two won 5 of 6


def test_promote_and_archive_through_the_single_call_site(client, db, researcher, monkeypatch):
    from app.dashboard import actions

    calls = []
    real = actions.promote
    monkeypatch.setattr(actions, "promote", lambda *a, **k: calls.append(k) or real(*a, **k))
    v1, v2 = ModelVersionFactory(), ModelVersionFactory()
    done = client.post(f"/dashboard/models/{v1.id}/promote", data={"csrf_token": client.csrf}, follow_redirects=True)
    assert done.status_code == 200 and f"Promoted {v1.name}" in done.text and calls[0]["version_id"] == v1.id
    db.refresh(v1)
    assert v1.status is ModelStatus.promoted
    refused = client.post(f"/dashboard/models/{v1.id}/archive", data={"csrf_token": client.csrf})
    assert refused.status_code == 409 and "promote another version first" in refused.text
    client.post(f"/dashboard/models/{v2.id}/archive", data={"csrf_token": client.csrf})
    db.refresh(v2)
    assert v2.status is ModelStatus.archived
    assert client.post(f"/dashboard/models/{v2.id}/promote", data={}).status_code == 403  # no CSRF token


class TestJobs:
    def test_the_list_shows_progress_bars_and_the_launch_links(self, client, db, researcher):
        JobFactory(kind="test.curves", status=JobStatus.running, progress=0.25, progress_message=XSS)
        page = client.get("/dashboard/jobs")
        assert page.status_code == 200 and 'value="0.25"' in page.text and XSS not in page.text
        assert 'href="/dashboard/jobs/new/test.curves"' in page.text and "/static/dashboard-jobs.js" in page.text

    def test_improve_the_policy_leads_to_the_default_policy_step(self, client, db, researcher):
        page = client.get("/dashboard/jobs")
        link = re.search(
            r'<a class="button primary" id="improve-policy" href="([^"]+)">Improve the policy</a>', page.text
        )
        assert link and link.group(1) == f"/dashboard/jobs/new/{DEFAULT_POLICY_METHOD}", page.text
        form = client.get(link.group(1))
        assert form.status_code == 200 and 'name="param.reward_version_id"' in form.text
        assert DEFAULT_POLICY_METHOD in POLICY_METHODS and POLICY_METHODS[0] == DEFAULT_POLICY_METHOD

    def test_a_finished_job_shows_its_data_check_escaped(self, client, db, researcher):
        job = JobFactory(kind="reward", status=JobStatus.succeeded, result={"warnings": [XSS, "2 held-out examples"]})
        page = client.get(f"/dashboard/jobs/{job.id}")
        assert page.status_code == 200 and 'id="data-warnings"' in page.text and XSS not in page.text
        assert "<li>2 held-out examples</li>" in page.text

    def test_launch_form_is_generated_and_validated(self, client, db, researcher):
        form = client.get("/dashboard/jobs/new/test.curves")
        assert form.status_code == 200
        assert 'name="param.steps" value="20" step="1" min="1.0" max="1000.0"' in form.text
        assert '<option value="cosine">cosine</option>' in form.text and 'name="param.warmup" value="true"' in form.text
        bad = client.post("/dashboard/jobs/new/test.curves", data={"csrf_token": client.csrf, "param.steps": "0"})
        assert bad.status_code == 422 and "params.steps" in bad.text and 'value="0"' in bad.text
        assert db.scalar(select(Job).where(Job.kind == "test.curves")) is None
        good = client.post(
            "/dashboard/jobs/new/test.curves",
            data={"csrf_token": client.csrf, "param.steps": "5", "param.schedule": "cosine"},
            follow_redirects=False,
        )
        assert good.status_code == 303
        job = db.scalar(select(Job).where(Job.kind == "test.curves"))
        assert good.headers["location"] == f"/dashboard/jobs/{job.id}"
        assert job.params == {
            "steps": 5,
            "step_seconds": 0.05,
            "learning_rate": 0.001,
            "schedule": "cosine",
            "warmup": False,
            "seed": None,
        }
        assert job.created_by_id == researcher.id

    @pytest.mark.parametrize("kind", ["ppo", "rloo", "dpo", "online_dpo"])
    def test_every_policy_method_launches_from_its_form_with_its_defaults(self, client, db, researcher, kind):
        form = client.get(f"/dashboard/jobs/new/{kind}")
        assert form.status_code == 200 and 'name="param.learning_rate"' in form.text
        data = {"csrf_token": client.csrf, **form_values(form.text)}  # what a browser sends, untouched
        sent = client.post(f"/dashboard/jobs/new/{kind}", data=data, follow_redirects=False)
        assert sent.status_code == 303, sent.text
        job = db.scalar(select(Job).where(Job.kind == kind))
        assert job is not None and sent.headers["location"] == f"/dashboard/jobs/{job.id}"
        assert job.params == registry.validate_params(kind, {})  # exactly the kind's defaults

    def test_kinds_not_offered_in_the_ui_have_no_form(self, client, db, researcher):
        assert client.get("/dashboard/jobs/new/export").status_code == 404
        assert client.get("/dashboard/jobs/new/no.such.kind").status_code == 422

    def test_job_page_and_cancel(self, client, db, researcher):
        job = JobFactory(kind="test.curves", params={"steps": 3}, created_by_id=researcher.id, log_tail=XSS)
        page = client.get(f"/dashboard/jobs/{job.id}")
        assert page.status_code == 200 and XSS not in page.text and "&#34;steps&#34;: 3" in page.text
        assert '["loss", "accuracy"]' not in page.text  # a test kind opens no preset plots
        assert "/static/dashboard-job.js" in page.text and 'id="cancel-form"' in page.text
        client.post(f"/dashboard/jobs/{job.id}/cancel", data={"csrf_token": client.csrf})
        db.refresh(job)
        assert job.status is JobStatus.cancelled

    @pytest.mark.parametrize(
        ("source", "kind"), [("judgements", "reward"), ("labels", "classifier"), ("demonstrations", None)]
    )
    def test_a_finished_export_links_to_the_form_that_trains_on_it(self, client, db, researcher, source, kind):
        export = JobFactory(
            kind="export",
            status=JobStatus.succeeded,
            params={"format": "trl"},
            result={"format": "trl", "file": "x.jsonl", "snapshot": {"source": source, "sha256": "0" * 64}},
        )
        page = client.get(f"/dashboard/jobs/{export.id}")
        links = re.findall(r'<a class="button" href="([^"]+)" data-train-on>', page.text)
        assert links == ([f"/dashboard/jobs/new/{kind}?export_job_id={export.id}"] if kind else [])
        if kind:
            form = client.get(links[0])
            # the export is picked from the list of finished exports, by its number and what it holds
            picked = re.search(rf'<option value="{export.id}" selected>([^<]+)</option>', form.text)
            assert picked and picked.group(1).startswith(f"export #{export.id} · {source}")
            typed = client.get(f"/dashboard/jobs/new/{kind}", params={"name": XSS, "no_such_field": "1"}).text
            assert XSS not in typed and 'value="&lt;img src=x onerror=&#34;alert(1)&#34;&gt;"' in typed

    def test_a_reward_version_names_the_export_it_was_trained_on(self, client, db, researcher):
        export = JobFactory(kind="export", status=JobStatus.succeeded)
        ModelVersionFactory(name="rm-exported", kind=ModelKind.reward, config={"export": {"job_id": export.id}})
        row = client.get("/dashboard/models").text.split("rm-exported")[1].split("</tr>")[0]
        assert f'on <a href="/dashboard/jobs/{export.id}">export {export.id}</a>' in row

    def test_someone_elses_job_cannot_be_cancelled(self, client, db, researcher):
        job = JobFactory(kind="test.curves", created_by_id=UserFactory(role=Role.researcher).id)
        assert 'id="cancel-form"' not in client.get(f"/dashboard/jobs/{job.id}").text
        assert client.post(f"/dashboard/jobs/{job.id}/cancel", data={"csrf_token": client.csrf}).status_code == 403


def test_annotators_cannot_see_the_dashboard(client, db):
    UserFactory(username="ann")
    login(client, "ann")
    assert client.get("/dashboard").status_code == 403


class TestRewardAgreement:
    """The column comes from a figure a ``reward_agreement`` job stored: the web process never loads a model."""

    @pytest.fixture()
    def no_model_here(self, monkeypatch):
        from app.finetune.core import scoring

        def refuse(*args, **kwargs):
            raise AssertionError("a request loaded or ran a model")

        monkeypatch.setattr(scoring, "scorer_of", refuse)
        monkeypatch.setattr(scoring, "agreement", refuse)

    def test_the_page_reads_the_stored_figure_and_asks_for_a_job_when_judgements_came_since(
        self, client, db, researcher, no_model_here
    ):
        stored = {"rate": 0.75, "judgements": 2, "scored_at": "2026-12-01T10:00:00+00:00"}
        rm = ModelVersionFactory(
            name="rm-x", kind=ModelKind.reward, metrics={"val_accuracy": 0.8, "human_agreement": stored}
        )
        for _ in range(2):
            judged_pair(db, verdicts=[(UserFactory(), "a")])
        page = client.get("/dashboard/models")
        assert f'data-agreement="/api/v1/dashboard/rewards/{rm.id}/agreement"' in page.text
        assert "/static/dashboard-models.js" in page.text
        url = f"/api/v1/dashboard/rewards/{rm.id}/agreement"
        answer = client.get(url).json()
        assert answer == {"version_id": rm.id, **stored, "later_judgements": 2, "stale": False, "job_id": None}
        judged_pair(db, verdicts=[(UserFactory(), "b")])
        judged_pair(db, verdicts=[(UserFactory(), "tie")])  # a tie is not compared, so it changes nothing
        assert client.get(url).json()["later_judgements"] == 3
        assert client.get(url).json()["stale"] is True
        assert db.scalar(select(Job).where(Job.kind == "reward_agreement")) is None  # reading queues nothing
        csrf = {"X-CSRF-Token": client.csrf}
        queued = client.post(url, headers=csrf)
        assert queued.status_code == 202
        job = db.scalar(select(Job).where(Job.kind == "reward_agreement"))
        assert queued.json()["job_id"] == job.id and job.params == {"version_id": rm.id}
        assert client.post(url, headers=csrf).json()["job_id"] == job.id  # the one in flight, not a second
        assert client.post(url).status_code == 403  # a cookie session must send its CSRF token
        policy = ModelVersionFactory()
        assert client.get(f"/api/v1/dashboard/rewards/{policy.id}/agreement").status_code == 404
        assert client.post(f"/api/v1/dashboard/rewards/{policy.id}/agreement", headers=csrf).status_code == 404

    def test_annotators_may_neither_read_nor_queue_it(self, client, db):
        rm = ModelVersionFactory(kind=ModelKind.reward)
        log_in_as(client, "ann", Role.annotator)
        url = f"/api/v1/dashboard/rewards/{rm.id}/agreement"
        assert client.get(url).status_code == 403
        assert client.post(url, headers={"X-CSRF-Token": client.csrf}).status_code == 403
        assert db.scalar(select(Job).where(Job.kind == "reward_agreement")) is None

    def test_the_job_scores_the_later_judgements_and_stores_the_figure(
        self, client, db, researcher, session_factory, settings, monkeypatch
    ):
        from app.finetune.core import scoring

        class LengthScorer:  # prefers the longer answer: agrees with "a" below, not with "b"
            def score(self, pairs):
                return [float(len(text)) for _, text in pairs]

        monkeypatch.setattr(scoring, "reward_scorer", lambda db_, *, version_id: LengthScorer())
        rm = ModelVersionFactory(kind=ModelKind.reward)
        for verdict in ("a", "b", "a"):
            judged_pair(db, a="a longer answer", b="short", verdicts=[(UserFactory(), verdict)])
        db.commit()
        job = run_job(db, session_factory, settings, kind="reward_agreement", params={"version_id": rm.id})
        assert job.status is JobStatus.succeeded, job.error
        db.refresh(rm)
        figure = rm.metrics["human_agreement"]
        assert (figure["rate"], figure["judgements"]) == (pytest.approx(2 / 3), 3)
        assert job.result["version_id"] == rm.id and job.result["rate"] == figure["rate"]
        answer = client.get(f"/api/v1/dashboard/rewards/{rm.id}/agreement").json()
        assert (answer["rate"], answer["judgements"], answer["stale"]) == (pytest.approx(2 / 3), 3, False)
