"""The model registry: one row per checkpoint folder in the model store."""

from __future__ import annotations

import enum
from datetime import datetime
from typing import Any

from sqlalchemy import ForeignKey, Index, String, text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from app.db import Base, UTCDateTime, utcnow
from app.db_types import JSONType, str_enum


class ModelKind(enum.StrEnum):
    """What a version is for: only policies generate; reward models and classifiers score."""

    policy = "policy"
    reward = "reward"
    classifier = "classifier"


class ModelStatus(enum.StrEnum):
    """training → ready ⇄ promoted (policies only, one at a time: it serves the pool and chat); archived hides
    a version from the pickers and is refused for the promoted one."""

    training = "training"
    ready = "ready"
    promoted = "promoted"
    archived = "archived"


class ModelVersion(Base):
    __tablename__ = "model_versions"
    __table_args__ = (
        # One promoted policy at a time, enforced by the database rather than by care.
        Index(
            "uq_model_versions_one_promoted_policy",
            "kind",
            unique=True,
            postgresql_where=text("status = 'promoted' AND kind = 'policy'"),
            sqlite_where=text("status = 'promoted' AND kind = 'policy'"),
        ),
        Index("ix_model_versions_kind_status", "kind", "status"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    kind: Mapped[ModelKind] = mapped_column(str_enum(ModelKind, "model_kind"))
    status: Mapped[ModelStatus] = mapped_column(str_enum(ModelStatus, "model_status"), default=ModelStatus.ready)
    parent_id: Mapped[int | None] = mapped_column(ForeignKey("model_versions.id", ondelete="SET NULL"))
    base_model: Mapped[str] = mapped_column(String(500), default="")
    path: Mapped[str] = mapped_column(String(1000), default="")
    metrics: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)
    config: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)  # serving backend, generation defaults
    # The job that produced it; unique so that an at-least-once job re-run cannot register twice.
    created_by_job_id: Mapped[int | None] = mapped_column(ForeignKey("jobs.id", ondelete="SET NULL"), unique=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    promoted_at: Mapped[datetime | None] = mapped_column(UTCDateTime())

    parent: Mapped[ModelVersion | None] = relationship(remote_side=[id])
