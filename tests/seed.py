"""Insert prompts, responses and pairs straight into a running server's database (tests only)."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy.orm import Session

import app.all_models  # noqa: F401 - every mapper, for relationships across domains
from app.config import Settings
from app.db import make_engine, make_sessionmaker
from app.pool.models import Pair, Response
from app.prompts.models import Prompt, PromptSet


def add_pairs(
    db: Session, pairs: list[tuple[list[dict[str, str]], str, str]], *, set_name: str = "seeded", needed: int = 1
) -> list[int]:
    """Each item: (messages, text of response a, text of response b). Returns the pair ids."""
    prompt_set = PromptSet(name=set_name)
    db.add(prompt_set)
    db.flush()
    ids = []
    for messages, text_a, text_b in pairs:
        digest = hashlib.sha256(json.dumps(messages, sort_keys=True).encode()).hexdigest()
        prompt = Prompt(prompt_set_id=prompt_set.id, messages=messages, content_hash=digest)
        db.add(prompt)
        db.flush()
        a, b = Response(prompt_id=prompt.id, text=text_a), Response(prompt_id=prompt.id, text=text_b)
        db.add_all([a, b])
        db.flush()
        pair = Pair(prompt_id=prompt.id, response_a_id=a.id, response_b_id=b.id, judgements_needed=needed)
        db.add(pair)
        db.flush()
        ids.append(pair.id)
    db.commit()
    return ids


@contextmanager
def server_session(settings: Settings) -> Iterator[Session]:
    """A session on the database of a server started by ``tests.server.running_server`` (its data
    folder's SQLite file): tests seed it before the browser acts and read it back after."""
    engine = make_engine(settings.resolved_database_url)
    try:
        with make_sessionmaker(engine)() as db:
            yield db
    finally:
        engine.dispose()


def seed_server(settings: Settings, pairs: list[tuple[list[dict[str, str]], str, str]], **kwargs) -> list[int]:
    with server_session(settings) as db:
        return add_pairs(db, pairs, **kwargs)
