"""What a training job reads from the registry before it trains, shared by the SFT and PPO jobs.

A job that fine-tunes a policy needs the version's local checkpoint folder, must not find its output
name taken by another job's version only after hours of training, and registers a child that the pool
can serve the way it served the parent. The checks raise ``JobFailed`` (no retry can fix them) with a
message that names the parameter to change.
"""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.errors import DomainError
from app.jobs.exceptions import JobFailed
from app.registry import service as registry
from app.registry.models import ModelKind, ModelStatus, ModelVersion

USABLE = (ModelStatus.ready, ModelStatus.promoted)


def local_policy(db: Session, version_id: int | None, *, field: str) -> tuple[ModelVersion, Path]:
    """The policy to train (default: the promoted one) and its local checkpoint folder.

    ``field`` is the job parameter that chose it, named in every refusal."""
    if version_id is None:
        version = registry.promoted_policy(db)
        if version is None:
            raise JobFailed(f"no promoted policy; choose {field}")
    else:
        try:
            version = registry.get_version(db, version_id, kind=ModelKind.policy)
        except DomainError as exc:
            raise JobFailed(f"{field}: {exc.message}") from None
    if version.status not in USABLE:
        raise JobFailed(f"{field}: policy {version.name} is {version.status.value}; choose a ready one")
    path = Path(version.path or str(version.config.get("path", "")))
    if not version.path or not (path / "config.json").is_file():
        raise JobFailed(f"{field}: policy {version.name} has no local checkpoint folder to train (served remotely?)")
    return version, path


def check_name_free(db: Session, name: str, job_id: int) -> None:
    """Fail before training, not after, when another job's version already has the name."""
    taken = db.scalar(select(ModelVersion).where(ModelVersion.name == name))
    if taken is not None and taken.created_by_job_id != job_id:
        raise JobFailed(f"name: a model version named {name!r} exists already; choose another name")
