"""The prompts JSON API: researchers read, admins write; bad input is a 4xx naming the field and writes nothing."""

from __future__ import annotations

import pytest

from app.prompts import importers
from app.prompts.importers import MAX_UPLOAD_BYTES
from app.prompts.models import PromptSet, PromptSetStatus
from tests.factories import PromptFactory, PromptSetFactory
from tests.prompts.util import jsonl, prompt_count, set_count

API = "/api/v1/prompt-sets"


def _import(client, headers, set_id: int, data: bytes, name: str = "p.jsonl", **form):
    return client.post(
        f"{API}/{set_id}/import", headers=headers, data=form, files={"file": (name, data, "application/octet-stream")}
    )


class TestSets:
    def test_create_get_list_patch(self, client, db, admin_api):
        created = client.post(API, json={"name": "harmless", "judgements_per_pair": 3}, headers=admin_api)
        assert created.status_code == 201, created.text
        body = created.json()
        assert body | {"name": "harmless", "judgements_per_pair": 3, "status": "active", "prompts_active": 0} == body
        set_id = body["id"]
        PromptFactory(prompt_set=db.get(PromptSet, set_id))
        assert client.get(f"{API}/{set_id}", headers=admin_api).json()["prompts_active"] == 1
        assert [s["name"] for s in client.get(API, headers=admin_api).json()] == ["harmless"]
        patched = client.patch(f"{API}/{set_id}", json={"status": "retired"}, headers=admin_api).json()
        assert (patched["status"], patched["judgements_per_pair"]) == ("retired", 3)  # k untouched when absent
        cleared = client.patch(f"{API}/{set_id}", json={"judgements_per_pair": None}, headers=admin_api).json()
        assert cleared["judgements_per_pair"] is None

    @pytest.mark.parametrize(
        ("body", "status", "needle"),
        [
            ({"name": ""}, 422, "name"),
            ({"name": "x" * 201}, 422, "name"),
            ({"name": "ok", "judgements_per_pair": 0}, 422, "judgements_per_pair"),
            ({"name": "ok", "status": "paused"}, 422, "status"),
            ({"name": "ok", "colour": "red"}, 422, "colour"),
            ({"name": "taken"}, 409, "exists"),
        ],
    )
    def test_bad_create_is_a_4xx_naming_the_field(self, client, db, admin_api, body, status, needle):
        PromptSetFactory(name="taken")
        before = set_count(db)
        response = client.post(API, json=body, headers=admin_api)
        assert response.status_code == status, response.text
        assert response.headers["content-type"].startswith("application/problem+json")
        assert needle in response.json()["detail"]
        assert set_count(db) == before

    def test_researchers_read_but_do_not_write(self, client, db, researcher_api):
        prompt_set = PromptSetFactory()
        PromptFactory(prompt_set=prompt_set)
        assert client.get(API, headers=researcher_api).status_code == 200
        assert client.get(f"{API}/{prompt_set.id}/prompts", headers=researcher_api).json()["total"] == 1
        before = (set_count(db), prompt_count(db))
        assert client.post(API, json={"name": "mine"}, headers=researcher_api).status_code == 403
        assert (
            client.post(f"{API}/{prompt_set.id}/prompts", json={"prompt": "x"}, headers=researcher_api).status_code
            == 403
        )
        assert _import(client, researcher_api, prompt_set.id, jsonl({"prompt": "x"})).status_code == 403
        assert (set_count(db), prompt_count(db)) == before


class TestPrompts:
    def test_add_list_patch(self, client, db, admin_api):
        prompt_set = PromptSetFactory()
        url = f"{API}/{prompt_set.id}/prompts"
        one = client.post(url, json={"prompt": "Why?", "tags": ["a"], "red_team": True}, headers=admin_api)
        assert one.status_code == 201 and one.json()["messages"] == [{"role": "user", "content": "Why?"}]
        turns = [{"role": "system", "content": "Terse."}, {"role": "user", "content": "How?"}]
        assert client.post(url, json={"messages": turns}, headers=admin_api).json()["source"] == "written"
        page = client.get(url, params={"limit": 1, "offset": 1}, headers=admin_api).json()
        assert (page["total"], len(page["items"]), page["items"][0]["messages"]) == (2, 1, turns)
        pid = one.json()["id"]
        patched = client.patch(
            f"{url}/{pid}", json={"retired": True, "red_team": False, "tags": ["b"]}, headers=admin_api
        ).json()
        assert (patched["retired"], patched["red_team"], patched["tags"]) == (True, False, ["b"])
        assert client.get(url, params={"retired": "false"}, headers=admin_api).json()["total"] == 1

    @pytest.mark.parametrize(
        ("body", "status", "needle"),
        [
            ({"messages": [{"role": "bot", "content": "x"}]}, 422, "messages.0.role"),
            (
                {"messages": [{"role": "user", "content": "a"}, {"role": "assistant", "content": "b"}]},
                422,
                "messages[1].role: the last message",
            ),
            ({"messages": []}, 422, "messages"),
            ({"messages": [{"role": "user", "content": "x", "name": "n"}]}, 422, "messages.0.name"),
            ({"messages": [{"role": "user", "content": "x" * 20_001}]}, 422, "messages.0.content"),
            ({"prompt": "   "}, 422, "messages[0].content: must not be empty"),
            ({}, 422, 'exactly one of "prompt"'),
            ({"prompt": "x", "messages": [{"role": "user", "content": "x"}]}, 422, 'exactly one of "prompt"'),
            ({"prompt": "x", "tags": "a,b"}, 422, "tags"),
            ({"prompt": "dup"}, 409, "already in the set"),
        ],
    )
    def test_bad_prompt_is_a_4xx_naming_the_field(self, client, db, admin_api, body, status, needle):
        prompt_set = PromptSetFactory()
        PromptFactory(prompt_set=prompt_set, messages=[{"role": "user", "content": "dup"}])
        before = prompt_count(db)
        response = client.post(f"{API}/{prompt_set.id}/prompts", json=body, headers=admin_api)
        assert response.status_code == status, response.text
        assert needle in response.json()["detail"]
        assert prompt_count(db) == before

    def test_refused_patch_writes_nothing(self, client, db, admin_api):
        prompt = PromptFactory()
        url = f"{API}/{prompt.prompt_set_id}/prompts/{prompt.id}"
        response = client.patch(
            url, json={"retired": True, "messages": [{"role": "assistant", "content": "x"}]}, headers=admin_api
        )
        assert response.status_code == 422 and "messages[0].role" in response.json()["detail"]
        db.refresh(prompt)
        assert not prompt.retired
        assert (
            client.patch(
                f"{API}/{PromptSetFactory().id}/prompts/{prompt.id}", json={"retired": True}, headers=admin_api
            ).status_code
            == 404
        )


