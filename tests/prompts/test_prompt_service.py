"""Prompt sets and hand-written prompts: create, settings, add, edit, retire, red-team."""

from __future__ import annotations

import pytest

from app.errors import Conflict, Invalid, NotFound
from app.prompts import service
from app.prompts.models import PromptSetStatus, PromptSource
from tests.factories import PromptFactory, PromptSetFactory, ResponseFactory, UserFactory
from tests.prompts.util import prompt_count, set_count


def test_create_set_and_its_rules(db):
    admin = UserFactory()
    created = service.create_set(db, name="  Helpful ", description="general", judgements_per_pair="3", actor=admin)
    assert (created.name, created.judgements_per_pair, created.status, created.created_by_id) == (
        "Helpful",
        3,
        PromptSetStatus.active,
        admin.id,
    )
    before = set_count(db)
    with pytest.raises(Conflict, match="'helpful' exists"):
        service.create_set(db, name="helpful")
    with pytest.raises(Invalid, match="name: must not be empty"):
        service.create_set(db, name="  ")
    with pytest.raises(Invalid, match="judgements_per_pair: must be between 1 and 20"):
        service.create_set(db, name="k too big", judgements_per_pair=50)
    assert set_count(db) == before


def test_update_set_k_and_status_all_or_nothing(db):
    prompt_set = PromptSetFactory(judgements_per_pair=2)
    service.update_set(db, set_id=prompt_set.id, judgements_per_pair=5, status="review")
    assert (prompt_set.judgements_per_pair, prompt_set.status) == (5, PromptSetStatus.review)
    with pytest.raises(Invalid, match="status: unknown status"):
        service.update_set(db, set_id=prompt_set.id, judgements_per_pair=7, status="paused")
    db.refresh(prompt_set)
    assert prompt_set.judgements_per_pair == 5
    service.update_set(db, set_id=prompt_set.id, description="kept k")
    assert prompt_set.judgements_per_pair == 5  # untouched unless given
    service.update_set(db, set_id=prompt_set.id, judgements_per_pair=None)
    assert prompt_set.judgements_per_pair is None  # back to the global setting
    with pytest.raises(NotFound):
        service.update_set(db, set_id=999_999, status="retired")


def test_list_sets_counts_prompts(db):
    prompt_set = PromptSetFactory(name="counted")
    PromptFactory.create_batch(3, prompt_set=prompt_set)
    PromptFactory(prompt_set=prompt_set, retired=True)
    PromptFactory(prompt_set=prompt_set, red_team=True)
    PromptSetFactory(name="empty")
    summaries = {s.prompt_set.name: s for s in service.list_sets(db)}
    assert (summaries["counted"].active, summaries["counted"].retired, summaries["counted"].red_team) == (4, 1, 1)
    assert (summaries["empty"].active, summaries["empty"].retired) == (0, 0)


def test_add_prompt_single_and_multi_turn(db):
    prompt_set = PromptSetFactory()
    one = service.add_prompt(
        db, set_id=prompt_set.id, messages=[{"role": "user", "content": "Hi?"}], tags="a, b", red_team=True
    )
    assert one.source is PromptSource.written and one.tags == ["a", "b"] and one.red_team
    turns = [
        {"role": "user", "content": "Hi?"},
        {"role": "assistant", "content": "Hello!"},
        {"role": "user", "content": "Joke?"},
    ]
    assert service.add_prompt(db, set_id=prompt_set.id, messages=turns).messages == turns
    before = prompt_count(db)
    with pytest.raises(Conflict, match=f"already in the set as prompt #{one.id}"):
        service.add_prompt(db, set_id=prompt_set.id, messages=[{"role": "user", "content": " Hi?\n"}])
    with pytest.raises(Invalid, match=r"messages\[0\].role"):
        service.add_prompt(db, set_id=prompt_set.id, messages=[{"role": "admin", "content": "x"}])
    with pytest.raises(NotFound):
        service.add_prompt(db, set_id=999_999, messages=[{"role": "user", "content": "x"}])
    assert prompt_count(db) == before


def test_edit_retire_and_red_team(db):
    prompt = PromptFactory()
    set_id = prompt.prompt_set_id
    service.update_prompt(
        db, set_id=set_id, prompt_id=prompt.id, messages=[{"role": "user", "content": "Reworded?"}], tags=["t"]
    )
    assert prompt.messages == [{"role": "user", "content": "Reworded?"}] and prompt.tags == ["t"]
    service.update_prompt(db, set_id=set_id, prompt_id=prompt.id, retired=True, red_team=True)
    assert prompt.retired and prompt.red_team
    service.update_prompt(db, set_id=set_id, prompt_id=prompt.id, retired=False)
    assert not prompt.retired
    other = PromptFactory(prompt_set=prompt.prompt_set, messages=[{"role": "user", "content": "Taken."}])
    with pytest.raises(Conflict, match=f"prompt #{other.id}"):
        service.update_prompt(db, set_id=set_id, prompt_id=prompt.id, messages=[{"role": "user", "content": "Taken."}])
    with pytest.raises(NotFound):
        service.update_prompt(db, set_id=PromptSetFactory().id, prompt_id=prompt.id, retired=True)


def test_a_prompt_with_responses_keeps_its_wording(db):
    prompt = PromptFactory()
    ResponseFactory(prompt=prompt)
    wording = prompt.messages
    with pytest.raises(Conflict, match="already has generated responses"):
        service.update_prompt(
            db,
            set_id=prompt.prompt_set_id,
            prompt_id=prompt.id,
            messages=[{"role": "user", "content": "New?"}],
            tags=["x"],
        )
    db.refresh(prompt)
    assert prompt.messages == wording and prompt.tags == []
    service.update_prompt(db, set_id=prompt.prompt_set_id, prompt_id=prompt.id, tags=["ok"])  # tags may still change
    assert prompt.tags == ["ok"]


def test_list_prompts_pages(db):
    prompt_set = PromptSetFactory()
    PromptFactory.create_batch(7, prompt_set=prompt_set)
    PromptFactory(prompt_set=prompt_set, retired=True)
    page, total = service.list_prompts(db, set_id=prompt_set.id, limit=3, offset=3)
    assert total == 8 and len(page) == 3
    _, active = service.list_prompts(db, set_id=prompt_set.id, retired=False)
    assert active == 7
