"""What a launch form needs from the database: pick lists with counts, a data check and a run-time estimate.

A researcher picks the data and the model to start from by name, seeing how much each holds ("helpful ·
120 prompts · 340 verdicts"), instead of typing ids; before launching, the form says what the job will find
(the same words the result page uses when a run was thin) and about how long the last run of the kind took.
A handful of grouped counts: no model is loaded and no text is read.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any

from sqlalchemy import distinct, func, select
from sqlalchemy.orm import Session

from app.annotation.models import Choice, Judgement, ResponseLabel
from app.auth.models import User
from app.auth.quarantine import counted
from app.dashboard.forms import Option
from app.finetune.core.data_check import warnings_for
from app.finetune.core.dataset import count_judged_pairs
from app.jobs.models import Job, JobStatus
from app.pool.models import Pair, PairStatus
from app.prompts.models import Prompt, PromptSet
from app.registry.models import ModelKind, ModelStatus, ModelVersion

LISTED = 200  # entries per pick list; the newest (or busiest) first
VERSION_FIELDS = {
    "policy_version_id": ModelKind.policy,
    "base_version_id": ModelKind.policy,
    "backbone_version_id": ModelKind.policy,
    "reward_version_id": ModelKind.reward,
    "classifier_version_id": ModelKind.classifier,
}
SET_FIELDS = frozenset({"seed_set_id", "refusal_prompt_set_id", "prompt_set_ids", "filters.prompt_set_ids"})
ANNOTATOR_FIELDS = frozenset({"filters.annotator_ids"})
EXPORT_FIELDS = frozenset({"export_job_id"})
# The kinds that learn from judged pairs, from labelled responses, or score with a reward model.
ON_PAIRS = frozenset({"reward", "dpo"})
ON_LABELS = frozenset({"classifier"})
NEEDS_REWARD = frozenset({"ppo", "rloo", "online_dpo"})
_VERDICTS = (Choice.a, Choice.b)


def _plural(count: int, word: str) -> str:
    return f"{count} {word}{'' if count == 1 else 's'}"


def _versions(db: Session, kind: ModelKind) -> list[Option]:
    rows = db.scalars(
        select(ModelVersion)
        .where(ModelVersion.kind == kind, ModelVersion.status.in_((ModelStatus.ready, ModelStatus.promoted)))
        .order_by(ModelVersion.created_at.desc(), ModelVersion.id.desc())
        .limit(LISTED)
    )
    options = []
    for v in rows:
        accuracy = (v.metrics or {}).get("val_accuracy")
        shown = f" · validation accuracy {accuracy:.2f}" if isinstance(accuracy, int | float) else ""
        promoted = " (promoted)" if v.status is ModelStatus.promoted else ""
        options.append(Option(str(v.id), f"{v.name}{promoted}{shown}"))
    return options


def _prompt_sets(db: Session) -> list[Option]:
    prompts = dict(
        db.execute(
            select(Prompt.prompt_set_id, func.count(Prompt.id)).where(~Prompt.retired).group_by(Prompt.prompt_set_id)
        ).all()
    )
    verdicts = dict(
        db.execute(
            select(Prompt.prompt_set_id, func.count(Judgement.id))
            .join(Pair, Pair.id == Judgement.pair_id)
            .join(Prompt, Prompt.id == Pair.prompt_id)
            .where(Judgement.choice.in_(_VERDICTS), Pair.status != PairStatus.gold, counted(Judgement.annotator_id))
            .group_by(Prompt.prompt_set_id)
        ).all()
    )
    sets = db.execute(select(PromptSet.id, PromptSet.name).order_by(PromptSet.id.desc()).limit(LISTED)).all()
    return [
        Option(str(i), f"{name} · {_plural(prompts.get(i, 0), 'prompt')} · {_plural(verdicts.get(i, 0), 'verdict')}")
        for i, name in sets
    ]


def _annotators(db: Session) -> list[Option]:
    judged = func.count(Judgement.id)
    rows = db.execute(
        select(User.id, User.username, judged)
        .join(Judgement, Judgement.annotator_id == User.id)
        .where(Judgement.choice.in_(_VERDICTS))
        .group_by(User.id, User.username)
        .order_by(judged.desc(), User.id)
        .limit(LISTED)
    ).all()
    return [Option(str(i), f"{name} · {_plural(n, 'verdict')}") for i, name, n in rows]


def _exports(db: Session) -> list[Option]:
    jobs = db.scalars(
        select(Job).where(Job.kind == "export", Job.status == JobStatus.succeeded).order_by(Job.id.desc()).limit(LISTED)
    )
    options = []
    for job in jobs:
        snapshot = (job.result or {}).get("snapshot", {})
        what = snapshot.get("source", "rows")
        counts = snapshot.get("counts") or {}
        rows = f" · {counts['rows']} rows" if isinstance(counts.get("rows"), int) else ""
        when = job.finished_at.strftime("%Y-%m-%d %H:%M") if job.finished_at else ""
        options.append(Option(str(job.id), f"export #{job.id} · {what}{rows} · {when}"))
    return options


def choices(db: Session, names: Iterable[str]) -> dict[str, list[Option]]:
    """The pick lists for those of ``names`` whose values are ids of things in the database."""
    found: dict[str, list[Option]] = {}
    cached: dict[Any, list[Option]] = {}

    def once(key: Any, read: Any) -> list[Option]:
        if key not in cached:
            cached[key] = read()
        return cached[key]

    for name in names:
        if name in VERSION_FIELDS:
            kind = VERSION_FIELDS[name]
            found[name] = once(kind, lambda kind=kind: _versions(db, kind))
        elif name in SET_FIELDS:
            found[name] = once("sets", lambda: _prompt_sets(db))
        elif name in ANNOTATOR_FIELDS:
            found[name] = once("annotators", lambda: _annotators(db))
        elif name in EXPORT_FIELDS:
            found[name] = once("exports", lambda: _exports(db))
    return found


def _labelled_responses(db: Session) -> int:
    query = select(func.count(distinct(ResponseLabel.response_id))).where(counted(ResponseLabel.annotator_id))
    return db.scalar(query) or 0


def _examples(db: Session, kind: str) -> int:
    return count_judged_pairs(db) if kind in ON_PAIRS else _labelled_responses(db)


def data_check(db: Session, kind: str) -> tuple[str | None, list[str]]:
    """What the job will find before any filter (a line), and what is too thin (warnings, in the words the
    finished job's page uses)."""
    if kind in ON_PAIRS or kind in ON_LABELS:
        examples = _examples(db, kind)
        what = "judged pairs (A/B verdicts)" if kind in ON_PAIRS else "labelled responses"
        return f"{examples} {what} to train on, before any filter.", warnings_for(kind, {"examples": examples}, {})
    if kind in NEEDS_REWARD:
        rewards = db.scalar(
            select(func.count(ModelVersion.id)).where(
                ModelVersion.kind == ModelKind.reward,
                ModelVersion.status.in_((ModelStatus.ready, ModelStatus.promoted)),
            )
        )
        if not rewards:
            return None, ["no reward model yet: this job scores its answers with one, so train a reward model first"]
        return f"{_plural(rewards or 0, 'reward model')} to score with.", []
    return None, []


def _minutes(start: datetime, end: datetime) -> float:
    return max((end - start).total_seconds(), 0.0) / 60


def estimate(db: Session, kind: str) -> str:
    """About how long a run takes, from the last finished run of the kind (scaled by its data, for the
    kinds that train on a count of examples); said as what it is: the last run's time, not a promise."""
    last = db.scalar(
        select(Job)
        .where(
            Job.kind == kind,
            Job.status == JobStatus.succeeded,
            Job.started_at.is_not(None),
            Job.finished_at.is_not(None),
        )
        .order_by(Job.finished_at.desc())
        .limit(1)
    )
    if last is None or last.started_at is None or last.finished_at is None:
        return f"No finished {kind} job yet to estimate the run time from."
    took = _minutes(last.started_at, last.finished_at)
    said = f"the last {kind} job (#{last.id}) took {took:.1f} min"
    then = ((last.result or {}).get("data") or {}).get("examples")
    if (kind in ON_PAIRS or kind in ON_LABELS) and isinstance(then, int) and then > 0:
        now = _examples(db, kind)
        return f"About {took * now / then:.1f} min with the same settings: {said} on {then} examples ({now} now)."
    return f"About {took:.1f} min: {said} with its settings."
