"""Issue 16: an annotator changes their own recent verdict, within a window, with its history kept;
Back after a submission shows the judged pair instead of a new one."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import func, select

from app.annotation import assignment as assignments
from app.annotation import edits, submission
from app.annotation.models import Choice, Judgement, JudgementEdit
from app.annotation.schemas import JudgementIn
from app.auth import service as auth_service
from app.errors import Conflict, Invalid, NotFound
from tests.factories import PairFactory, UserFactory
from tests.helpers import login

LABELS = {"A": {"quality": "good", "safety": "safe"}, "B": {"quality": "bad", "safety": "safe"}}


def _judged(db, settings, *, swapped: bool, user=None, choice: str = "A", strength: int | None = 2):
    PairFactory()
    user = user or UserFactory()
    shown = assignments.next_pair(db, settings, user=user)
    shown.assignment.swapped = swapped
    db.commit()
    body = {"assignment_id": shown.assignment.id, "choice": choice, "strength": strength, "labels": LABELS}
    stored = submission.submit(db, user=user, body=JudgementIn.model_validate(body))
    return user, shown.assignment, db.get(Judgement, stored.judgement_id)


@pytest.mark.parametrize("swapped", [False, True])
def test_a_change_lands_on_the_real_responses_and_keeps_the_history(db, settings, swapped):
    user, assignment, judgement = _judged(db, settings, swapped=swapped)
    first = judgement.choice
    assert first is (Choice.b if swapped else Choice.a)
    changed = edits.change(db, settings, user=user, judgement_id=judgement.id, choice="B", strength=3)
    db.refresh(judgement)
    assert judgement.choice is (Choice.a if swapped else Choice.b) and judgement.strength == 3
    assert changed.choice == "B" and changed.edits == 1 and changed.assignment.id == assignment.id
    (edit,) = edits.history(db, judgement_id=judgement.id)
    assert (edit.old_choice, edit.old_strength, edit.new_choice, edit.new_strength) == (first, 2, judgement.choice, 3)
    assert edit.editor_id == user.id
    second = judgement.choice
    edits.change(db, settings, user=user, judgement_id=judgement.id, choice="tie", strength=None)
    assert [e.new_choice for e in edits.history(db, judgement_id=judgement.id)] == [second, Choice.tie]


def test_the_same_verdict_again_writes_no_history(db, settings):
    user, _, judgement = _judged(db, settings, swapped=False)
    edits.change(db, settings, user=user, judgement_id=judgement.id, choice="A", strength=2)
    assert edits.history(db, judgement_id=judgement.id) == []


def test_after_the_window_a_change_is_refused_and_nothing_moves(db, settings):
    user, _, judgement = _judged(db, settings, swapped=False)
    judgement.created_at -= timedelta(minutes=settings.judgement_edit_minutes, seconds=1)
    db.commit()
    with pytest.raises(Conflict, match="window"):
        edits.change(db, settings, user=user, judgement_id=judgement.id, choice="B", strength=1)
    db.rollback()
    db.refresh(judgement)
    assert judgement.choice is Choice.a and db.scalar(select(func.count()).select_from(JudgementEdit)) == 0
    assert [r.editable for r in edits.recent(db, settings, user=user)] == [False]


def test_another_annotators_judgement_is_not_found_and_strength_follows_the_choice(db, settings):
    user, _, judgement = _judged(db, settings, swapped=False)
    with pytest.raises(NotFound):
        edits.change(db, settings, user=UserFactory(), judgement_id=judgement.id, choice="B", strength=1)
    with pytest.raises(Invalid, match="strength"):
        edits.change(db, settings, user=user, judgement_id=judgement.id, choice="B", strength=None)
    with pytest.raises(Invalid, match="strength"):
        edits.change(db, settings, user=user, judgement_id=judgement.id, choice="tie", strength=2)


def test_recent_lists_the_users_own_newest_first(db, settings):
    user, _, older = _judged(db, settings, swapped=False)
    _, _, newer = _judged(db, settings, swapped=True, user=user, choice="tie", strength=None)
    _judged(db, settings, swapped=False)  # someone else's
    listed = edits.recent(db, settings, user=user)
    assert [r.judgement.id for r in listed] == [newer.id, older.id]
    assert [r.choice for r in listed] == ["tie", "A"] and all(r.editable for r in listed)


class TestHttp:
    def test_the_api_changes_a_verdict_and_refuses_others(self, client, db, settings):
        user, _, judgement = _judged(db, settings, swapped=False)
        _, raw = auth_service.create_token(db, user=user, name="t")
        headers = {"Authorization": f"Bearer {raw}"}
        listed = client.get("/api/v1/annotation/recent", headers=headers).json()
        assert [(r["judgement_id"], r["choice"], r["editable"]) for r in listed] == [(judgement.id, "A", True)]
        changed = client.patch(
            f"/api/v1/annotation/judgements/{judgement.id}", json={"choice": "B", "strength": 1}, headers=headers
        )
        assert changed.status_code == 200 and changed.json()["choice"] == "B" and changed.json()["edits"] == 1
        bad = client.patch(f"/api/v1/annotation/judgements/{judgement.id}", json={"choice": "B"}, headers=headers)
        assert bad.status_code == 422 and "strength" in bad.text
        _, other = auth_service.create_token(db, user=UserFactory(), name="t")
        theirs = client.patch(
            f"/api/v1/annotation/judgements/{judgement.id}",
            json={"choice": "tie"},
            headers={"Authorization": f"Bearer {other}"},
        )
        assert theirs.status_code == 404
        db.refresh(judgement)
        assert judgement.choice is Choice.b and judgement.strength == 1

    def test_back_shows_the_judged_pair_and_its_change_form(self, client, db, settings):
        PairFactory()
        PairFactory()
        UserFactory(username="backer")
        csrf = login(client, "backer")
        first = client.get("/annotate", follow_redirects=False)
        assert first.status_code == 303
        pair_url = first.headers["location"]
        page = client.get(pair_url)
        assert 'id="judge-form"' in page.text and 'autocomplete="off"' in page.text
        form = {"csrf_token": csrf, "choice": "A", "strength": "2", "a_quality": "good", "a_safety": "safe"}
        form |= {"b_quality": "good", "b_safety": "safe"}
        assert client.post(pair_url, data=form, follow_redirects=False).status_code == 303
        next_url = client.get("/annotate", follow_redirects=False).headers["location"]
        assert next_url != pair_url
        back = client.get(pair_url)  # the browser's Back
        assert back.status_code == 200 and 'id="judge-form"' not in back.text and "You judged this pair" in back.text
        (judgement,) = db.scalars(select(Judgement)).all()
        changed = client.post(
            f"/annotate/judgements/{judgement.id}",
            data={"csrf_token": csrf, "choice": "both_bad", "strength": ""},
            follow_redirects=False,
        )
        assert changed.status_code == 303 and changed.headers["location"].startswith(pair_url)
        db.refresh(judgement)
        assert judgement.choice is Choice.both_bad and judgement.strength is None
        refused = client.post(
            f"/annotate/judgements/{judgement.id}", data={"csrf_token": csrf, "choice": "A", "strength": ""}
        )
        assert refused.status_code == 422 and "strength" in refused.text
        recent = client.get("/annotate/recent")
        assert f'data-judgement="{judgement.id}"' in recent.text and "Both bad" in recent.text