class TestImport:
    def test_import_report(self, client, db, admin_api):
        prompt_set = PromptSetFactory()
        response = _import(client, admin_api, prompt_set.id, jsonl({"prompt": "a"}, {"prompt": "b"}, {"prompt": "a"}))
        assert response.status_code == 200, response.text
        assert response.json() == {"prompt_set_id": prompt_set.id, "read": 3, "imported": 2, "duplicates": 1}
        csv = _import(client, admin_api, prompt_set.id, b"prompt\nc\n", name="upload.dat", format="csv")
        assert csv.json()["imported"] == 1

    def test_bad_lines_are_listed_and_nothing_imported(self, client, db, admin_api):
        prompt_set = PromptSetFactory()
        data = jsonl(
            {"prompt": "ok"}, "{oops", {"messages": [{"role": "user", "content": "a"}, {"role": "bot", "content": "b"}]}
        )
        response = _import(client, admin_api, prompt_set.id, data)
        assert response.status_code == 422
        problem = response.json()
        assert problem["bad_line_count"] == 2 and problem["field"] == "file"
        assert problem["bad_lines"][1] == {
            "line": 3,
            "message": "messages[1].role: must be one of system, user, assistant",
        }
        assert "line 2: not valid JSON" in problem["detail"]
        assert prompt_count(db, prompt_set.id) == 0

    @pytest.mark.parametrize(
        ("name", "data", "form", "needle"),
        [
            ("p.csv", b"text\nhello\n", {}, 'has no "prompt" column'),
            ("p.jsonl", b'{"prompt": "\xff"}\n', {}, "line 1 is not UTF-8"),
            ("p.txt", b"x\n", {}, "cannot tell the format"),
            ("p.jsonl", b"x\n", {"format": "xml"}, "format"),
        ],
    )
    def test_file_errors_are_422_and_write_nothing(self, client, db, admin_api, name, data, form, needle):
        prompt_set = PromptSetFactory()
        response = _import(client, admin_api, prompt_set.id, data, name=name, **form)
        assert response.status_code == 422 and needle in response.json()["detail"]
        assert prompt_count(db, prompt_set.id) == 0

    def test_a_file_over_the_cap_is_413_naming_the_limit(self, client, db, admin_api, monkeypatch):
        monkeypatch.setattr(importers, "MAX_UPLOAD_BYTES", 2000)
        prompt_set = PromptSetFactory()
        response = _import(client, admin_api, prompt_set.id, jsonl(*({"prompt": f"q{i}"} for i in range(200))))
        assert response.status_code == 413 and "larger than the 2,000 bytes limit" in response.json()["detail"]
        assert prompt_count(db, prompt_set.id) == 0

    def test_a_body_over_the_route_limit_is_413_before_it_is_read(self, client, db, admin_api, oversize_body):
        prompt_set = PromptSetFactory()
        assert len(oversize_body) > MAX_UPLOAD_BYTES
        assert _import(client, admin_api, prompt_set.id, oversize_body).status_code == 413
        assert prompt_count(db, prompt_set.id) == 0

    def test_unknown_set_is_404(self, client, db, admin_api):
        assert _import(client, admin_api, 999_999, jsonl({"prompt": "x"})).status_code == 404
        assert client.get(f"{API}/999999/prompts", headers=admin_api).status_code == 404


def test_statuses_are_the_models(client, db, admin_api):
    """The API's status vocabulary is the model's, so a new status cannot drift between them."""
    created = client.post(API, json={"name": "s", "status": "review"}, headers=admin_api).json()
    assert created["status"] == PromptSetStatus.review.value
