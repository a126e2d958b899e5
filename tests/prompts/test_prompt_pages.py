"""The admin pages for prompt sets, driven through the real forms with their CSRF token."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from app.auth.models import Role
from app.prompts import importers
from app.prompts.models import Prompt, PromptSet, PromptSetStatus
from tests.factories import PromptFactory, PromptSetFactory, UserFactory
from tests.helpers import login
from tests.prompts.util import jsonl, prompt_count, set_count


def _upload(c, set_id: int, data: bytes, name: str = "prompts.jsonl", **form):
    return c.post(
        f"/admin/prompt-sets/{set_id}/import",
        data={"csrf_token": c.csrf, **form},
        files={"file": (name, data, "application/octet-stream")},
    )


class TestSetPages:
    def test_create_set_then_settings(self, admin_client, db):
        c = admin_client
        created = c.post(
            "/admin/prompt-sets", data={"csrf_token": c.csrf, "name": "Helpfulness", "judgements_per_pair": "3"}
        )
        assert created.status_code == 200 and "Prompt set created." in created.text
        prompt_set = db.scalar(select(PromptSet).where(PromptSet.name == "Helpfulness"))
        assert prompt_set.judgements_per_pair == 3
        c.post(
            f"/admin/prompt-sets/{prompt_set.id}/settings",
            data={"csrf_token": c.csrf, "judgements_per_pair": "", "status": "review"},
        )
        db.refresh(prompt_set)
        assert (prompt_set.judgements_per_pair, prompt_set.status) == (None, PromptSetStatus.review)
        listing = c.get("/admin/prompt-sets")
        assert "Helpfulness" in listing.text and "review" in listing.text
        assert '<a href="/admin/prompt-sets"' in listing.text  # in the admin's navigation

    @pytest.mark.parametrize(
        ("form", "status", "needle"),
        [
            ({"name": ""}, 422, "name: must not be empty"),
            ({"name": "ok", "judgements_per_pair": "0"}, 422, "judgements_per_pair: must be between 1 and 20"),
            ({"name": "taken"}, 409, "exists"),
        ],
    )
    def test_bad_create_names_the_problem_and_writes_nothing(self, admin_client, db, form, status, needle):
        PromptSetFactory(name="taken")
        before = set_count(db)
        response = admin_client.post("/admin/prompt-sets", data={"csrf_token": admin_client.csrf, **form})
        assert response.status_code == status and needle in response.text
        assert set_count(db) == before

    def test_bad_settings_write_nothing(self, admin_client, db):
        prompt_set = PromptSetFactory(judgements_per_pair=2)
        response = admin_client.post(
            f"/admin/prompt-sets/{prompt_set.id}/settings",
            data={"csrf_token": admin_client.csrf, "judgements_per_pair": "4", "status": "nope"},
        )
        assert response.status_code == 422 and "status: unknown status" in response.text
        db.refresh(prompt_set)
        assert prompt_set.judgements_per_pair == 2

    def test_posts_without_csrf_are_refused(self, admin_client, db):
        prompt_set = PromptSetFactory()
        before = (set_count(db), prompt_count(db))
        assert admin_client.post("/admin/prompt-sets", data={"name": "no token"}).status_code == 403
        files = {"file": ("p.jsonl", jsonl({"prompt": "x"}), "application/octet-stream")}
        assert admin_client.post(f"/admin/prompt-sets/{prompt_set.id}/import", files=files).status_code == 403
        assert (
            admin_client.post(
                f"/admin/prompt-sets/{prompt_set.id}/prompts", data={"text": "x", "csrf_token": "forged"}
            ).status_code
            == 403
        )
        assert (set_count(db), prompt_count(db)) == before

    def test_non_admins_are_refused(self, client, db):
        UserFactory(username="res", role=Role.researcher)
        login(client, "res")
        assert client.get("/admin/prompt-sets").status_code == 403
        assert "/admin/prompt-sets" not in client.get("/").text


class TestUpload:
    def test_upload_reports_imported_and_duplicates(self, admin_client, db):
        prompt_set = PromptSetFactory()
        data = jsonl({"prompt": "One?"}, {"prompt": "Two?"}, {"prompt": "One?"})
        page = _upload(admin_client, prompt_set.id, data)
        assert page.status_code == 200 and "Imported 2 prompt(s); skipped 1 duplicate(s) of 3 read." in page.text
        csv_page = _upload(admin_client, prompt_set.id, b"prompt\nThree?\nOne?\n", name="more.csv")
        assert "Imported 1 prompt(s); skipped 1 duplicate(s)" in csv_page.text
        assert prompt_count(db, prompt_set.id) == 3

    def test_bad_lines_are_listed_and_nothing_imported(self, admin_client, db):
        prompt_set = PromptSetFactory()
        bad = {"messages": [{"role": "user", "content": "a"}, {"role": "<b>bot</b>", "content": "b"}]}
        page = _upload(admin_client, prompt_set.id, jsonl({"prompt": "fine"}, {"prompt": ""}, bad))
        assert page.status_code == 422
        assert "line 2: prompt: must not be empty" in page.text
        assert "line 3: messages[1].role: must be one of system, user, assistant" in page.text
        assert prompt_count(db, prompt_set.id) == 0

    @pytest.mark.parametrize(
        ("name", "data", "status", "needle"),
        [
            ("p.csv", b"question\nWhy?\n", 422, "has no &#34;prompt&#34; column"),
            ("p.jsonl", b'{"prompt": "caf\xe9"}\n', 422, "line 1 is not UTF-8"),
            ("p.txt", b"hello\n", 422, "cannot tell the format"),
        ],
    )
    def test_file_level_errors(self, admin_client, db, name, data, status, needle):
        prompt_set = PromptSetFactory()
        page = _upload(admin_client, prompt_set.id, data, name=name)
        assert page.status_code == status and needle in page.text
        assert prompt_count(db, prompt_set.id) == 0

    def test_a_file_over_the_cap_is_413_naming_the_limit(self, admin_client, db, monkeypatch):
        monkeypatch.setattr(importers, "MAX_UPLOAD_BYTES", 2000)
        prompt_set = PromptSetFactory()
        page = _upload(admin_client, prompt_set.id, jsonl(*({"prompt": f"q{i}"} for i in range(200))))
        assert page.status_code == 413 and "larger than the 2,000 bytes limit" in page.text
        assert prompt_count(db, prompt_set.id) == 0

    def test_a_body_over_the_route_limit_is_413(self, admin_client, db, oversize_body):
        prompt_set = PromptSetFactory()
        page = _upload(admin_client, prompt_set.id, oversize_body)
        assert page.status_code == 413
        assert prompt_count(db, prompt_set.id) == 0


class TestPromptPages:
    def test_add_single_and_multi_turn(self, admin_client, db):
        c = admin_client
        prompt_set = PromptSetFactory()
        url = f"/admin/prompt-sets/{prompt_set.id}/prompts"
        assert (
            c.post(
                url, data={"csrf_token": c.csrf, "text": "Why is the sky blue?", "tags": "science", "red_team": "1"}
            ).status_code
            == 200
        )
        turns = (
            '[{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello"}, '
            '{"role": "user", "content": "Bye?"}]'
        )
        assert c.post(url, data={"csrf_token": c.csrf, "messages_json": turns}).status_code == 200
        prompts = list(db.scalars(select(Prompt).where(Prompt.prompt_set_id == prompt_set.id).order_by(Prompt.id)))
        assert [len(p.messages) for p in prompts] == [1, 3]
        assert prompts[0].tags == ["science"] and prompts[0].red_team

    @pytest.mark.parametrize(
        ("form", "status", "needle"),
        [
            ({"text": ""}, 422, "write a message"),
            ({"messages_json": "[{"}, 422, "messages: not valid JSON"),
            (
                {"messages_json": '[{"role": "assistant", "content": "x"}]'},
                422,
                "messages[0].role: the last message must be the user&#39;s",
            ),
            ({"text": "x" * 20_001}, 422, "text"),
            ({"text": "dup"}, 409, "already in the set"),
        ],
    )
    def test_bad_prompt_names_the_problem_and_writes_nothing(self, admin_client, db, form, status, needle):
        prompt_set = PromptSetFactory()
        PromptFactory(prompt_set=prompt_set, messages=[{"role": "user", "content": "dup"}])
        before = prompt_count(db)
        response = admin_client.post(
            f"/admin/prompt-sets/{prompt_set.id}/prompts", data={"csrf_token": admin_client.csrf, **form}
        )
        assert response.status_code == status and needle in response.text
        assert prompt_count(db) == before

    def test_edit_retire_unretire_and_red_team(self, admin_client, db):
        c = admin_client
        prompt = PromptFactory()
        base = f"/admin/prompt-sets/{prompt.prompt_set_id}/prompts/{prompt.id}"
        saved = c.post(
            base,
            data={"csrf_token": c.csrf, "messages_json": '[{"role": "user", "content": "Edited?"}]', "tags": "x, y"},
        )
        assert saved.status_code == 200 and "Prompt saved." in saved.text
        c.post(f"{base}/retired", data={"csrf_token": c.csrf, "retired": "1"})
        c.post(f"{base}/red-team", data={"csrf_token": c.csrf, "red_team": "1"})
        db.refresh(prompt)
        assert (prompt.messages[0]["content"], prompt.tags, prompt.retired, prompt.red_team) == (
            "Edited?",
            ["x", "y"],
            True,
            True,
        )
        page = c.get(f"/admin/prompt-sets/{prompt.prompt_set_id}")
        assert "Unretire" in page.text and "Unmark red-team" in page.text
        c.post(f"{base}/retired", data={"csrf_token": c.csrf, "retired": "0"})
        db.refresh(prompt)
        assert not prompt.retired

    def test_imported_text_is_escaped(self, admin_client, db):
        prompt = PromptFactory(messages=[{"role": "user", "content": "<script>alert(1)</script><b>hi</b>"}])
        for url in (
            f"/admin/prompt-sets/{prompt.prompt_set_id}",
            f"/admin/prompt-sets/{prompt.prompt_set_id}/prompts/{prompt.id}",
        ):
            html = admin_client.get(url).text
            assert "<script>alert(1)" not in html and "&lt;script&gt;alert(1)&lt;/script&gt;" in html

    def test_pages_of_prompts(self, admin_client, db):
        prompt_set = PromptSetFactory()
        PromptFactory.create_batch(55, prompt_set=prompt_set)
        first = admin_client.get(f"/admin/prompt-sets/{prompt_set.id}")
        assert "page 1 of 2" in first.text and first.text.count("/red-team") == 50
        second = admin_client.get(f"/admin/prompt-sets/{prompt_set.id}?page=2")
        assert second.text.count("/red-team") == 5
