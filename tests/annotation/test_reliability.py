"""Issue 16: annotator reliability ranks careless and malicious annotators below honest ones, and quarantine
removes exactly their rows from exports, training data and agreement (reversibly, audit-logged)."""

from __future__ import annotations

import json
import random

import pytest
from sqlalchemy import select

from app.annotation import reliability
from app.annotation.models import Judgement, PairAssignment
from app.annotation.reliability import Vote
from app.auth.models import AuditEvent
from app.dashboard import quality
from app.errors import Conflict
from app.export.filters import parse_params
from app.export.service import export_to_folder
from app.finetune.core.dataset import DataFilters, preference_examples
from app.users import service as users
from tests.export.data import judged_pair
from tests.factories import UserFactory

HONEST, PER_ANNOTATOR, PAIRS = 50, 40, 400
GOLD_PAIRS, GOLD_EACH = 40, 4  # gold pair ids follow the others'
BAD = ("random", "always_left", "flipper", "bot")


def _simulate(seed: int, *, shared: bool = True, gold_each: int = GOLD_EACH) -> tuple[list[Vote], dict[int, str]]:
    """50 honest annotators (85 % right, about 8 s a pair), a random clicker, one who always picks the left
    answer, one who picks the worse answer 85 % of the time, and a sub-second bot; 40 pairs each, drawn from
    400 (``shared``) or each their own (no pair judged twice), then ``gold_each`` gold pairs, answered alike
    (drawn from a random stream of their own, so the other votes are the same with or without gold)."""
    rng, gold_rng = random.Random(seed), random.Random(seed + 10_000)
    kinds = dict.fromkeys(range(HONEST), "honest") | {HONEST + j: kind for j, kind in enumerate(BAD)}
    pairs = PAIRS if shared else PER_ANNOTATOR * len(kinds)
    truth = {pair: rng.choice("ab") for pair in range(pairs)}
    gold = {pairs + i: gold_rng.choice("ab") for i in range(GOLD_PAIRS)}
    votes = []

    def vote(r: random.Random, pair: int, annotator: int, kind: str, known: str | None) -> Vote:
        swapped = r.random() < 0.5
        left = "b" if swapped else "a"  # the real side shown on the left
        true_side = known or truth[pair]
        right_side, wrong_side = true_side, "b" if true_side == "a" else "a"
        if kind == "honest":
            choice = right_side if r.random() < 0.85 else wrong_side
        elif kind == "flipper":
            choice = wrong_side if r.random() < 0.85 else right_side
        elif kind == "always_left":
            choice = left
        else:  # the random clicker and the bot
            choice = r.choice("ab")
        seconds = r.uniform(0.2, 0.7) if kind == "bot" else r.lognormvariate(2.0, 0.4)
        return Vote(pair, annotator, choice, choice == left, seconds, known)

    for annotator, kind in kinds.items():
        own = range(annotator * PER_ANNOTATOR, (annotator + 1) * PER_ANNOTATOR)
        for pair in rng.sample(range(pairs), PER_ANNOTATOR) if shared else own:
            votes.append(vote(rng, pair, annotator, kind, None))
    for annotator, kind in kinds.items():
        for pair in gold_rng.sample(sorted(gold), gold_each):
            votes.append(vote(gold_rng, pair, annotator, kind, gold[pair]))
    return votes, kinds


def _auroc(honest: list[float], bad: list[float]) -> float:
    """P(an honest annotator scores above a bad one); ties count half."""
    wins = sum((h > b) + 0.5 * (h == b) for h in honest for b in bad)
    return wins / (len(honest) * len(bad))


