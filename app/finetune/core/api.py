"""JSON API for researchers: score (prompt, response) pairs with a reward model or a classifier.

    POST /api/v1/reward/score      {"version_id": 3, "items": [{"prompt": "…", "response": "…"}, …]}
    POST /api/v1/classifier/score  {"version_id": 4, "items": [{"messages": [{"role": "user", …}], "response": "…"}]}

A bad body answers 422 naming the field (``items.2.response``); an unknown version 404, one that
cannot score (archived, still training, its folder missing) 409. Scoring runs the model in the
request's worker thread; the model is loaded once per process and kept (``scoring.CACHE``).
"""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter
from pydantic import BaseModel, ConfigDict, Field, model_validator

from app.auth.policy import Access, allow
from app.bounds import Id
from app.deps import DbDep
from app.finetune.core import scoring
from app.prompts.validation import MAX_CONTENT, MAX_MESSAGES
from app.training.core.data import Prompt

MAX_ITEMS = 256  # per request: a larger batch belongs in a job

reward_router = APIRouter(prefix="/api/v1/reward", tags=["rewards"], dependencies=[allow(Access.researcher)])
classifier_router = APIRouter(prefix="/api/v1/classifier", tags=["rewards"], dependencies=[allow(Access.researcher)])


class StrictBody(BaseModel):
    model_config = ConfigDict(extra="forbid")


class MessageIn(StrictBody):
    role: Literal["system", "user", "assistant"]
    content: Annotated[str, Field(max_length=MAX_CONTENT)]


class ScoreItem(StrictBody):
    """One (prompt, response): the prompt as a plain string or as the conversation so far."""

    prompt: Annotated[str | None, Field(max_length=MAX_CONTENT, description="A single user turn.")] = None
    messages: Annotated[
        list[MessageIn] | None,
        Field(min_length=1, max_length=MAX_MESSAGES, description="The conversation before the response."),
    ] = None
    response: Annotated[str, Field(max_length=MAX_CONTENT, description="The assistant's answer to score.")]

    @model_validator(mode="after")
    def _one_prompt(self) -> ScoreItem:
        if (self.prompt is None) == (self.messages is None):
            raise ValueError('give exactly one of "prompt" (a string) or "messages" (a list)')
        return self

    def as_pair(self) -> tuple[Prompt, str]:
        if self.messages is not None:
            return [m.model_dump() for m in self.messages], self.response
        return [{"role": "user", "content": self.prompt or ""}], self.response


class ScoreRequest(StrictBody):
    version_id: Annotated[Id, Field(description="The model version to score with.")]
    items: Annotated[list[ScoreItem], Field(min_length=1, max_length=MAX_ITEMS)]


class RewardScores(BaseModel):
    version_id: int
    scores: list[float] = Field(description="r(x, y) per item, in order.")


class ClassifierScores(BaseModel):
    version_id: int
    labels: list[str]
    scores: list[dict[str, float]] = Field(description="P(label = 1) per head, per item, in order.")


@reward_router.post("/score", response_model=RewardScores)
def reward_score(body: ScoreRequest, db: DbDep) -> object:
    """Score (prompt, response) pairs with a reward model version: one scalar reward each."""
    scores = scoring.score_rewards(db, version_id=body.version_id, items=[item.as_pair() for item in body.items])
    return RewardScores(version_id=body.version_id, scores=scores)


@classifier_router.post("/score", response_model=ClassifierScores)
def classifier_score(body: ScoreRequest, db: DbDep) -> object:
    """Score (prompt, response) pairs with a classifier version: P(label) per head for each."""
    scorer = scoring.classifier_scorer(db, version_id=body.version_id)
    scores = scorer.score([item.as_pair() for item in body.items])
    return ClassifierScores(version_id=body.version_id, labels=list(scorer.labels), scores=scores)
