"""The shape of a judgement as an annotator makes it: in screen terms (left "A", right "B")."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

from app.bounds import Id, Int
from app.text import unstorable

Side = Literal["A", "B"]
ScreenChoice = Literal["A", "B", "tie", "both_bad"]
MAX_DEMONSTRATION = 20_000
MAX_NOTE = 2_000


def _storable(text: str) -> str:
    problem = unstorable(text)
    if problem is not None:
        raise ValueError(problem)
    return text


StorableText = Annotated[str, AfterValidator(_storable)]  # typed by a person: refused, never altered


class SideLabels(BaseModel):
    model_config = ConfigDict(extra="forbid")
    quality: Literal["good", "bad"]
    safety: Literal["safe", "unsafe"]


class JudgementIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    assignment_id: Id
    choice: ScreenChoice
    strength: Annotated[Int, Field(ge=1, le=3)] | None = Field(
        None, description="1 slightly, 2 clearly, 3 much better; only with A or B"
    )
    labels: dict[Side, SideLabels] = Field(description="quality and safety of both responses, as shown")
    demonstration: Annotated[StorableText, Field(max_length=MAX_DEMONSTRATION)] = ""
    note: Annotated[StorableText, Field(max_length=MAX_NOTE)] = ""


class JudgementChange(BaseModel):
    """A new verdict for one's own judgement, in the screen terms of the pair as it was shown."""

    model_config = ConfigDict(extra="forbid")

    choice: ScreenChoice
    strength: Annotated[Int, Field(ge=1, le=3)] | None = Field(
        None, description="1 slightly, 2 clearly, 3 much better; only with A or B"
    )


class SkipIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    assignment_id: Id
