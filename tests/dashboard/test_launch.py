"""Launch forms a researcher can use without ids or JSON: pick lists with counts, the data filters as inputs,
a data check and a run-time estimate before launching, presets."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select

from app.auth.models import Role
from app.dashboard.forms import Option, model_fields, parse_form, preset_values, with_choices
from app.finetune.reward.params import RewardParams
from app.jobs.models import Job, JobStatus
from app.registry.models import ModelKind, ModelStatus
from tests.dashboard.forms_html import form_values
from tests.export.data import judged_pair
from tests.factories import JobFactory, ModelVersionFactory, PromptSetFactory, UserFactory
from tests.helpers import log_in_as


@pytest.fixture()
def researcher(client, db):
    return log_in_as(client, "rita", Role.researcher)


def _by_name(fields):
    return {f.name: f for f in fields}


def test_the_filters_are_inputs_of_their_own_and_parse_back_into_the_nested_model():
    fields = with_choices(
        model_fields(RewardParams),
        {"filters.prompt_set_ids": [Option("3", "a"), Option("5", "b")], "filters.annotator_ids": [Option("9", "ann")]},
    )
    named = _by_name(fields)
    assert "filters" not in named  # no JSON box
    sets, since = named["filters.prompt_set_ids"], named["filters.since"]
    assert (sets.kind, sets.multiple, sets.essential, sets.label) == ("pick", True, True, "Prompt sets")
    assert (since.kind, since.nullable) == ("datetime", True)
    form = {"param.filters.prompt_set_ids:5": "true", "param.filters.since": "2026-01-02T03:04"}
    params = parse_form(fields, form)
    assert params["filters"] == {"prompt_set_ids": [5], "since": "2026-01-02T03:04+00:00", "until": None}
    validated = RewardParams.model_validate(params)
    assert validated.filters.prompt_set_ids == [5] and validated.filters.annotator_ids is None
    assert validated.filters.since == datetime(2026, 1, 2, 3, 4, tzinfo=UTC)


def test_presets_scale_the_size_settings_within_their_bounds():
    fields = model_fields(RewardParams)
    epochs = int(_by_name(fields)["epochs"].value)
    assert preset_values(fields, "quick") == {"epochs": str(max(1, epochs // 4))}
    assert preset_values(fields, "longer") == {"epochs": str(2 * epochs)}
    assert preset_values(fields, "no-such-preset") == {}


class TestTheRewardForm:
    def test_data_and_backbone_are_picked_from_lists_with_counts_and_launch(self, client, db, researcher):
        helpful, other = PromptSetFactory(name="helpful"), PromptSetFactory(name="<b>other</b>")
        annie, bob = UserFactory(username="annie"), UserFactory(username="bob")
        for _ in range(3):
            judged_pair(db, prompt_set=helpful, verdicts=[(annie, "a"), (bob, "b")])
        judged_pair(db, prompt_set=other, verdicts=[(annie, "tie")])
        policy = ModelVersionFactory(kind=ModelKind.policy, name="tiny-policy", status=ModelStatus.promoted)

        page = client.get("/dashboard/jobs/new/reward")
        assert page.status_code == 200 and 'name="param.filters"' not in page.text
        assert f'name="param.filters.prompt_set_ids:{helpful.id}" value="true"> helpful · 3 prompts · 6 verdicts' in (
            page.text
        )
        assert "&lt;b&gt;other&lt;/b&gt; · 1 prompt · 0 verdicts" in page.text  # names are escaped
        assert f'name="param.filters.annotator_ids:{annie.id}" value="true"> annie · 3 verdicts' in page.text
        assert f'<option value="{policy.id}">tiny-policy (promoted)</option>' in page.text
        assert 'type="datetime-local" name="param.filters.since"' in page.text

        data = {**form_values(page.text), "csrf_token": client.csrf, "param.name": "rm-picked"}
        data |= {f"param.filters.prompt_set_ids:{helpful.id}": "true", f"param.filters.annotator_ids:{bob.id}": "true"}
        data |= {"param.backbone_version_id": str(policy.id), "param.filters.until": "2030-01-01T00:00"}
        sent = client.post("/dashboard/jobs/new/reward", data=data, follow_redirects=False)
        assert sent.status_code == 303, sent.text
        job = db.scalar(select(Job).where(Job.kind == "reward"))
        assert job.params["backbone_version_id"] == policy.id and job.params["name"] == "rm-picked"
        assert job.params["filters"] == {
            "prompt_set_ids": [helpful.id],
            "annotator_ids": [bob.id],
            "since": None,
            "until": "2030-01-01T00:00:00Z",
        }

    def test_an_unknown_pick_is_refused_and_the_ticks_are_kept(self, client, db, researcher):
        helpful = PromptSetFactory(name="helpful")
        data = {"csrf_token": client.csrf, f"param.filters.prompt_set_ids:{helpful.id}": "true"}
        bad = client.post("/dashboard/jobs/new/reward", data={**data, "param.backbone_version_id": "x"})
        assert bad.status_code == 422 and "pick one of the listed entries" in bad.text
        assert f'name="param.filters.prompt_set_ids:{helpful.id}" value="true" checked>' in bad.text
        assert db.scalar(select(Job).where(Job.kind == "reward")) is None

    def test_too_little_data_is_said_before_launch(self, client, db, researcher):
        annie = UserFactory()
        for _ in range(12):
            judged_pair(db, verdicts=[(annie, "a")])
        page = client.get("/dashboard/jobs/new/reward").text
        assert "12 judged pairs (A/B verdicts) to train on, before any filter." in page
        warning = re.search(r'<div class="warning" role="status" id="launch-warnings"><ul><li>([^<]+)</li>', page)
        assert warning and warning.group(1).startswith("12 judged pairs (A/B verdicts): too few for a reward model")
        assert "No finished reward job yet to estimate the run time from." in page

    def test_the_estimate_scales_the_last_run_by_the_data(self, client, db, researcher):
        annie = UserFactory()
        for _ in range(20):
            judged_pair(db, verdicts=[(annie, "b")])
        start = datetime(2026, 12, 1, 10, 0, tzinfo=UTC)
        JobFactory(
            kind="reward",
            status=JobStatus.succeeded,
            started_at=start,
            finished_at=start + timedelta(minutes=5),
            result={"data": {"examples": 10}},
        )
        page = client.get("/dashboard/jobs/new/reward").text
        assert "About 10.0 min with the same settings: the last reward job" in page
        assert "on 10 examples (20 now)" in page

    def test_a_preset_fills_in_the_size(self, client, db, researcher):
        quick = client.get("/dashboard/jobs/new/reward?preset=quick").text
        epochs = preset_values(model_fields(RewardParams), "quick")["epochs"]
        assert f'name="param.epochs" value="{epochs}"' in quick and 'data-preset="quick"' in quick


@pytest.mark.parametrize("kind", ["ppo", "rloo", "online_dpo"])
def test_a_policy_step_without_a_reward_model_says_so(client, db, researcher, kind):
    page = client.get(f"/dashboard/jobs/new/{kind}").text
    assert "no reward model yet: this job scores its answers with one" in page
    ModelVersionFactory(kind=ModelKind.reward, name="rm-1", metrics={"val_accuracy": 0.75})
    page = client.get(f"/dashboard/jobs/new/{kind}").text
    assert "no reward model yet" not in page and "1 reward model to score with." in page
    assert re.search(r'<option value="\d+">rm-1 · validation accuracy 0.75</option>', page)
