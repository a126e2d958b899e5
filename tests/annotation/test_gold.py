"""Gold pairs (issue 16): made from whole pool answers, served as a share of every queue like any other
pair, judged once per annotator, scored for reliability and left out of everything else."""

from __future__ import annotations

import json
import random

import pytest
from sqlalchemy import select

from app.annotation import assignment as assignments
from app.annotation import gold
from app.annotation.models import Judgement
from app.annotation.schemas import JudgementIn
from app.annotation.submission import submit
from app.dashboard import quality
from app.errors import Invalid
from app.export.filters import parse_params
from app.export.service import export_to_folder
from app.finetune.core.dataset import count_judged_pairs, judged_pairs
from app.pool.models import Pair, PairStatus, Response
from tests.export.data import judged_pair
from tests.factories import ModelVersionFactory, PromptFactory, UserFactory

WHOLE = "Rinse the herbs. Wrap them in a damp towel. Keep them in the fridge. They stay fresh for a week."


def test_corruptions_on_hand_made_answers():
    rng = random.Random(0)
    cut = gold.truncated(WHOLE, rng)
    words = WHOLE.split()
    assert cut is not None and WHOLE.startswith(cut) and not cut.endswith((".", "!", "?"))
    assert 0.4 * len(words) - 1 <= len(cut.split()) <= 0.6 * len(words) + 1
    assert gold.truncated("Too short to cut.", rng) is None
    mixed = gold.shuffled(WHOLE, rng)
    assert mixed != WHOLE and sorted(mixed.split(". ")) != [] and set(mixed.split()) == set(words)
    assert gold.shuffled("One sentence. Two sentences.", rng) is None


def _pool_answers(db, n: int) -> list[Response]:
    """``n`` whole answers (EOS) and one cut off at the budget, from the promoted policy, one prompt each."""
    policy = ModelVersionFactory()
    made = []
    for i in range(n + 1):
        prompt = PromptFactory()
        reason = "length" if i == n else "stop"
        made.append(
            Response(
                prompt_id=prompt.id,
                text=f"Answer {i}. " + WHOLE,
                policy_version_id=policy.id,
                generation_params={"finish_reason": reason},
            )
        )
    db.add_all(made)
    db.flush()
    return made


def test_make_gold_uses_whole_answers_and_records_the_known_side(db):
    answers = _pool_answers(db, 6)
    made = gold.make_gold(db, 10, rng=random.Random(1))
    assert len(made) == 6  # the cut-off answer is never used
    assert {p.gold_kind for p in made} == {"truncated", "shuffled", "other_answer"}
    by_id = {r.id: r for r in db.scalars(select(Response))}
    for pair in made:
        assert pair.status is PairStatus.gold and pair.judgements_needed == gold.GOLD_CAPACITY
        better = by_id[pair.response_a_id if pair.gold_answer == "a" else pair.response_b_id]
        worse = by_id[pair.response_b_id if pair.gold_answer == "a" else pair.response_a_id]
        assert better in answers and worse.source == f"gold:{pair.gold_kind}" and worse.policy_version_id is None
        assert worse.text != better.text and worse.prompt_id == better.prompt_id == pair.prompt_id
    assert {p.gold_answer for p in made} == {"a", "b"}  # sides drawn at random
    assert gold.make_gold(db, 10) == []  # each whole answer serves once


def test_wanted_keeps_gold_ahead_of_the_busiest_annotator(db, settings):
    _pool_answers(db, 8)
    pool = settings.model_copy(update={"gold_pool": 3})
    assert gold.wanted(db, pool) == 3
    made = gold.make_gold(db, gold.wanted(db, pool))
    assert gold.wanted(db, pool) == 0
    busy = UserFactory()
    db.add(Judgement(pair_id=made[0].id, annotator_id=busy.id, choice="a", strength=2))
    db.flush()
    assert gold.wanted(db, pool) == 1  # the busiest annotator has only 2 left
    assert gold.wanted(db, settings.model_copy(update={"gold_share": 0.0})) == 0


def _labels() -> dict:
    return {side: {"quality": "good", "safety": "safe"} for side in "AB"}


