"""Many annotators at once against the real server: no judgement lost, none stored twice, no pair
over k, no 5xx — 50 × 40 on PostgreSQL, 8 × 40 on SQLite, with 10% of submits sent twice."""

from __future__ import annotations

import asyncio
import random
from collections import Counter

import httpx
import pytest
from sqlalchemy import func, select

import app.all_models  # noqa: F401
from app.annotation.models import Judgement
from app.auth import service as auth_service
from app.auth.models import User
from app.db import make_engine, make_sessionmaker
from app.pool.models import Pair
from tests.factories import _password_hash
from tests.helpers import run_async
from tests.seed import add_pairs
from tests.server import running_server

LABELS = {"A": {"quality": "good", "safety": "safe"}, "B": {"quality": "bad", "safety": "safe"}}
PER_ANNOTATOR = 40


def _seed(url: str, annotators: int, pairs: int) -> list[str]:
    engine = make_engine(url)
    with make_sessionmaker(engine)() as db:
        specs = [([{"role": "user", "content": f"prompt {i}"}], f"a{i}", f"b{i}") for i in range(pairs)]
        add_pairs(db, specs, needed=1)
        tokens = []
        for i in range(annotators):
            user = User(username=f"load{i}", password_hash=_password_hash())
            db.add(user)
            db.flush()
            tokens.append(auth_service.create_token(db, user=user, name="load")[1])
    engine.dispose()
    return tokens


async def _send(client: httpx.AsyncClient, method: str, url: str, **kwargs) -> httpx.Response:
    """A client that retries on a dropped connection, as any real client does; a retried submit is
    exactly the duplicate the server must absorb."""
    for attempt in range(3):
        try:
            return await client.request(method, url, **kwargs)
        except httpx.TransportError:
            if attempt == 2:
                raise
            await asyncio.sleep(0.2)
    raise AssertionError("unreachable")


async def _annotator(base: str, token: str, seed: int, statuses: Counter) -> int:
    rng = random.Random(seed)
    done = 0
    async with httpx.AsyncClient(base_url=base, headers={"Authorization": f"Bearer {token}"}, timeout=60) as client:
        while done < PER_ANNOTATOR:
            shown = await _send(client, "GET", "/api/v1/annotation/next")
            statuses[shown.status_code] += 1
            if shown.status_code != 200:
                break
            body = {
                "assignment_id": shown.json()["assignment_id"],
                "choice": rng.choice("AB"),
                "strength": 2,
                "labels": LABELS,
            }
            sends = 2 if rng.random() < 0.10 else 1
            results = await asyncio.gather(
                *[_send(client, "POST", "/api/v1/annotation/judgements", json=body) for _ in range(sends)]
            )
            for r in results:
                statuses[r.status_code] += 1
            if any(r.status_code in (200, 201) for r in results):
                done += 1
    return done


async def _run_all(base: str, tokens: list[str], statuses: Counter) -> list[int]:
    return await asyncio.gather(*[_annotator(base, t, i, statuses) for i, t in enumerate(tokens)])


@pytest.mark.parametrize("backend", ["postgresql", "sqlite"], indirect=True)
def test_concurrent_annotators_store_each_judgement_once(backend, scratch_db_url, tmp_path):
    annotators = 50 if backend == "postgresql" else 8
    env = {"RLHF_DATABASE_URL": scratch_db_url}
    with running_server(
        tmp_path / "var", extra_env=env, args=("--no-worker", "--workers", "2", "--log-level", "warning")
    ) as server:
        tokens = _seed(scratch_db_url, annotators, annotators * PER_ANNOTATOR + 20)
        statuses: Counter = Counter()
        done = run_async(_run_all(server.url, tokens, statuses))
    assert done == [PER_ANNOTATOR] * annotators
    assert not [code for code in statuses if code >= 500], statuses
    # A duplicate is identical, so it is answered 200; a 409 would mean two annotators were leased one slot.
    assert statuses[409] == 0, statuses
    engine = make_engine(scratch_db_url)
    with make_sessionmaker(engine)() as db:
        assert db.scalar(select(func.count()).select_from(Judgement)) == annotators * PER_ANNOTATOR
        per_pair = db.execute(select(Judgement.pair_id, func.count()).group_by(Judgement.pair_id)).all()
        assert max(n for _, n in per_pair) == 1  # k = 1
        over = db.scalar(select(func.count()).select_from(Pair).where(Pair.judgement_count > Pair.judgements_needed))
        assert over == 0
    engine.dispose()
