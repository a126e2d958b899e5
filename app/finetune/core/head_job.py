"""What the ``reward`` and ``classifier`` jobs share, in the job process (torch is imported here only).

Both follow one path: read the snapshot of annotations the job is entitled to (nothing created after
the job itself, so a retried attempt reads the same data) → resolve the backbone → train with the
framework-free trainer, resuming from ``<data_dir>/checkpoints/job-<id>/resume.pt`` when an earlier
attempt died → the trainer renames the finished folder (model, tokenizer, card) into the model store →
register the version in a fenced transaction keyed by the job id. A crash at any point is safe to retry:
before the rename nothing is visible; after it, the re-run finds its own folder (same fingerprint) and
only registers; after registering, ``register`` returns the version it already made.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.annotation.models import Judgement, ResponseLabel
from app.errors import DomainError
from app.export.service import exports_dir
from app.export.snapshot import ExportSnapshot, load_snapshot, read_ids
from app.finetune.core.attempt import MIN_EXAMPLES, checkpoint_path, job_cutoff, registered_by
from app.finetune.core.data_check import warnings_for
from app.finetune.core.dataset import DataFilters, missing_ids
from app.finetune.core.head_params import TrainParams, filters_of
from app.finetune.core.processes import call_trainer
from app.finetune.core.reporter import TrainerReporter
from app.jobs.context import JobContext
from app.jobs.exceptions import JobCancelled, JobFailed
from app.registry import service as registry
from app.registry import store
from app.registry.models import ModelKind, ModelVersion
from app.training.core.config import TrainConfig

EXPORT_AGGREGATE = {"every": "each", "majority": "majority"}  # an export's aggregation as the dataset's


@dataclass
class RunPlan:
    """Everything a run needs that comes from the database, read once at the start of an attempt."""

    name: str
    backbone: str  # a Hugging Face id or a folder
    parent_id: int | None  # the policy version whose backbone this is, if any
    examples: list[Any]
    existing: ModelVersion | None  # already registered by this job (a re-run after the commit)
    export: dict[str, Any] | None = None  # the export whose snapshot is the data, when one is named


def _backbone(db: Session, params: TrainParams) -> tuple[str, int | None]:
    """The backbone location: a policy version's folder when one is named, else ``params.backbone``."""
    if params.backbone_version_id is None:
        return params.backbone, None
    try:
        version = registry.get_version(db, params.backbone_version_id, kind=ModelKind.policy)
    except DomainError as exc:
        raise JobFailed(f"backbone_version_id: {exc.message}") from None
    if not version.path or not Path(version.path).is_dir():
        raise JobFailed(f"backbone_version_id: {version.name} has no model folder on this machine")
    return version.path, version.id


SOURCE_OF = {ModelKind.reward: "judgements", ModelKind.classifier: "labels"}  # what an export must hold
# (session, the job's parameters, the filters to read with, the export named, if any) → the examples
Reader = Callable[[Session, Any, DataFilters, ExportSnapshot | None], list[Any]]


def _from_export(ctx: JobContext[Any], db: Session, kind: ModelKind) -> tuple[ExportSnapshot, DataFilters]:
    """The named export's snapshot and a filter on exactly its rows, checked: the export finished, holds
    the rows this kind trains on, its id list matches its hash, and none of its rows has gone since."""
    export_id = ctx.params.export_job_id
    try:
        snapshot = load_snapshot(db, export_job_id=export_id, exports_dir=exports_dir(ctx.settings))
        ids = read_ids(snapshot)
    except DomainError as exc:
        raise JobFailed(f"export_job_id: {exc.message}") from None
    wanted = SOURCE_OF[kind]
    if snapshot.source != wanted:
        raise JobFailed(
            f"export_job_id: export {export_id} holds {snapshot.source}; a {kind.value} model trains on {wanted}"
        )
    column = Judgement.id if wanted == "judgements" else ResponseLabel.id
    gone = missing_ids(db, column, ids)
    if gone:
        raise JobFailed(f"export_job_id: {gone} of the {len(set(ids))} {wanted} in export {export_id} no longer exist")
    return snapshot, DataFilters(ids=ids)


def _export_record(snapshot: ExportSnapshot) -> dict[str, Any]:
    """What the version records of the export it was trained on."""
    return {
        "job_id": snapshot.job_id,
        "format": snapshot.format,
        "sha256": snapshot.sha256,
        "counts": snapshot.counts,
        "aggregation": snapshot.params.get("aggregation", "every"),
    }