def test_a_gold_pair_is_served_once_to_each_annotator_and_stays_gold(db, settings):
    _pool_answers(db, 1)
    (pair,) = gold.make_gold(db, 1)
    normal = judged_pair(db)
    normal.judgements_needed = 2  # room for both annotators below
    db.commit()
    always = settings.model_copy(update={"gold_share": 1.0})
    first, second = UserFactory(), UserFactory()
    for user in (first, second):
        shown = assignments.next_pair(db, always, user=user)
        assert shown.pair.id == pair.id
        choice = "A" if (pair.gold_answer == "a") != shown.assignment.swapped else "B"
        body = JudgementIn(assignment_id=shown.assignment.id, choice=choice, strength=2, labels=_labels())
        submit(db, user=user, body=body)
    db.refresh(pair)
    assert pair.status is PairStatus.gold and pair.judgement_count == 2
    # Judged once each: the next pair is an ordinary one, even when every pair should be gold.
    assert assignments.next_pair(db, always, user=first).pair.id == normal.id
    never = settings.model_copy(update={"gold_share": 0.0})
    assert assignments.next_pair(db, never, user=UserFactory()).pair.id == normal.id
    votes = {v.annotator_id: v for v in quality.reliability_votes(db) if v.gold is not None}
    assert set(votes) == {first.id, second.id} and all(v.choice == v.gold for v in votes.values())


def test_gold_judgements_stay_out_of_training_data_exports_and_agreement(db, settings, tmp_path):
    _pool_answers(db, 2)
    made = gold.make_gold(db, 2)
    ordinary = judged_pair(db, verdicts=[(UserFactory(), "a")])
    for pair in made:
        for _ in range(2):  # two annotators, disagreeing: agreement would count it if it saw it
            db.add(Judgement(pair_id=pair.id, annotator_id=UserFactory().id, choice="a", strength=2))
            db.add(Judgement(pair_id=pair.id, annotator_id=UserFactory().id, choice="b", strength=2))
    db.commit()
    assert [row.pair_id for row in judged_pairs(db)] == [ordinary.id]
    assert count_judged_pairs(db) == 1
    assert quality.agreement_report(db).choice.units == 0
    result = export_to_folder(db, parse_params({"format": "csv"}), tmp_path / "out")
    assert result["snapshot"]["counts"]["rows"] == 1
    trl = export_to_folder(db, parse_params({"format": "trl"}), tmp_path / "trl")
    lines = (tmp_path / "trl" / trl["file"]).read_text().splitlines() if trl["file"] else []
    assert len([json.loads(line) for line in lines]) == 1


def test_an_admin_writes_a_gold_pair(db):
    prompt = PromptFactory()
    pair = gold.add_written(db, prompt_id=prompt.id, better="Boil the water first.", worse="Drink it.")
    better = db.get(Response, pair.response_a_id if pair.gold_answer == "a" else pair.response_b_id)
    assert (pair.status, pair.gold_kind, better.text) == (PairStatus.gold, "written", "Boil the water first.")
    with pytest.raises(Invalid, match="differ"):
        gold.add_written(db, prompt_id=prompt.id, better="Same.", worse="Same.")
    with pytest.raises(Invalid, match="no prompt"):
        gold.add_written(db, prompt_id=10**6, better="A.", worse="B.")
    assert db.scalar(select(Pair).where(Pair.gold_kind == "written")).id == pair.id


def test_the_gold_pair_api_is_for_admins_and_names_bad_fields(client, db):
    from app.auth.models import Role
    from tests.helpers import api_headers

    prompt = PromptFactory()
    db.commit()
    body = {"prompt_id": prompt.id, "better": "Boil the water first.", "worse": "Drink it."}
    researcher = api_headers(db, Role.researcher)
    assert client.post("/api/v1/annotation/gold-pairs", json=body, headers=researcher).status_code == 403
    admin = api_headers(db, Role.admin)
    made = client.post("/api/v1/annotation/gold-pairs", json=body, headers=admin)
    assert made.status_code == 201
    assert db.get(Pair, made.json()["pair_id"]).status is PairStatus.gold
    same = client.post("/api/v1/annotation/gold-pairs", json={**body, "worse": body["better"]}, headers=admin)
    assert same.status_code == 422 and "differ" in same.text
    empty = client.post("/api/v1/annotation/gold-pairs", json={**body, "better": ""}, headers=admin)
    assert empty.status_code == 422 and "better" in empty.text
