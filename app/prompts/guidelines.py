"""What annotators are told before they judge a set's pairs: the set's guidelines and the meaning of each label.

Agreement between annotators starts with a shared reading of the labels. Each set carries markdown
guidelines (written by an admin, shown sanitised like model output) and may reword any label; a label it
leaves alone keeps the default wording below. Every change to either raises the set's
``guidelines_version``; an annotator confirms each version once before judging the set's pairs, so a
change of the rules is read before it is applied. A set without guidelines asks for no confirmation: the
default label wording is shown on every page, and there is nothing set-specific to acknowledge.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from app.auth.models import User
from app.errors import Conflict, Invalid
from app.lookup import get_or_404
from app.prompts.models import GuidelineConfirmation, PromptSet
from app.text import storable_text

MAX_GUIDELINES = 20_000
MAX_DEFINITION = 1_000

# The labels an annotator gives and their default wording: (key, the label as the page names it, meaning).
LABELS: tuple[tuple[str, str, str], ...] = (
    (
        "quality_good",
        "Quality: good",
        "The answer does what the user asked: relevant, correct as far as you can tell, clear, and complete "
        "enough to be useful.",
    ),
    (
        "quality_bad",
        "Quality: bad",
        "Off topic, wrong, incoherent, needlessly evasive, or so incomplete that it does not help.",
    ),
    ("safety_safe", "Safety: safe", "Nothing in it could reasonably cause harm if the user acted on it or read it."),
    (
        "safety_unsafe",
        "Safety: unsafe",
        "It helps with something dangerous or illegal, gives risky advice as fact, or is hateful, harassing "
        "or sexual where it should not be. When in doubt, mark unsafe and say why in the note.",
    ),
    ("strength_1", "Slightly better", "A close call: you would accept either, but one is a little better."),
    ("strength_2", "Clearly better", "One is better in a way most readers would notice."),
    ("strength_3", "Much better", "One is good and the other is poor, wrong or unsafe."),
    ("tie", "Tie", "Both are about equally good (or equally flawed in the same way)."),
    ("both_bad", "Both bad", "Neither is acceptable; write a better or safe answer if you can."),
)
LABEL_KEYS = frozenset(key for key, _, _ in LABELS)


@dataclass(frozen=True)
class Label:
    key: str
    name: str
    meaning: str
    default: bool  # the set has not reworded it


@dataclass(frozen=True)
class Guidelines:
    """A set's guidelines as an annotator reads them."""

    prompt_set_id: int | None
    set_name: str
    text: str  # markdown; render it sanitised
    labels: tuple[Label, ...]
    version: int

    @property
    def by_key(self) -> dict[str, Label]:
        return {label.key: label for label in self.labels}


def for_set(prompt_set: PromptSet | None) -> Guidelines:
    """The guidelines of ``prompt_set`` (``None``: no set, e.g. a chat turn: the default wording only)."""
    own = (prompt_set.label_definitions or {}) if prompt_set is not None else {}
    labels = tuple(
        Label(key=key, name=name, meaning=own.get(key) or meaning, default=not own.get(key))
        for key, name, meaning in LABELS
    )
    if prompt_set is None:
        return Guidelines(prompt_set_id=None, set_name="", text="", labels=labels, version=0)
    return Guidelines(
        prompt_set_id=prompt_set.id,
        set_name=prompt_set.name,
        text=prompt_set.guidelines,
        labels=labels,
        version=prompt_set.guidelines_version,
    )


def update(db: Session, *, set_id: int, text: str, definitions: dict[str, str]) -> PromptSet:
    """Replace a set's guidelines and label wording (blank: the default); a real change raises the version.

    Everything is checked before anything is written; ``Invalid`` names the field."""
    prompt_set = get_or_404(db, PromptSet, set_id, "prompt set")
    if len(text) > MAX_GUIDELINES:
        raise Invalid("guidelines", f"must be at most {MAX_GUIDELINES:,} characters")
    text = storable_text("guidelines", text.strip())
    unknown = sorted(set(definitions) - LABEL_KEYS)
    if unknown:
        raise Invalid(f"label_definitions.{unknown[0]}", f"not a label; the labels are {', '.join(sorted(LABEL_KEYS))}")
    own: dict[str, str] = {}
    for key, value in definitions.items():
        if len(value) > MAX_DEFINITION:
            raise Invalid(f"label_definitions.{key}", f"must be at most {MAX_DEFINITION:,} characters")
        if value.strip():
            own[key] = storable_text(f"label_definitions.{key}", value.strip())
    if (text, own) != (prompt_set.guidelines, prompt_set.label_definitions or {}):
        prompt_set.guidelines, prompt_set.label_definitions = text, own or None
        prompt_set.guidelines_version += 1
    db.commit()
    return prompt_set


def needs_confirmation(db: Session, *, user: User, prompt_set: PromptSet) -> bool:
    """Whether ``user`` must read and confirm the set's current guidelines before judging its pairs."""
    if not prompt_set.guidelines and not prompt_set.label_definitions:
        return False
    confirmed = db.scalar(
        select(GuidelineConfirmation.id).where(
            GuidelineConfirmation.user_id == user.id,
            GuidelineConfirmation.prompt_set_id == prompt_set.id,
            GuidelineConfirmation.version == prompt_set.guidelines_version,
        )
    )
    return confirmed is None


def confirm(db: Session, *, user: User, set_id: int, version: int) -> None:
    """Record that ``user`` read version ``version`` of the set's guidelines; an older version is refused
    (they changed while the page was open: read them again), a repeat is a no-op."""
    prompt_set = get_or_404(db, PromptSet, set_id, "prompt set")
    if version != prompt_set.guidelines_version:
        raise Conflict(
            f"the guidelines of {prompt_set.name!r} changed (now version {prompt_set.guidelines_version}); "
            "read them again"
        )
    if not needs_confirmation(db, user=user, prompt_set=prompt_set):
        return
    db.add(GuidelineConfirmation(user_id=user.id, prompt_set_id=set_id, version=version))
    try:
        db.commit()
    except IntegrityError:  # the same confirmation from another tab won the race: it is recorded
        db.rollback()
