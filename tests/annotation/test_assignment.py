"""Who gets which pair: k per pair, leases that lapse, skips, and sides randomised per assignment."""

from __future__ import annotations

from datetime import timedelta

from app.annotation import assignment as assignments
from app.annotation.models import AssignmentStatus, PairAssignment
from tests.factories import PairFactory, UserFactory


def test_each_user_gets_a_different_pair_while_k_is_one(db, settings):
    p1, p2 = PairFactory(), PairFactory()
    u1, u2, u3 = UserFactory(), UserFactory(), UserFactory()
    s1 = assignments.next_pair(db, settings, user=u1)
    s2 = assignments.next_pair(db, settings, user=u2)
    assert {s1.pair.id, s2.pair.id} == {p1.id, p2.id}
    assert assignments.next_pair(db, settings, user=u3) is None  # both leased to k=1 people


def test_reload_returns_the_same_lease_and_sides(db, settings):
    PairFactory()
    user = UserFactory()
    first = assignments.next_pair(db, settings, user=user)
    again = assignments.next_pair(db, settings, user=user)
    assert again.assignment.id == first.assignment.id and again.left.id == first.left.id


def test_k_two_lets_two_people_hold_the_same_pair(db, settings):
    pair = PairFactory(judgements_needed=2)
    a, b, c = UserFactory(), UserFactory(), UserFactory()
    assert assignments.next_pair(db, settings, user=a).pair.id == pair.id
    assert assignments.next_pair(db, settings, user=b).pair.id == pair.id
    assert assignments.next_pair(db, settings, user=c) is None


def test_lapsed_lease_frees_the_pair(db, settings):
    pair = PairFactory()
    holder, other = UserFactory(), UserFactory()
    shown = assignments.next_pair(db, settings, user=holder)
    shown.assignment.leased_until = shown.assignment.assigned_at - timedelta(seconds=1)
    db.commit()
    assert assignments.next_pair(db, settings, user=other).pair.id == pair.id


def test_skipped_pair_is_not_offered_again(db, settings):
    PairFactory()
    user = UserFactory()
    shown = assignments.next_pair(db, settings, user=user)
    assignments.skip(db, user=user, assignment_id=shown.assignment.id)
    assert db.get(PairAssignment, shown.assignment.id).status is AssignmentStatus.skipped
    assert assignments.next_pair(db, settings, user=user) is None


def test_sides_are_randomised_and_recorded(db, settings):
    users = [UserFactory() for _ in range(40)]
    swapped = []
    for user in users:
        PairFactory()
        shown = assignments.next_pair(db, settings, user=user)
        swapped.append(shown.assignment.swapped)
        expected_left = shown.pair.response_b_id if shown.assignment.swapped else shown.pair.response_a_id
        assert shown.left.id == expected_left
    assert 0 < sum(swapped) < len(swapped)  # 40 fair coin flips all equal: p = 2^-39


def test_progress_counts(db, settings):
    PairFactory(), PairFactory(), PairFactory()
    user = UserFactory()
    progress = assignments.progress(db, user=user)
    assert (progress.judged_today, progress.judged_total, progress.remaining) == (0, 0, 3)
