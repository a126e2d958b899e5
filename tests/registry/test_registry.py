"""Model registry: idempotent registration per job, one promoted policy, atomic store folders."""

from __future__ import annotations

import pytest

from app.errors import Conflict, Invalid
from app.registry import service, store
from app.registry.models import ModelKind, ModelStatus
from tests.factories import JobFactory, ModelVersionFactory


def test_register_is_idempotent_per_job(db):
    job = JobFactory()
    first = service.register(db, name="rm-1", kind=ModelKind.reward, path="/x", job_id=job.id)
    again = service.register(db, name="rm-1-retry", kind=ModelKind.reward, path="/y", job_id=job.id)
    assert again.id == first.id and len(service.list_versions(db, kind=ModelKind.reward)) == 1


def test_duplicate_name_conflicts(db):
    ModelVersionFactory(name="same")
    with pytest.raises(Conflict):
        service.register(db, name="same", kind=ModelKind.policy, path="/z")


def test_promote_swaps_the_promoted_policy(db):
    old = ModelVersionFactory(status=ModelStatus.promoted)
    new = ModelVersionFactory()
    previous, promoted = service.promote(db, version_id=new.id)
    assert previous.id == old.id and previous.status is ModelStatus.ready
    assert promoted.status is ModelStatus.promoted and service.promoted_policy(db).id == new.id


def test_only_ready_policies_are_promoted_and_promoted_ones_not_archived(db):
    reward = ModelVersionFactory(kind=ModelKind.reward)
    with pytest.raises(Invalid):
        service.promote(db, version_id=reward.id)
    archived = ModelVersionFactory(status=ModelStatus.archived)
    with pytest.raises(Conflict):
        service.promote(db, version_id=archived.id)
    live = ModelVersionFactory(status=ModelStatus.promoted)
    with pytest.raises(Conflict):
        service.archive(db, version_id=live.id)


def test_staged_folder_is_renamed_into_place_or_left_out(settings):
    final = store.version_dir(settings, "policy", "v1")
    with store.staged_folder(settings, final) as staging:
        (staging / "config.json").write_text("{}")
    assert (final / "config.json").exists()
    broken = store.version_dir(settings, "policy", "v2")
    with pytest.raises(RuntimeError), store.staged_folder(settings, broken) as staging:
        (staging / "config.json").write_text("{}")
        raise RuntimeError("crash while writing")
    assert not broken.exists()
    assert list((settings.resolved_models_dir / store.STAGING).iterdir()) == []


def test_unsafe_names_are_refused(settings):
    with pytest.raises(ValueError):
        store.version_dir(settings, "policy", "../escape")
