"""The annotation flow over HTTP: the JSON API (token) and the page (session + CSRF)."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
from sqlalchemy import func, select

from app.annotation.models import Judgement, PairAssignment, ResponseLabel
from app.auth import service as auth_service
from tests.factories import PairFactory, UserFactory
from tests.helpers import login

LABELS = {"A": {"quality": "good", "safety": "safe"}, "B": {"quality": "bad", "safety": "safe"}}


@pytest.fixture()
def token_headers(db):
    user = UserFactory()
    _, raw = auth_service.create_token(db, user=user, name="t")
    return {"Authorization": f"Bearer {raw}"}


def _judgements(db) -> int:
    return db.scalar(select(func.count()).select_from(Judgement))


class TestAnnotationApi:
    def test_next_submit_repeat(self, client, db, token_headers):
        PairFactory()
        shown = client.get("/api/v1/annotation/next", headers=token_headers)
        assert shown.status_code == 200 and set(shown.json()["responses"]) == {"A", "B"}
        body = {"assignment_id": shown.json()["assignment_id"], "choice": "B", "strength": 3, "labels": LABELS}
        first = client.post("/api/v1/annotation/judgements", json=body, headers=token_headers)
        repeat = client.post("/api/v1/annotation/judgements", json=body, headers=token_headers)
        assert first.status_code == 201 and repeat.status_code == 200
        assert first.json()["judgement_id"] == repeat.json()["judgement_id"]
        assert _judgements(db) == 1
        assert client.get("/api/v1/annotation/next", headers=token_headers).status_code == 204

    def test_expired_lease_given_to_another_is_refused_and_the_new_holder_accepted(self, client, db, token_headers):
        PairFactory(judgements_needed=1)
        _, raw = auth_service.create_token(db, user=UserFactory(), name="t2")
        second_headers = {"Authorization": f"Bearer {raw}"}
        first_id = client.get("/api/v1/annotation/next", headers=token_headers).json()["assignment_id"]
        lease = db.get(PairAssignment, first_id)
        lease.leased_until = lease.assigned_at - timedelta(seconds=1)
        db.commit()
        second_id = client.get("/api/v1/annotation/next", headers=second_headers).json()["assignment_id"]
        body = {"choice": "B", "strength": 3, "labels": LABELS}
        late = client.post(
            "/api/v1/annotation/judgements", json={**body, "assignment_id": first_id}, headers=token_headers
        )
        assert late.status_code == 409 and "given to someone else" in late.json()["detail"]
        holder = client.post(
            "/api/v1/annotation/judgements", json={**body, "assignment_id": second_id}, headers=second_headers
        )
        assert holder.status_code == 201 and _judgements(db) == 1

    @pytest.mark.parametrize(
        ("patch", "status", "needle"),
        [
            ({"choice": "C"}, 422, "choice"),
            ({"labels": {"A": LABELS["A"]}}, 422, "labels.B"),
            ({"labels": {"A": {"quality": "good"}, "B": LABELS["B"]}}, 422, "labels.A.safety"),
            ({"strength": 7}, 422, "strength"),
            ({"demonstration": "A better answer.\x00"}, 422, "demonstration"),  # PostgreSQL cannot store NUL
            ({"note": "lone \ud800 surrogate"}, 422, "note"),  # sent as the JSON escape \ud800
            ({"assignment_id": 999999}, 404, "not assigned to you"),
        ],
    )
    def test_bad_submissions_are_4xx_and_write_nothing(self, client, db, token_headers, patch, status, needle):
        PairFactory()
        shown = client.get("/api/v1/annotation/next", headers=token_headers).json()
        body = {"assignment_id": shown["assignment_id"], "choice": "A", "strength": 1, "labels": LABELS, **patch}
        raw = json.dumps(body)  # ASCII escapes: a lone surrogate travels as the JSON text \ud800
        response = client.post(
            "/api/v1/annotation/judgements", content=raw, headers={**token_headers, "Content-Type": "application/json"}
        )
        assert response.status_code == status and needle in response.json()["detail"]
        assert _judgements(db) == 0 and db.scalar(select(func.count()).select_from(ResponseLabel)) == 0

    def test_skip(self, client, db, token_headers):
        PairFactory()
        shown = client.get("/api/v1/annotation/next", headers=token_headers).json()
        assert (
            client.post(
                "/api/v1/annotation/skip", json={"assignment_id": shown["assignment_id"]}, headers=token_headers
            ).status_code
            == 204
        )
        assert client.get("/api/v1/annotation/next", headers=token_headers).status_code == 204


class TestAnnotatePage:
    def test_judge_through_the_form(self, client, db):
        PairFactory()
        UserFactory(username="ann")
        csrf = login(client, "ann")
        page = client.get("/annotate")
        assert page.status_code == 200 and 'id="judge-form"' in page.text
        action = page.text.split('action="/annotate/')[1].split('"')[0]
        form = {
            "csrf_token": csrf,
            "choice": "A",
            "strength": "2",
            "a_quality": "good",
            "a_safety": "safe",
            "b_quality": "bad",
            "b_safety": "unsafe",
            "demonstration": "A better answer.",
        }
        done = client.post(f"/annotate/{action}", data=form, follow_redirects=False)
        assert done.status_code == 303 and _judgements(db) == 1
        assert "No pairs are waiting" in client.get("/annotate").text

    def test_missing_label_re_renders_with_the_message(self, client, db):
        PairFactory()
        UserFactory(username="ben")
        csrf = login(client, "ben")
        action = client.get("/annotate").text.split('action="/annotate/')[1].split('"')[0]
        form = {
            "csrf_token": csrf,
            "choice": "A",
            "strength": "2",
            "a_quality": "good",
            "a_safety": "safe",
            "b_quality": "bad",
        }
        page = client.post(f"/annotate/{action}", data=form)
        assert page.status_code == 422 and _judgements(db) == 0
        assert "Response B, safety: label its quality and safety" in page.text and "labels.B" not in page.text

    def test_a_cut_off_answer_is_marked_on_the_page_and_in_the_api(self, client, db, token_headers):
        pair = PairFactory(judgements_needed=2)  # two people may hold it: the API's user and the page's
        pair.response_a.text = "An answer that stops in the middle of a"
        pair.response_a.generation_params = {"finish_reason": "length", "max_new_tokens": 48}
        pair.response_b.generation_params = {"finish_reason": "stop", "max_new_tokens": 48}
        db.commit()
        shown = client.get("/api/v1/annotation/next", headers=token_headers).json()
        cut_side = "A" if shown["responses"]["A"] == pair.response_a.text else "B"
        assert shown["cut_off"] == {cut_side: True, ("B" if cut_side == "A" else "A"): False}
        UserFactory(username="reader")
        login(client, "reader")
        html = client.get("/annotate").text
        assert html.count('class="cut-off"') == 1, html
        left, right = html.split('id="response-B"')
        cut_half = left.split('id="response-A"')[1] if pair.response_a.text in left else right
        assert pair.response_a.text in cut_half and 'class="cut-off"' in cut_half  # beside the cut-off answer

    def test_untrusted_text_is_escaped_on_the_page(self, client, db):
        pair = PairFactory()
        pair.prompt.messages = [{"role": "user", "content": "<script>alert('p')</script>"}]
        pair.response_a.text = "<img src=x onerror=alert(1)>"
        db.commit()
        UserFactory(username="cat")
        login(client, "cat")
        html = client.get("/annotate").text
        assert "<script>alert" not in html and "<img src=x" not in html
        assert "&lt;script&gt;alert(&#39;p&#39;)&lt;/script&gt;" in html

    @pytest.mark.parametrize(
        ("next_url", "lands_on"),
        [("", "/annotate"), ("/chat?after=1", "/chat"), ("https://evil.example/", "/annotate")],
    )
    def test_skip_through_the_form_goes_on(self, client, db, next_url, lands_on):
        PairFactory()
        UserFactory(username="dan")
        csrf = login(client, "dan")
        action = client.get("/annotate").text.split('action="/annotate/')[1].split('"')[0]
        done = client.post(
            f"/annotate/{action}/skip", data={"csrf_token": csrf, "next": next_url}, follow_redirects=False
        )
        assert done.status_code == 303 and done.headers["location"] == lands_on
        assert "No pairs are waiting" in client.get("/annotate").text
