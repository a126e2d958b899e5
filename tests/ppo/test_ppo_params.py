"""The ``ppo`` job's parameters: validated when queued (API and dashboard form), bad input answered with a
4xx that names the field and nothing queued; the defaults are the trainer's, in the trainer's words."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select

from app.auth.models import Role
from app.finetune.ppo.params import PPOParams
from app.jobs.models import Job
from app.training.ppo.config import PPOConfig, config_help
from tests.factories import UserFactory
from tests.helpers import login
from tests.rewards.conftest import bearer

JOBS = "/api/v1/jobs"


def job_count(db) -> int:
    return db.scalar(select(func.count()).select_from(Job).where(Job.kind == "ppo"))


def test_defaults_build_the_trainers_config_with_the_trainers_help():
    params = PPOParams()
    config = params.ppo_config(policy="/models/p", value_model="")
    assert isinstance(config, PPOConfig) and config.policy == "/models/p" and config.use_lora
    assert (config.batch_size, config.response_length, config.updates, config.learning_rate) == (8, 48, 20, 1e-3)
    schema = PPOParams.model_json_schema()["properties"]
    assert schema["kl_coef"]["description"] == config_help(PPOConfig)["kl_coef"] and schema["target_kl"]["minimum"] == 0


class TestCreateApi:
    def test_a_valid_job_is_queued_with_its_defaults_filled_in(self, client, db):
        answer = client.post(
            JOBS, json={"kind": "ppo", "params": {"updates": 5, "target_kl": 3.0}}, headers=bearer(db, Role.researcher)
        )
        assert answer.status_code == 201, answer.text
        params = answer.json()["params"]
        assert (params["updates"], params["target_kl"], params["kl_coef"], params["reward_version_id"]) == (
            5,
            3.0,
            0.07,
            None,
        )
        assert db.get(Job, answer.json()["id"]).params == params

    @pytest.mark.parametrize(
        ("params", "field", "says"),
        [
            ({"batch_size": 6, "num_minibatches": 4}, "params.batch_size", "multiple of num_minibatches (4)"),
            ({"learning_rate": 0}, "params.learning_rate", "greater than 0"),
            ({"kl_estimator": "k9"}, "params.kl_estimator", "'k1', 'k2' or 'k3'"),
            ({"value_model": "critic"}, "params.value_model", "'head' or 'reward'"),
            ({"reward_version_id": 0}, "params.reward_version_id", "greater than or equal to 1"),
            ({"name": "../etc"}, "params.name", "pattern"),
            ({"beta": 0.1}, "params.beta", "Extra inputs are not permitted"),
        ],
    )
    def test_bad_params_are_refused_naming_the_field(self, client, db, params, field, says):
        before = job_count(db)
        answer = client.post(JOBS, json={"kind": "ppo", "params": params}, headers=bearer(db, Role.researcher))
        assert answer.status_code == 422, answer.text
        body = answer.json()
        assert body["field"] == field and says in body["detail"], body
        assert job_count(db) == before

    def test_annotators_may_not_start_one(self, client, db):
        answer = client.post(JOBS, json={"kind": "ppo", "params": {}}, headers=bearer(db, Role.annotator))
        assert answer.status_code == 403 and job_count(db) == 0


class TestDashboardForm:
    @pytest.fixture()
    def researcher(self, client, db):
        UserFactory(username="rhea", role=Role.researcher)
        client.csrf = login(client, "rhea")

    def test_the_jobs_page_offers_ppo_and_its_form_lists_the_parameters(self, client, db, researcher):
        assert 'href="/dashboard/jobs/new/ppo"' in client.get("/dashboard/jobs").text
        form = client.get("/dashboard/jobs/new/ppo")
        assert form.status_code == 200
        for name in (
            "policy_version_id",
            "reward_version_id",
            "classifier_version_id",
            "safety_weight",
            "prompt_set_ids",
            "use_lora",
            "kl_coef",
            "target_kl",
            "updates",
            "checkpoint_every",
        ):
            assert f'name="param.{name}"' in form.text or f'data-pick="{name}"' in form.text, name  # a list: ticks

    def test_a_bad_value_comes_back_beside_its_input_and_queues_nothing(self, client, db, researcher):
        answer = client.post(
            "/dashboard/jobs/new/ppo",
            data={"csrf_token": client.csrf, "param.batch_size": "6", "param.num_minibatches": "4"},
        )
        assert answer.status_code == 422
        assert "must be a multiple of num_minibatches (4)" in answer.text and job_count(db) == 0