def plan_run(ctx: JobContext[Any], kind: ModelKind, read: Reader) -> RunPlan:
    """Read the job's data snapshot (the named export's, or the filtered annotations made before the
    job) and resolve its name and backbone."""
    params: TrainParams = ctx.params
    name = params.name or f"{kind.value}-job{ctx.job_id}"
    with ctx.sessions() as db:
        existing = registered_by(db, ctx.job_id)
        taken = db.scalar(select(ModelVersion.id).where(ModelVersion.name == name))
        if existing is None and taken is not None:
            raise JobFailed(f"name: a model version named {name!r} exists already")
        backbone, parent_id = _backbone(db, params)
        snapshot, filters = None, DataFilters(**filters_of(params)).capped(job_cutoff(db, ctx.job_id))
        if params.export_job_id is not None and existing is None:
            snapshot, filters = _from_export(ctx, db, kind)
        examples = read(db, params, filters, snapshot) if existing is None else []
    usable = sum(not getattr(example, "tie", False) for example in examples)  # a tie alone trains nothing
    if existing is None and usable < MIN_EXAMPLES:
        where = f"export {params.export_job_id}" if snapshot else "the filters"
        raise JobFailed(f"only {usable} usable examples are in {where}; at least {MIN_EXAMPLES} are needed")
    return RunPlan(name, backbone, parent_id, examples, existing, _export_record(snapshot) if snapshot else None)


CARD_KEYS = ("config", "data", "fingerprint", "steps", "resumed_from_step", "labels")  # kept on the version row


def register_version(ctx: JobContext[Any], plan: RunPlan, kind: ModelKind, folder: Path, result: Any) -> dict[str, Any]:
    """Register the trained folder (idempotently, per job) and describe it as the job's result."""
    card = result.card
    with ctx.transaction() as db:
        version = registry.register(
            db,
            name=plan.name,
            kind=kind,
            path=str(folder),
            base_model=card.get("backbone", plan.backbone),
            parent_id=plan.parent_id,
            metrics=result.metrics,
            job_id=ctx.job_id,
            config={
                "card": {key: card[key] for key in CARD_KEYS if key in card},
                **({"export": plan.export} if plan.export else {}),
            },
        )
        outcome = describe(version)
    for warning in outcome["warnings"]:
        ctx.reporter.log(f"warning: {warning}")
    shutil.rmtree(checkpoint_path(ctx).parent, ignore_errors=True)
    return outcome


def describe(version: ModelVersion) -> dict[str, Any]:
    """The job's result: the registered version, its metrics, its data snapshot and what is thin about it."""
    card = version.config.get("card", {})
    data = card.get("data", {})
    return {
        "version_id": version.id,
        "name": version.name,
        "path": version.path,
        "metrics": dict(version.metrics),
        "data": data,
        "warnings": warnings_for(version.kind.value, data, dict(version.metrics)),
        "export": version.config.get("export"),
        "steps": card.get("steps"),
        "resumed_from_step": card.get("resumed_from_step", 0),
    }


def run_training(
    ctx: JobContext[Any], kind: ModelKind, read: Reader, train: Callable[..., Any], config_cls: type[TrainConfig]
) -> dict[str, Any]:
    """The whole of either job: ``read`` gives its examples, ``train`` is ``train_reward_model`` or
    ``train_classifier`` and ``config_cls`` its config, built from the job's training fields and the
    resolved backbone; it runs on the processes the job asks for (:func:`call_trainer`)."""
    from app.training.core.loop import TrainingStopped

    plan = plan_run(ctx, kind, read)
    if plan.existing is not None:
        return describe(plan.existing)
    folder = store.version_dir(ctx.settings, kind.value, plan.name)
    ctx.reporter.log(f"{kind.value} job: {len(plan.examples)} examples, backbone {plan.backbone}")
    if plan.export:
        ctx.reporter.log(
            f"data: export {plan.export['job_id']} ({plan.export['format']}, aggregation "
            f"{plan.export['aggregation']}, snapshot {plan.export['sha256'][:12]})"
        )
    try:
        result = call_trainer(
            ctx,
            train,
            plan.examples,
            config_cls.from_dict({**ctx.params.trainer_values(config_cls), "backbone": plan.backbone}),
            folder,
            reporter=TrainerReporter(ctx.reporter),
            checkpoint_path=checkpoint_path(ctx),
        )
    except TrainingStopped:
        raise JobCancelled() from None
    except FileExistsError as exc:  # the folder holds another run's model: never overwrite it
        raise JobFailed(str(exc)) from None
    return register_version(ctx, plan, kind, folder, result)
