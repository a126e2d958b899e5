"""The migrated schema accepts the core rows and enforces the uniqueness rules."""

import pytest
from sqlalchemy.exc import IntegrityError

from app.annotation.models import Choice, Judgement, ResponseLabel
from tests.factories import JudgementFactory, PairFactory, UserFactory


def test_one_judgement_per_pair_and_annotator(db):
    judgement = JudgementFactory()
    db.add(Judgement(pair_id=judgement.pair_id, annotator_id=judgement.annotator_id, choice=Choice.b))
    with pytest.raises(IntegrityError):
        db.flush()


def test_one_label_per_response_and_annotator(db):
    pair = PairFactory()
    user = UserFactory()
    db.add(ResponseLabel(response_id=pair.response_a_id, annotator_id=user.id, quality=True, safety=True))
    db.flush()
    db.add(ResponseLabel(response_id=pair.response_a_id, annotator_id=user.id, quality=False, safety=True))
    with pytest.raises(IntegrityError):
        db.flush()