@pytest.mark.parametrize("seed", range(5))
def test_the_ranking_puts_every_bad_annotator_below_every_honest_one(seed):
    votes, kinds = _simulate(seed)
    fitted = reliability.fit(votes)
    honest = [fitted[a].score for a, k in kinds.items() if k == "honest"]
    bad = {k: fitted[a] for a, k in kinds.items() if k != "honest"}
    assert _auroc(honest, [r.score for r in bad.values()]) >= 0.95
    assert max(r.score for r in bad.values()) < min(honest), {k: round(r.score, 2) for k, r in bad.items()}
    assert any("position bias" in f for f in bad["always_left"].flags)
    assert any("fast" in f for f in bad["bot"].flags)
    assert statistics_mean([fitted[a].accuracy for a, k in kinds.items() if k == "honest"]) == pytest.approx(
        0.85, abs=0.05
    )


@pytest.mark.parametrize("seed", range(5))
def test_gold_pairs_catch_the_careless_where_no_pair_is_shared(seed):
    """Every annotator judges pairs nobody else judged, so nothing can be fitted; a calibration batch of 10
    gold pairs each still ranks the bad annotators below the honest ones (a random clicker right 7 times in
    10 by luck can pass an unlucky honest one: 10 gold pairs bound how sure this can be) and flags the flipper."""
    votes, kinds = _simulate(seed, shared=False, gold_each=10)
    fitted = reliability.fit(votes)
    assert all(row.accuracy is None for row in fitted.values())  # no shared pair: no fit
    honest = [fitted[a] for a, k in kinds.items() if k == "honest"]
    bad = {k: fitted[a] for a, k in kinds.items() if k != "honest"}
    assert all(r.gold_pairs == 10 for r in fitted.values())
    assert _auroc([r.score for r in honest], [r.score for r in bad.values()]) >= 0.9
    assert any(f.startswith("gold:") for f in bad["flipper"].flags)
    assert bad["flipper"].score < min(r.score for r in honest)


def test_a_gold_verdict_is_checked_not_fitted_and_a_tie_on_it_is_wrong():
    votes = [
        Vote(1, 7, "a", True, 5.0, "a"),
        Vote(2, 7, "tie", None, 5.0, "b"),
        Vote(3, 7, "b", False, 5.0, "a"),
        Vote(4, 7, "a", True, 5.0, "b"),
    ]
    row = reliability.fit(votes)[7]
    assert (row.gold_pairs, row.gold_accuracy, row.accuracy) == (4, 0.25, None)
    assert row.flags == []  # 1 of 4 right: the 99 % upper bound is 0.79, bad luck is still possible
    # Nothing else checks them: the gold accuracy with two pseudo-verdicts at the prior.
    assert row.score == pytest.approx((1 + 2 * reliability.PRIOR) / 6)
    all_wrong = [Vote(i, 8, "a", True, 5.0, "b") for i in range(4)]
    assert reliability.fit(all_wrong)[8].flags == ["gold: 0 of 4 known answers right"]


def statistics_mean(values: list[float | None]) -> float:
    present = [v for v in values if v is not None]
    return sum(present) / len(present)


def test_a_lone_annotator_gets_the_prior_and_ties_count_for_nothing():
    fitted = reliability.fit([Vote(1, 7, "tie", None, 5.0), Vote(2, 7, "a", True, 5.0)])
    assert fitted[7].accuracy is None and fitted[7].votes == 1 and fitted[7].score == reliability.PRIOR


