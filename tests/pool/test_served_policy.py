"""A policy served by a real OpenAI-compatible server (``transformers serve`` in its own process): the pool's
pairs and a chat turn are generated there, each response records the model the server says wrote it, and a
child trained from the served version is served by the same server once it is promoted."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import select

from app.annotation.models import PairAssignment
from app.auth.models import Role
from app.chat import service as chat
from app.finetune.core.policy_job import register_child
from app.jobs.models import JobStatus
from app.pool.models import Pair, Response
from app.pool.warm_client import WarmClient
from app.registry.models import ModelStatus
from app.versions import promotion
from tests.factories import JobFactory, UserFactory
from tests.generation.transformers_server import transformers_serve
from tests.helpers import api_headers, run_job
from tests.pool.conftest import add_policy, add_prompts


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with transformers_serve(tmp_path_factory.mktemp("transformers-serve") / "serve.log") as url:
        yield url


def _responses(db, job_id: int) -> list[Response]:
    pairs = db.scalars(select(Pair).where(Pair.created_by_job_id == job_id))
    return [response for pair in pairs for response in (pair.response_a, pair.response_b)]


def test_pairs_and_chat_come_from_the_server_and_a_promoted_child_follows(
    db, session_factory, pool_settings, tiny_policies, served, client
):
    parent_folder, child_folder = (str(Path(folder).resolve()) for folder in tiny_policies)
    policy = add_policy(db, tiny_policies[0], name="served-v0", status=ModelStatus.promoted)
    add_prompts(db, 3)
    admin = api_headers(db, Role.admin)
    researcher = api_headers(db, Role.researcher)
    db.commit()
    body = {"base_url": served, "load": "by_path", "timeout_s": 300}

    assert client.put(f"/api/v1/models/{policy.id}/serving", json=body, headers=researcher).status_code == 403
    answer = client.put(f"/api/v1/models/{policy.id}/serving", json=body, headers=admin)
    assert answer.status_code == 200, answer.text
    assert {k: answer.json()["config"][k] for k in ("backend", "model", "load")} == {
        "backend": "openai",
        "model": parent_folder,
        "load": "by_path",
    }
    db.expire_all()

    job = run_job(db, session_factory, pool_settings, kind="generate", params={"pairs": 3})

    assert job.status is JobStatus.succeeded and job.result["pairs"] == 3, job.error
    responses = _responses(db, job.id)
    assert len(responses) == 6 and all(r.text.strip() for r in responses)
    assert {r.generation_params["backend"] for r in responses} == {"openai"}
    assert {r.generation_params["served_model"] for r in responses} == {parent_folder}  # the server's own word
    assert {r.policy_version_id for r in responses} == {policy.id}

    # A child trained from the served version (here: another tiny policy's folder) is served by the same
    # server under its own folder; promoting it is all it takes for the refill to come from it.
    child = register_child(db, JobFactory().id, parent=policy, name="served-v1", folder=tiny_policies[1], metrics={})
    assert [child.config[key] for key in ("backend", "model", "base_url")] == ["openai", child_folder, served]
    refill = promotion.promote(db, pool_settings, version_id=child.id).job
    assert refill is not None

    job = run_job(db, session_factory, pool_settings, job_id=refill.id)

    assert job.status is JobStatus.succeeded and job.result["pairs"] >= 1, job.error
    assert {r.generation_params["served_model"] for r in _responses(db, job.id)} == {child_folder}

    user = UserFactory()
    db.commit()
    with WarmClient(pool_settings) as generator:
        turn = chat.start_turn(db, pool_settings, generator, user=user, message="Hello, who are you?")
    pair = db.get(PairAssignment, turn.assignment_id).pair
    chat_responses = [pair.response_a, pair.response_b]
    assert len(chat_responses) == 2 and {r.policy_version_id for r in chat_responses} == {child.id}
    assert {r.generation_params["served_model"] for r in chat_responses} == {child_folder}


def test_going_back_to_in_process_generation(db, pool_settings, tiny_policies, served, client):
    policy = add_policy(db, tiny_policies[0], name="served-back", status=ModelStatus.ready)
    admin = api_headers(db, Role.admin)
    db.commit()
    assert client.put(f"/api/v1/models/{policy.id}/serving", json={"base_url": served, "load": "by_path"},
                      headers=admin).status_code == 200  # fmt: skip

    answer = client.delete(f"/api/v1/models/{policy.id}/serving", headers=admin)

    assert answer.status_code == 200, answer.text
    config = answer.json()["config"]
    assert config["backend"] == "transformers" and config["path"] == str(Path(tiny_policies[0]).resolve())
    assert "base_url" not in config and "model" not in config
