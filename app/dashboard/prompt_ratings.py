"""One prompt's page: its responses rated from the judgements that compared them.

Every judgement of the prompt's pairs is a game between its two responses, played in the order the
judgements were made (their ids): online Elo, its per-prompt reward (what a ``target: elo`` reward job
learns) and the order-independent Bradley–Terry fit beside it (:mod:`app.ratings.responses`). A tie
is half a win each, both-bad is no game. Gold pairs (made-up answers) and quarantined annotators'
verdicts are left out, as everywhere that reads judgements. Arithmetic over one prompt's judgements:
no model, nothing stored.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from app.annotation.models import Judgement
from app.auth.quarantine import counted
from app.lookup import get_or_404
from app.pool.models import Pair, PairStatus, Response
from app.prompts.models import Prompt, PromptSet
from app.ratings.elo import Game
from app.ratings.responses import ResponseRating, rate_responses
from app.registry.models import ModelVersion


@dataclass(frozen=True)
class RatedResponse:
    """A response compared in one of the prompt's pairs, with its ratings (None: it played no game)."""

    id: int
    text: str
    policy: str | None  # the name of the policy version that wrote it, if any
    cut_off: bool
    rating: ResponseRating | None


@dataclass(frozen=True)
class PromptRatings:
    prompt: Prompt
    prompt_set: PromptSet
    responses: list[RatedResponse]  # best Elo first, then those without a game
    judgements: int  # the prompt's judgements read
    games: int  # those that were games (A, B or tie)


def _games(db: Session, prompt_id: int) -> list[Game]:
    """The prompt's counted judgements as games, in the order they were made."""
    rows = db.execute(
        select(Pair.response_a_id, Pair.response_b_id, Judgement.choice)
        .join(Pair, Pair.id == Judgement.pair_id)
        .where(Pair.prompt_id == prompt_id, Pair.status != PairStatus.gold, counted(Judgement.annotator_id))
        .order_by(Judgement.id)
    )
    return [Game(a, b, choice.value) for a, b, choice in rows]


def _compared(db: Session, prompt_id: int) -> list[tuple[Response, str | None]]:
    """The responses in the prompt's (non-gold) pairs, with their policy's name."""
    pairs = select(Pair.id).where(
        Pair.prompt_id == prompt_id,
        Pair.status != PairStatus.gold,
        or_(Pair.response_a_id == Response.id, Pair.response_b_id == Response.id),
    )
    query = (
        select(Response, ModelVersion.name)
        .outerjoin(ModelVersion, ModelVersion.id == Response.policy_version_id)
        .where(Response.prompt_id == prompt_id, pairs.exists())
        .order_by(Response.id)
    )
    return [(response, name) for response, name in db.execute(query)]


def prompt_ratings(db: Session, prompt_id: int) -> PromptRatings:
    """The prompt, its set and its compared responses rated; 404 for an unknown prompt."""
    prompt = get_or_404(db, Prompt, prompt_id, "prompt")
    games = _games(db, prompt_id)
    ratings = {row.response: row for row in rate_responses(games)}
    responses = [
        RatedResponse(response.id, response.text, policy, response.cut_off, ratings.get(response.id))
        for response, policy in _compared(db, prompt_id)
    ]
    responses.sort(key=lambda r: (r.rating is None, -(r.rating.elo if r.rating else 0.0), r.id))
    played = sum(1 for game in games if game.choice != "both_bad")
    return PromptRatings(prompt, prompt.prompt_set, responses, len(games), played)