class TestQuarantine:
    def _data(self, db):
        honest = [UserFactory(username=f"honest{i}") for i in range(3)]
        clicker = UserFactory(username="clicker")
        for n in range(6):
            verdicts = [(u, "a") for u in honest] + [(clicker, "b")]
            judged_pair(db, a=f"good answer {n}", b=f"bad answer {n}", verdicts=verdicts)
        db.commit()
        return honest, clicker

    def test_it_removes_exactly_their_rows_from_export_training_and_agreement(self, db, tmp_path):
        honest, clicker = self._data(db)
        admin = UserFactory(username="boss", role="admin")
        theirs = set(db.scalars(select(Judgement.id).where(Judgement.annotator_id == clicker.id)))
        everyone = set(db.scalars(select(Judgement.id)))
        before = {e.id for e in preference_examples(db, DataFilters())}
        assert {int(i) for i in before} == everyone

        users.set_quarantine(db, actor=admin, user_id=clicker.id, quarantined=True, reason="random clicks")
        examples = {int(e.id) for e in preference_examples(db, DataFilters())}
        assert examples == everyone - theirs
        assert {int(e.id) for e in preference_examples(db, DataFilters(include_quarantined=True))} == everyone
        result = export_to_folder(db, parse_params({"format": "trl"}), tmp_path / "out")
        lines = (tmp_path / "out" / result["file"]).read_text(encoding="utf-8").splitlines()
        assert len(lines) == len(everyone - theirs)
        assert all("bad answer" in json.loads(line)["rejected"] for line in lines)  # only the honest verdicts
        every = export_to_folder(db, parse_params({"format": "trl", "include_quarantined": True}), tmp_path / "all")
        assert len((tmp_path / "all" / every["file"]).read_text(encoding="utf-8").splitlines()) == len(everyone)
        agreement = quality.agreement_report(db).choice  # the three who agree, without the clicker's votes
        assert (agreement.percent, agreement.values) == (pytest.approx(1.0), 6 * 3)
        table = {row.username: row for row in quality.annotator_table(db)}
        assert table["clicker"].quarantined and not table["honest0"].quarantined

        users.set_quarantine(db, actor=admin, user_id=clicker.id, quarantined=False, reason="talked to them")
        assert {int(e.id) for e in preference_examples(db, DataFilters())} == everyone
        log = users.audit_log(db, user_id=clicker.id)
        assert [(e.action, e.reason, e.actor_id) for e in log] == [
            ("release", "talked to them", admin.id),
            ("quarantine", "random clicks", admin.id),
        ]

    def test_no_self_quarantine_and_a_repeat_writes_nothing(self, db):
        admin = UserFactory(username="boss", role="admin")
        other = UserFactory()
        with pytest.raises(Conflict):
            users.set_quarantine(db, actor=admin, user_id=admin.id, quarantined=True)
        users.set_quarantine(db, actor=admin, user_id=other.id, quarantined=True)
        users.set_quarantine(db, actor=admin, user_id=other.id, quarantined=True)
        assert len(db.scalars(select(AuditEvent)).all()) == 1

    def test_the_dashboard_shows_the_fitted_signals(self, db):
        honest, clicker = self._data(db)
        for judgement in db.scalars(select(Judgement)):
            db.add(
                PairAssignment(
                    pair_id=judgement.pair_id,
                    user_id=judgement.annotator_id,
                    swapped=False,
                    leased_until=judgement.created_at,
                )
            )
        db.commit()
        table = {row.username: row for row in quality.annotator_table(db)}
        assert table["clicker"].reliability.accuracy < table["honest0"].reliability.accuracy
        assert table["honest0"].reliability.left_share == 1.0 and table["clicker"].reliability.left_share == 0.0


def test_an_admin_quarantines_from_the_users_page_and_the_audit_shows_it(client, db):
    from app.auth.models import Role
    from tests.helpers import log_in_as

    suspect = UserFactory(username="suspect")
    log_in_as(client, "boss", Role.admin)
    page = client.post(
        f"/admin/users/{suspect.id}/quarantine",
        data={"csrf_token": client.csrf, "quarantined": "1", "reason": "<b>left side only</b>"},
    )
    assert page.status_code == 200 and "Lift the quarantine" in page.text
    assert "&lt;b&gt;left side only&lt;/b&gt;" in page.text  # the reason is shown escaped in the audit table
    db.refresh(suspect)
    assert suspect.quarantined_at is not None
    log_in_as(client, "res", Role.researcher)
    assert client.post(f"/admin/users/{suspect.id}/quarantine", data={"csrf_token": client.csrf}).status_code == 403
