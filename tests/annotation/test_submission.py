"""Submitting a judgement: mapped to the real responses, validated, stored once."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import func, select

from app.annotation import assignment as assignments
from app.annotation import submission
from app.annotation.models import Choice, Demonstration, DemonstrationKind, Judgement, ResponseLabel
from app.annotation.schemas import JudgementIn
from app.errors import Conflict, Invalid, NotFound
from app.pool.models import PairStatus
from tests.factories import PairFactory, UserFactory

GOOD = {"quality": "good", "safety": "safe"}
BAD_UNSAFE = {"quality": "bad", "safety": "unsafe"}


def _body(assignment_id: int, **overrides) -> JudgementIn:
    data = {"assignment_id": assignment_id, "choice": "A", "strength": 2, "labels": {"A": GOOD, "B": BAD_UNSAFE}}
    return JudgementIn.model_validate({**data, **overrides})


def _counts(db) -> tuple[int, int, int]:
    return tuple(db.scalar(select(func.count()).select_from(m)) for m in (Judgement, ResponseLabel, Demonstration))


def _leased(db, settings, *, swapped: bool):
    PairFactory()
    user = UserFactory()
    shown = assignments.next_pair(db, settings, user=user)
    shown.assignment.swapped = swapped
    db.commit()
    return user, assignments.load_shown(db, shown.assignment)


@pytest.mark.parametrize("swapped", [False, True])
def test_screen_choice_and_labels_land_on_real_responses(db, settings, swapped):
    user, shown = _leased(db, settings, swapped=swapped)
    stored = submission.submit(db, user=user, body=_body(shown.assignment.id))
    judgement = db.get(Judgement, stored.judgement_id)
    assert judgement.choice is (Choice.b if swapped else Choice.a)  # "A" on screen is the left response
    labels = {r.response_id: r for r in db.scalars(select(ResponseLabel))}
    assert labels[shown.left.id].quality is True and labels[shown.left.id].safety is True
    assert labels[shown.right.id].quality is False and labels[shown.right.id].safety is False
    assert db.get(type(shown.pair), shown.pair.id).status is PairStatus.complete
    assert judgement.seconds is not None and judgement.seconds >= 0


def test_repeat_is_idempotent_and_a_different_repeat_conflicts(db, settings):
    user, shown = _leased(db, settings, swapped=False)
    first = submission.submit(db, user=user, body=_body(shown.assignment.id))
    again = submission.submit(db, user=user, body=_body(shown.assignment.id))
    assert (again.judgement_id, again.created) == (first.judgement_id, False)
    with pytest.raises(Conflict):
        submission.submit(db, user=user, body=_body(shown.assignment.id, choice="tie", strength=None))
    assert _counts(db) == (1, 2, 0)


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"labels": {"A": GOOD}}, "labels.B"),
        ({"strength": None}, "strength"),
        ({"choice": "tie", "strength": 3}, "strength"),
    ],
)
def test_invalid_submission_names_the_field_and_writes_nothing(db, settings, overrides, field):
    user, shown = _leased(db, settings, swapped=False)
    with pytest.raises(Invalid) as caught:
        submission.submit(db, user=user, body=_body(shown.assignment.id, **overrides))
    assert caught.value.field == field
    assert _counts(db) == (0, 0, 0)


def test_pair_not_assigned_to_this_user_is_refused(db, settings):
    _, shown = _leased(db, settings, swapped=False)
    intruder = UserFactory()
    with pytest.raises(NotFound):
        submission.submit(db, user=intruder, body=_body(shown.assignment.id))
    assert _counts(db) == (0, 0, 0)


def test_demonstration_kind_follows_the_labels(db, settings):
    user, shown = _leased(db, settings, swapped=False)
    body = _body(
        shown.assignment.id,
        choice="both_bad",
        strength=None,
        labels={"A": BAD_UNSAFE, "B": BAD_UNSAFE},
        demonstration="I can't help with that, but here is a safe alternative.",
    )
    submission.submit(db, user=user, body=body)
    demo = db.scalar(select(Demonstration))
    assert demo.kind is DemonstrationKind.safe_answer and demo.prompt_id == shown.pair.prompt_id


def test_full_pair_refuses_an_extra_judgement(db, settings):
    pair = PairFactory(judgements_needed=1)
    first, late = UserFactory(), UserFactory()
    shown = assignments.next_pair(db, settings, user=first)
    # the late user's lease was taken before the first submitted, then lapsed and the pair filled up
    from app.annotation.models import PairAssignment
    from app.db import utcnow

    stale = PairAssignment(pair_id=pair.id, user_id=late.id, swapped=False, leased_until=utcnow())
    db.add(stale)
    db.commit()
    submission.submit(db, user=first, body=_body(shown.assignment.id))
    with pytest.raises(Conflict, match="already has all the judgements"):
        submission.submit(db, user=late, body=_body(stale.id))
    assert db.scalar(select(func.count()).select_from(Judgement)) == 1


def _lapse(db, assignment) -> None:
    assignment.leased_until = assignment.assigned_at - timedelta(seconds=1)
    db.commit()


def test_lapsed_lease_given_to_someone_else_is_refused_and_the_new_holder_is_accepted(db, settings):
    PairFactory(judgements_needed=1)
    first, second = UserFactory(), UserFactory()
    lapsed = assignments.next_pair(db, settings, user=first).assignment
    _lapse(db, lapsed)
    taken = assignments.next_pair(db, settings, user=second).assignment
    assert taken.pair_id == lapsed.pair_id
    with pytest.raises(Conflict, match="lease on this pair expired and the pair was given to someone else"):
        submission.submit(db, user=first, body=_body(lapsed.id))
    assert _counts(db) == (0, 0, 0)
    assert submission.submit(db, user=second, body=_body(taken.id)).created


def test_lapsed_lease_nobody_took_still_counts(db, settings):
    PairFactory(judgements_needed=1)
    user = UserFactory()
    lapsed = assignments.next_pair(db, settings, user=user).assignment
    _lapse(db, lapsed)
    assert submission.submit(db, user=user, body=_body(lapsed.id)).created


def test_lapsed_lease_counts_while_the_pair_has_room_beside_the_new_holder(db, settings):
    PairFactory(judgements_needed=2)
    first, second = UserFactory(), UserFactory()
    lapsed = assignments.next_pair(db, settings, user=first).assignment
    _lapse(db, lapsed)
    assignments.next_pair(db, settings, user=second)
    assert submission.submit(db, user=first, body=_body(lapsed.id)).created
