"""Prompt sets and prompts; a prompt is a conversation whose last message is the user's."""

from __future__ import annotations

import enum
from datetime import datetime

from sqlalchemy import Boolean, ForeignKey, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from app.db import Base, UTCDateTime, utcnow
from app.db_types import JSONType, str_enum


class PromptSetStatus(enum.StrEnum):
    active = "active"
    review = "review"  # SELF-INSTRUCT output awaiting an admin's approval
    retired = "retired"


class PromptSource(enum.StrEnum):
    """Who wrote a prompt set: its source decides review (self-instruct) and visibility (chat is internal)."""

    imported = "imported"
    written = "written"
    self_instruct = "self_instruct"
    chat = "chat"


class PromptSet(Base):
    """Prompts that share a purpose, and with it k, guidelines and label definitions; the pool draws from
    active sets only, so retiring a set stops its pairs without deleting a judgement."""

    __tablename__ = "prompt_sets"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    description: Mapped[str] = mapped_column(Text, default="")
    status: Mapped[PromptSetStatus] = mapped_column(
        str_enum(PromptSetStatus, "prompt_set_status"), default=PromptSetStatus.active
    )
    judgements_per_pair: Mapped[int | None] = mapped_column(Integer)  # k; None: the global setting
    # What annotators read before judging this set's pairs (markdown, sanitised when shown) and the set's own
    # wording of the labels (``guidelines.LABELS`` keys; the rest keep the defaults). The version counts the
    # changes to either: an annotator confirms each version once (``GuidelineConfirmation``).
    guidelines: Mapped[str] = mapped_column(Text, default="")
    label_definitions: Mapped[dict[str, str] | None] = mapped_column(JSONType)
    guidelines_version: Mapped[int] = mapped_column(Integer, default=0)
    created_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)

    prompts: Mapped[list[Prompt]] = relationship(back_populates="prompt_set")


class Prompt(Base):
    __tablename__ = "prompts"
    __table_args__ = (
        UniqueConstraint("prompt_set_id", "content_hash", name="uq_prompts_set_content"),
        Index("ix_prompts_set_retired", "prompt_set_id", "retired"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    prompt_set_id: Mapped[int] = mapped_column(ForeignKey("prompt_sets.id", ondelete="CASCADE"))
    messages: Mapped[list[dict[str, str]]] = mapped_column(JSONType)
    content_hash: Mapped[str] = mapped_column(String(64))  # sha256 of the canonical messages: dedupe in a set
    source: Mapped[PromptSource] = mapped_column(str_enum(PromptSource, "prompt_source"), default=PromptSource.written)
    tags: Mapped[list[str]] = mapped_column(JSONType, default=list)
    red_team: Mapped[bool] = mapped_column(Boolean, default=False)
    retired: Mapped[bool] = mapped_column(Boolean, default=False)
    created_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)

    prompt_set: Mapped[PromptSet] = relationship(back_populates="prompts")
    # Named, not imported: the pool's models build on prompts, so prompts may only refer to them by the
    # ORM registry's name. Read-only and never loaded implicitly: it exists for EXISTS queries.
    responses: Mapped[list[Response]] = relationship("Response", viewonly=True, lazy="raise")  # noqa: F821


class GuidelineConfirmation(Base):
    """An annotator's "I have read this set's guidelines", for one version of them."""

    __tablename__ = "guideline_confirmations"
    __table_args__ = (UniqueConstraint("user_id", "prompt_set_id", "version", name="uq_guideline_confirmations"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    prompt_set_id: Mapped[int] = mapped_column(ForeignKey("prompt_sets.id", ondelete="CASCADE"), index=True)
    version: Mapped[int] = mapped_column(Integer)
    confirmed_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
