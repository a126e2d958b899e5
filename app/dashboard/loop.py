"""Where a team's loop stands and the one step that moves it on: the home page of researchers and admins.

The loop is judge → reward model → improve the policy → compare → promote → judge again. What to do next
follows from a few facts in the database, read in a handful of cheap queries (no model is loaded):

1. no promoted policy: install one (the first start's bootstrap);
2. fewer A/B verdicts than a first reward model needs: collect judgements;
3. no reward model yet: train one;
4. a policy trained after the promoted one and not yet promoted: compare the two side by side — generate
   pairs with one answer from each (a ``generate`` job, all pairs cross-version), judge them, and promote
   the newer one once its pairs are judged (or :data:`DECIDE_AFTER` verdicts are in) if it won, or archive
   it if it did not (a comparison is finished before the reward model is retrained: its verdicts are new
   data too);
5. many verdicts since the latest reward model: train a new one;
6. otherwise: improve the policy (the default policy step).

Running jobs come first: while one trains, its page is the place to watch.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from app.annotation.models import Choice, Judgement
from app.dashboard.models import HeadToHead, head_to_head
from app.finetune.core.data_check import RECOMMENDED_EXAMPLES
from app.finetune.policy_step import DEFAULT_POLICY_METHOD
from app.jobs.models import Job, JobStatus
from app.registry.models import ModelKind, ModelStatus, ModelVersion

RUNNING_SHOWN = 5
COMPARE_PAIRS = 40  # side-by-side pairs a comparison generates: ±15 points (95 %) on the win rate at k = 1
DECIDE_AFTER = 40  # side-by-side verdicts after which promoting is suggested even with pairs still waiting
# Retrain the reward model once this share of its data has come in since (or RECOMMENDED_EXAMPLES, if larger).
RETRAIN_SHARE = 0.5


@dataclass(frozen=True)
class NextStep:
    key: str  # install | judge | reward | compare | judge_compare | promote | improve
    title: str
    why: str
    href: str


@dataclass(frozen=True)
class LoopStatus:
    promoted: ModelVersion | None
    reward: ModelVersion | None  # the newest ready reward model
    newer_policy: ModelVersion | None  # a ready policy trained after the promoted one
    head_to_head: HeadToHead | None  # the newer policy against the promoted one, side by side
    promoted_record: HeadToHead | None  # the promoted policy against its parent, side by side
    verdicts: int  # A/B judgements in all
    verdicts_since_reward: int
    running: list[Job]
    step: NextStep

    @property
    def reward_accuracy(self) -> float | None:
        value = (self.reward.metrics or {}).get("val_accuracy") if self.reward else None
        return float(value) if isinstance(value, int | float) else None


def _newest(db: Session, kind: ModelKind, *statuses: ModelStatus) -> ModelVersion | None:
    query = select(ModelVersion).where(ModelVersion.kind == kind, ModelVersion.status.in_(statuses))
    return db.scalar(query.order_by(ModelVersion.created_at.desc(), ModelVersion.id.desc()).limit(1))


def _verdicts(db: Session, since: object = None) -> int:
    query = select(func.count()).select_from(Judgement).where(Judgement.choice.in_((Choice.a, Choice.b)))
    if since is not None:
        query = query.where(Judgement.created_at > since)
    return db.scalar(query) or 0


def _compare_step(promoted: ModelVersion, newer: ModelVersion, match: HeadToHead) -> NextStep:
    """Generate side-by-side pairs, judge them, then promote (or not) on the newer one's win rate."""
    rate = match.win_rate
    if rate is not None and (match.pending == 0 or match.verdicts >= DECIDE_AFTER):
        verdict = "promote it" if rate > 0.5 else f"it did not beat {promoted.name}: keep the promoted one, archive it"
        return NextStep(
            "promote",
            f"Promote {newer.name}" if rate > 0.5 else "Review the comparison",
            f"{newer.name} won {rate:.0%} of {match.verdicts} side-by-side verdicts against {promoted.name}: "
            f"{verdict}.",
            "/dashboard/models",
        )
    if match.pending:
        return NextStep(
            "judge_compare",
            "Judge the side-by-side pairs",
            f"{match.pending} pairs with one answer from {newer.name} and one from {promoted.name} are waiting.",
            "/annotate",
        )
    return NextStep(
        "compare",
        "Compare the versions",
        f"{newer.name} was trained after the promoted {promoted.name}: generate {COMPARE_PAIRS} pairs with one "
        "answer from each, to judge side by side.",
        f"/dashboard/jobs/new/generate?pairs={COMPARE_PAIRS}&cross_version_share=1&reason=compare",
    )


def _next_step(
    promoted: ModelVersion | None,
    reward: ModelVersion | None,
    newer: ModelVersion | None,
    verdicts: int,
    since_reward: int,
    match: HeadToHead | None,
) -> NextStep:
    if promoted is None:
        return NextStep("install", "Install a policy", "No policy is promoted: nothing generates pairs yet.", "/models")
    if reward is None and verdicts < RECOMMENDED_EXAMPLES:
        return NextStep(
            "judge",
            "Collect judgements",
            f"{verdicts} of the ~{RECOMMENDED_EXAMPLES} A/B verdicts a first reward model needs.",
            "/annotate",
        )
    if reward is not None and newer is not None and match is not None:  # finish a comparison before retraining
        return _compare_step(promoted, newer, match)
    trained_on = int(((reward.config or {}).get("card", {}).get("data", {}) or {}).get("examples", 0)) if reward else 0
    if reward is None or since_reward >= max(RECOMMENDED_EXAMPLES, RETRAIN_SHARE * trained_on):
        why = (
            f"{verdicts} A/B verdicts and no reward model yet."
            if reward is None
            else f"{since_reward} new verdicts since {reward.name} (trained on {trained_on})."
        )
        return NextStep("reward", "Train a reward model", why, "/dashboard/jobs/new/reward")
    return NextStep(
        "improve",
        "Improve the policy",
        f"{reward.name} is the newest reward model; train the policy against it ({DEFAULT_POLICY_METHOD}).",
        f"/dashboard/jobs/new/{DEFAULT_POLICY_METHOD}",
    )


def loop_status(db: Session) -> LoopStatus:
    promoted = _newest(db, ModelKind.policy, ModelStatus.promoted)
    reward = _newest(db, ModelKind.reward, ModelStatus.ready, ModelStatus.promoted)
    newer = None
    if promoted is not None:
        newer = db.scalar(
            select(ModelVersion)
            .where(
                ModelVersion.kind == ModelKind.policy,
                ModelVersion.status == ModelStatus.ready,
                ModelVersion.created_at > promoted.created_at,
            )
            .order_by(ModelVersion.created_at.desc())
            .limit(1)
        )
    match = head_to_head(db, newer.id, promoted.id) if newer is not None and promoted is not None else None
    verdicts = _verdicts(db)
    since_reward = _verdicts(db, reward.created_at) if reward is not None else verdicts
    running = list(
        db.scalars(
            select(Job)
            .where(Job.status.in_((JobStatus.queued, JobStatus.running)), Job.kind != "generate")
            .order_by(Job.id.desc())
            .limit(RUNNING_SHOWN)
        )
    )
    return LoopStatus(
        promoted=promoted,
        reward=reward,
        newer_policy=newer,
        head_to_head=match,
        promoted_record=(
            head_to_head(db, promoted.id, promoted.parent_id) if promoted and promoted.parent_id is not None else None
        ),
        verdicts=verdicts,
        verdicts_since_reward=since_reward,
        running=running,
        step=_next_step(promoted, reward, newer, verdicts, since_reward, match),
    )
