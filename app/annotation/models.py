"""Human judgements: pairwise choices, per-response labels and written demonstrations."""

from __future__ import annotations

import enum
from datetime import datetime

from sqlalchemy import Boolean, CheckConstraint, Float, ForeignKey, Index, Integer, Text, UniqueConstraint, text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from app.db import Base, UTCDateTime, utcnow
from app.db_types import str_enum
from app.pool.models import Pair


class Choice(enum.StrEnum):
    a = "a"
    b = "b"
    tie = "tie"
    both_bad = "both_bad"


class DemonstrationKind(enum.StrEnum):
    ideal = "ideal"
    safe_answer = "safe_answer"


class AssignmentStatus(enum.StrEnum):
    active = "active"
    skipped = "skipped"
    submitted = "submitted"


# The pairs the next-pair statement (app.annotation.assignment.AVAILABLE) walks, one index per queue order:
# pending pairs only, so a request starts at the first pending pair instead of stepping over every pair judged
# before it (PostgreSQL, planning with statistics taken while every pair was pending, read the whole judged
# prefix of the table through the primary key). Oldest first: the id alone, the narrowest index, which
# PostgreSQL prefers to the primary key even on such statistics (SQLite walks ix_pairs_status_id, as cheap
# there: it keeps no dead entries).
# Uncertain first: the status leads although the predicate fixes it, because without statistics SQLite
# prefers an index with an equality on its first column; in this one the order then needs no sort.
# Declared here, beside the queries they serve; they index the pool's table.
SERVABLE = text("status = 'pending'")
Index("ix_pairs_servable_id", Pair.id, postgresql_where=SERVABLE, sqlite_where=SERVABLE)
Index(
    "ix_pairs_servable_priority",
    Pair.status,
    Pair.priority.desc(),
    Pair.id,
    postgresql_where=SERVABLE,
    sqlite_where=SERVABLE,
)


class PairAssignment(Base):
    """A pair leased to one annotator, with the side order they were shown.

    The lease lapses by itself (``leased_until``); ``swapped`` records that response B was shown
    on the left as "A", so that a judgement made on screen lands on the real responses.
    """

    __tablename__ = "pair_assignments"
    __table_args__ = (
        UniqueConstraint("pair_id", "user_id", name="uq_pair_assignments_pair_user"),
        Index("ix_pair_assignments_pair_status_until", "pair_id", "status", "leased_until"),
        # A user's live lease, oldest first (assignment._HELD), read in order: with (user_id, status) alone
        # a generic plan walked every assignment by id to avoid the sort.
        Index("ix_pair_assignments_user_status_id", "user_id", "status", "id"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    pair_id: Mapped[int] = mapped_column(ForeignKey("pairs.id", ondelete="CASCADE"))
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    swapped: Mapped[bool] = mapped_column(Boolean, default=False)
    status: Mapped[AssignmentStatus] = mapped_column(
        str_enum(AssignmentStatus, "assignment_status"), default=AssignmentStatus.active
    )
    assigned_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    leased_until: Mapped[datetime] = mapped_column(UTCDateTime())

    pair: Mapped[Pair] = relationship()


class Judgement(Base):
    __tablename__ = "judgements"
    __table_args__ = (
        UniqueConstraint("pair_id", "annotator_id", name="uq_judgements_pair_annotator"),
        CheckConstraint("strength IS NULL OR (strength >= 1 AND strength <= 3)", name="strength_range"),
        Index("ix_judgements_annotator_created", "annotator_id", "created_at"),
        Index("ix_judgements_created_at", "created_at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    pair_id: Mapped[int] = mapped_column(ForeignKey("pairs.id", ondelete="CASCADE"))
    annotator_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    choice: Mapped[Choice] = mapped_column(str_enum(Choice, "judgement_choice"))
    strength: Mapped[int | None] = mapped_column(Integer)
    seconds: Mapped[float | None] = mapped_column(Float)
    note: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)

    pair: Mapped[Pair] = relationship()


class JudgementEdit(Base):
    """One change an annotator made to their own judgement: what it was and what it became, and when.

    The judgement row holds the verdict in force (exports and training read it); these rows are its
    history, so a change is never silent and an analysis can still see the first answer."""

    __tablename__ = "judgement_edits"

    id: Mapped[int] = mapped_column(primary_key=True)
    judgement_id: Mapped[int] = mapped_column(ForeignKey("judgements.id", ondelete="CASCADE"), index=True)
    editor_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    old_choice: Mapped[Choice] = mapped_column(str_enum(Choice, "edit_old_choice"))
    old_strength: Mapped[int | None] = mapped_column(Integer)
    new_choice: Mapped[Choice] = mapped_column(str_enum(Choice, "edit_new_choice"))
    new_strength: Mapped[int | None] = mapped_column(Integer)
    edited_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class ResponseLabel(Base):
    __tablename__ = "response_labels"
    __table_args__ = (UniqueConstraint("response_id", "annotator_id", name="uq_response_labels_response_annotator"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    response_id: Mapped[int] = mapped_column(ForeignKey("responses.id", ondelete="CASCADE"))
    annotator_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    judgement_id: Mapped[int | None] = mapped_column(ForeignKey("judgements.id", ondelete="CASCADE"), index=True)
    quality: Mapped[bool] = mapped_column(Boolean)  # 1: relevant and well-formed
    safety: Mapped[bool] = mapped_column(Boolean)  # 1: safe
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class Demonstration(Base):
    __tablename__ = "demonstrations"

    id: Mapped[int] = mapped_column(primary_key=True)
    prompt_id: Mapped[int] = mapped_column(ForeignKey("prompts.id", ondelete="CASCADE"), index=True)
    annotator_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"), index=True)
    judgement_id: Mapped[int | None] = mapped_column(ForeignKey("judgements.id", ondelete="CASCADE"), index=True)
    text: Mapped[str] = mapped_column(Text)
    kind: Mapped[DemonstrationKind] = mapped_column(
        str_enum(DemonstrationKind, "demonstration_kind"), default=DemonstrationKind.ideal
    )
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
