"""The review of SELF-INSTRUCT output: service rules, the admin pages (CSRF), the JSON API, and that
only approved prompts of an active set can reach the pool."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from app.auth.models import Role
from app.errors import Invalid, NotFound
from app.instruct import review
from app.instruct.review import Decision
from app.jobs.models import Job
from app.prompts.models import Prompt, PromptSet, PromptSetStatus
from tests.factories import PromptFactory, PromptSetFactory, UserFactory
from tests.helpers import api_headers, log_in_as, login

TEXTS = ["Suggest a name for a pet goldfish.", "Plan a birthday picnic for six kids.", "Write a limerick about a cat."]


def review_set(db, texts: list[str] = TEXTS) -> PromptSet:
    made = review.create_review_set(db, name="generated", description="from seeds")
    assert review.add_candidates(db, set_id=made.id, texts=[*texts, texts[0]]) == len(texts)  # repeat skipped
    db.commit()
    return made


def states(db, set_id: int) -> list[str]:
    return [state.value for _, state in review.review_prompts(db, set_id)]


def in_pool(db) -> list[str]:
    """What the pool may draw: non-retired prompts of active sets."""
    rows = db.scalars(
        select(Prompt.messages)
        .join(PromptSet)
        .where(PromptSet.status == PromptSetStatus.active, Prompt.retired.is_(False))
    )
    return sorted(m[0]["content"] for m in rows)


class TestService:
    def test_pending_prompts_stay_out_of_the_pool_until_approved(self, db):
        made = review_set(db)
        assert made.status is PromptSetStatus.review and states(db, made.id) == ["pending"] * 3
        assert in_pool(db) == []
        ids = [p.id for p, _ in review.review_prompts(db, made.id)]

        report = review.decide(db, set_id=made.id, decision="approve", prompt_ids=[ids[0]])
        assert (report.changed, report.set_status) == (1, PromptSetStatus.active)
        assert states(db, made.id) == ["approved", "pending", "pending"] and in_pool(db) == [TEXTS[0]]

        report = review.decide(db, set_id=made.id, decision=Decision.reject, prompt_ids=[ids[1]])
        assert (
            states(db, made.id) == ["approved", "rejected", "pending"] and report.set_status is PromptSetStatus.active
        )
        rejected = db.get(Prompt, ids[1])
        assert rejected.retired and review.REJECTED_TAG in rejected.tags and review.PENDING_TAG not in rejected.tags

        assert review.decide(db, set_id=made.id, decision="approve").changed == 1  # all pending: the last one
        assert states(db, made.id) == ["approved", "rejected", "approved"]
        assert in_pool(db) == sorted([TEXTS[0], TEXTS[2]])
        summary = review.list_review_sets(db)[0]
        assert (summary.pending, summary.approved, summary.rejected) == (0, 2, 1)

    def test_rejecting_everything_retires_the_set_and_a_decision_can_be_changed(self, db):
        made = review_set(db)
        assert review.decide(db, set_id=made.id, decision="reject").set_status is PromptSetStatus.retired
        assert states(db, made.id) == ["rejected"] * 3 and in_pool(db) == []
        first = review.review_prompts(db, made.id)[0][0]
        assert (
            review.decide(db, set_id=made.id, decision="approve", prompt_ids=[first.id]).set_status
            is PromptSetStatus.active
        )
        assert in_pool(db) == [TEXTS[0]]

    def test_bad_decisions_write_nothing(self, db):
        made = review_set(db)
        other = PromptFactory(prompt_set=PromptSetFactory())
        db.commit()
        with pytest.raises(NotFound):
            review.decide(db, set_id=made.id, decision="approve", prompt_ids=[other.id])
        with pytest.raises(Invalid, match="decision"):
            review.decide(db, set_id=made.id, decision="maybe")
        with pytest.raises(Invalid, match="prompt_ids"):
            review.decide(db, set_id=made.id, decision="approve", prompt_ids=[])
        db.rollback()
        assert states(db, made.id) == ["pending"] * 3 and db.get(PromptSet, made.id).status is PromptSetStatus.review


@pytest.fixture()
def admin(client, db):
    log_in_as(client, "root", Role.admin)
    return client


class TestPages:
    def test_review_list_and_page_decide_one_and_in_bulk(self, admin, db):
        made = review_set(db)
        listing = admin.get("/admin/self-instruct")
        assert (
            listing.status_code == 200 and "generated" in listing.text and 'href="/admin/self-instruct"' in listing.text
        )
        page = admin.get(f"/admin/self-instruct/{made.id}")
        assert page.status_code == 200 and TEXTS[1] in page.text and "3 pending" in page.text
        ids = [p.id for p, _ in review.review_prompts(db, made.id)]

        one = admin.post(
            f"/admin/self-instruct/{made.id}/decide", data={"csrf_token": admin.csrf, "action": f"reject:{ids[0]}"}
        )
        assert one.status_code == 200 and "Rejected 1 prompt(s)" in one.text
        ticked = admin.post(
            f"/admin/self-instruct/{made.id}/decide",
            data={"csrf_token": admin.csrf, "action": "approve", "prompt_ids": [str(ids[1]), str(ids[2])]},
        )
        assert "Approved 2 prompt(s); the set is active." in ticked.text
        db.expire_all()
        assert states(db, made.id) == ["rejected", "approved", "approved"]

    def test_without_csrf_nothing_changes_and_bad_actions_say_why(self, admin, db):
        made = review_set(db)
        refused = admin.post(f"/admin/self-instruct/{made.id}/decide", data={"action": "approve_all"})
        assert refused.status_code == 403
        bad = admin.post(
            f"/admin/self-instruct/{made.id}/decide", data={"csrf_token": admin.csrf, "action": "approve:x"}
        )
        assert bad.status_code == 422 and "unknown action" in bad.text
        none = admin.post(
            f"/admin/self-instruct/{made.id}/decide", data={"csrf_token": admin.csrf, "action": "approve"}
        )
        assert none.status_code == 422 and "choose at least one prompt" in none.text
        db.expire_all()
        assert states(db, made.id) == ["pending"] * 3

    def test_starting_a_run_queues_a_job(self, admin, db):
        seeds = PromptSetFactory(name="seeds")
        PromptFactory(prompt_set=seeds)
        db.commit()
        started = admin.post(
            "/admin/self-instruct/jobs",
            data={"csrf_token": admin.csrf, "seed_set_id": str(seeds.id), "target": "25"},
            follow_redirects=False,
        )
        assert started.status_code == 303
        job = db.scalar(select(Job).where(Job.kind == "self_instruct"))
        assert job.params["seed_set_id"] == seeds.id and job.params["target"] == 25
        assert f"Started job {job.id}" in admin.get(started.headers["location"]).text
        bad = admin.post(
            "/admin/self-instruct/jobs", data={"csrf_token": admin.csrf, "seed_set_id": str(seeds.id), "target": "0"}
        )
        assert bad.status_code == 422 and "target" in bad.text

    def test_machine_text_is_escaped(self, admin, db):
        made = review_set(db, ["Explain what <script>alert(1)</script> does in a page?"])
        html = admin.get(f"/admin/self-instruct/{made.id}").text
        assert "<script>alert(1)" not in html and "&lt;script&gt;alert(1)&lt;/script&gt;" in html


class TestApi:
    def test_researchers_read_admins_decide(self, client, db):
        made = review_set(db)
        researcher, admin_headers = api_headers(db, Role.researcher), api_headers(db, Role.admin)
        listed = client.get("/api/v1/self-instruct/sets", headers=researcher).json()
        assert [(s["id"], s["pending"], s["status"]) for s in listed] == [(made.id, 3, "review")]
        detail = client.get(f"/api/v1/self-instruct/sets/{made.id}", headers=researcher).json()
        assert [p["text"] for p in detail["prompts"]] == TEXTS and {p["state"] for p in detail["prompts"]} == {
            "pending"
        }
        ids = [p["id"] for p in detail["prompts"]]

        body = {"decision": "approve", "prompt_ids": ids[:2]}
        assert (
            client.post(f"/api/v1/self-instruct/sets/{made.id}/decisions", json=body, headers=researcher).status_code
            == 403
        )
        done = client.post(f"/api/v1/self-instruct/sets/{made.id}/decisions", json=body, headers=admin_headers)
        assert done.status_code == 200 and done.json() == {"decision": "approve", "changed": 2, "set_status": "active"}
        rest = client.post(
            f"/api/v1/self-instruct/sets/{made.id}/decisions", json={"decision": "reject"}, headers=admin_headers
        )
        assert rest.json()["changed"] == 1
        db.expire_all()
        assert states(db, made.id) == ["approved", "approved", "rejected"]

    @pytest.mark.parametrize(
        ("body", "status"),
        [
            ({"decision": "maybe"}, 422),
            ({"decision": "approve", "prompt_ids": []}, 422),
            ({"decision": "approve", "extra": 1}, 422),
            ({"decision": "approve", "prompt_ids": [999999]}, 404),
        ],
    )
    def test_bad_bodies_are_refused(self, client, db, body, status):
        made = review_set(db)
        response = client.post(
            f"/api/v1/self-instruct/sets/{made.id}/decisions", json=body, headers=api_headers(db, Role.admin)
        )
        assert response.status_code == status
        db.expire_all()
        assert states(db, made.id) == ["pending"] * 3


def test_both_unsafe_on_the_annotate_page_stores_a_safe_answer(client, db):
    """The page asks for a safe answer when both responses are unsafe (shown by annotate.js), and what
    the annotator writes then is stored as a ``safe_answer`` demonstration, i.e. safety data for SFT."""
    from app.annotation.models import Demonstration, DemonstrationKind
    from tests.factories import PairFactory

    pair = PairFactory()
    UserFactory(username="ann")
    csrf = login(client, "ann")
    page = client.get("/annotate")
    assert 'id="ask-safe-answer"' in page.text and "please write a safe answer" in page.text
    action = page.text.split('action="/annotate/')[1].split('"')[0]
    form = {
        "csrf_token": csrf,
        "choice": "both_bad",
        "a_quality": "bad",
        "a_safety": "unsafe",
        "b_quality": "bad",
        "b_safety": "unsafe",
        "demonstration": "I can't help with that, but here is how to stay safe.",
    }
    assert client.post(f"/annotate/{action}", data=form, follow_redirects=False).status_code == 303
    demo = db.scalar(select(Demonstration))
    assert demo.kind is DemonstrationKind.safe_answer and demo.prompt_id == pair.prompt_id
