"""Acceptance: promoting another policy retires the old pending pairs and refills the pool from
the new one — through the researcher's API call, then the generate job it queued."""

from __future__ import annotations

from sqlalchemy import select

from app.auth import service as auth_service
from app.auth.models import Role
from app.jobs.models import Job, JobStatus
from app.pool import service
from app.pool.models import Pair, PairStatus
from app.registry.models import ModelStatus
from tests.factories import UserFactory
from tests.helpers import run_job
from tests.pool.conftest import add_policy, add_prompts


def test_promotion_retires_old_pairs_and_refills_from_the_new_policy(
    client, db, session_factory, pool_settings, tiny_policies
):
    client.app.state.settings = pool_settings
    old = add_policy(db, tiny_policies[0], name="tiny-v0", status=ModelStatus.promoted)
    new = add_policy(db, tiny_policies[1], name="tiny-v1")
    add_prompts(db, 4)
    researcher = UserFactory(role=Role.researcher)
    _, token = auth_service.create_token(db, user=researcher, name="t")
    db.commit()
    first = run_job(db, session_factory, pool_settings, kind="generate")
    old_pairs = list(db.scalars(select(Pair).where(Pair.created_by_job_id == first.id)))
    assert len(old_pairs) == pool_settings.pool_target

    answer = client.post(f"/api/v1/models/{new.id}/promote", headers={"Authorization": f"Bearer {token}"})

    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["promoted"]["id"] == new.id and body["promoted"]["status"] == "promoted"
    assert body["previous_id"] == old.id and body["retired_pairs"] == pool_settings.pool_target
    for pair in old_pairs:
        db.refresh(pair)
        assert pair.status is PairStatus.retired
    refill = db.get(Job, body["generate_job_id"])
    assert refill.status is JobStatus.queued and refill.kind == "generate"

    done = run_job(db, session_factory, pool_settings, job_id=refill.id)

    assert done.status is JobStatus.succeeded and done.result["policy_version_id"] == new.id
    assert service.pending_count(db, version_id=new.id) == pool_settings.pool_target
    assert service.pending_count(db, version_id=old.id) == 0
    pending = db.scalars(select(Pair).where(Pair.status == PairStatus.pending)).all()
    assert {p.response_a.policy_version_id for p in pending} == {new.id}
