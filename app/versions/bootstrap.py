"""First start: install the default policy as ``policy-v0`` (promoted) and a starter prompt set.

``rlhf models bootstrap`` runs it directly; ``rlhf serve`` queues it as a ``bootstrap`` job when no
policy is registered yet, so the web app starts at once and the worker does the slow part (the
SmolLM2 GGUF is dequantised and saved as safetensors once, ~20-60 s on a laptop). Then the pool's
refill task sees a promoted policy and active prompts, and pairs start arriving by themselves.

Idempotent: with a promoted policy and some active prompt nothing is done. A crash halfway is
finished by the next run: a checkpoint folder already renamed into the store is registered
without converting again, a version registered but not promoted is promoted.

The model may be any Hugging Face id or local folder (``--model`` / ``RLHF_BOOTSTRAP_MODEL``)
of a causal LM whose tokenizer has a chat template; it is copied into the store as safetensors.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from app.config import Settings
from app.errors import Conflict, Invalid
from app.jobs import service as jobs
from app.jobs.models import Job, JobStatus
from app.prompts.importing import import_prompts
from app.prompts.models import Prompt, PromptSet, PromptSetStatus
from app.prompts.service import create_set, find_set
from app.registry import service, store
from app.registry.models import ModelKind, ModelStatus, ModelVersion
from app.registry.serving import IN_PROCESS_BATCH
from app.training.core.model_card import write_model_card
from app.versions import promotion
from app.versions.chat_template import with_default_system

BOOTSTRAP = "bootstrap"
VERSION_NAME = "policy-v0"
DEFAULT_BASE_MODEL = "HuggingFaceTB/SmolLM2-135M-Instruct"
STARTER_SET = "starter"
STARTER_FILE = Path(__file__).resolve().parent.parent / "pool" / "starter_prompts.jsonl"

Say = Callable[[str], None]


@dataclass(frozen=True)
class BootstrapReport:
    policy: str  # name of the promoted policy after the run
    installed: bool  # a checkpoint was written into the store by this run
    promoted: bool  # this run promoted it
    starter_prompts: int  # prompts imported into the starter set by this run

    def __str__(self) -> str:
        model = (
            f"installed and promoted {self.policy}"
            if self.installed
            else (f"promoted {self.policy}" if self.promoted else f"policy {self.policy} already promoted")
        )
        prompts = (
            f"created prompt set {STARTER_SET!r} with {self.starter_prompts} prompts"
            if self.starter_prompts
            else "prompts present"
        )
        return f"{model}; {prompts}"


def bootstrap(
    db: Session, settings: Settings, *, model: str | None = None, job_id: int | None = None, say: Say = print
) -> BootstrapReport:
    """Make sure there is a promoted policy and something to prompt it with. Commits."""
    prompts = ensure_starter_prompts(db)
    if prompts:
        say(f"created prompt set {STARTER_SET!r} with {prompts} prompts")
    promoted = service.promoted_policy(db)
    if promoted is not None:
        return BootstrapReport(promoted.name, installed=False, promoted=False, starter_prompts=prompts)
    source = (model if model is not None else settings.bootstrap_model).strip()
    version, installed = install_policy(db, settings, source=source, job_id=job_id, say=say)
    version = promotion.promote(db, settings, version_id=version.id).promoted
    say(f"promoted {version.name}")
    return BootstrapReport(version.name, installed=installed, promoted=True, starter_prompts=prompts)


def ensure_starter_prompts(db: Session) -> int:
    """Import the starter set when no active set holds a prompt and no set is called 'starter'."""
    active = db.scalar(
        select(func.count())
        .select_from(Prompt)
        .join(PromptSet, PromptSet.id == Prompt.prompt_set_id)
        .where(PromptSet.status == PromptSetStatus.active, Prompt.retired.is_(False))
    )
    if active or find_set(db, STARTER_SET) is not None:
        return 0
    prompt_set = create_set(
        db, name=STARTER_SET, description="Short, harmless everyday instructions shipped with RLHF Loop.", commit=False
    )
    with STARTER_FILE.open("rb") as stream:
        report = import_prompts(db, set_id=prompt_set.id, stream=stream, fmt="jsonl", max_bytes=None, commit=False)
    db.commit()
    return report.imported


def install_policy(
    db: Session, settings: Settings, *, source: str, job_id: int | None, say: Say
) -> tuple[ModelVersion, bool]:
    """``policy-v0`` registered (not yet promoted); True when this call wrote its checkpoint."""
    existing = db.scalar(select(ModelVersion).where(ModelVersion.name == VERSION_NAME))
    if existing is not None:
        if existing.kind is not ModelKind.policy or existing.status is ModelStatus.archived:
            raise Conflict(f"{VERSION_NAME} exists but is {existing.status.value}; promote a policy by hand instead")
        return existing, False
    final = store.version_dir(settings, ModelKind.policy.value, VERSION_NAME)
    installed = False
    # End the read transaction before the conversion (tens of seconds on a busy machine): on SQLite every
    # transaction holds the write lock (BEGIN IMMEDIATE), which would time out the worker and every login.
    db.commit()
    if not (final / "config.json").is_file():  # not left complete by an earlier, crashed run
        say(f"installing {source or DEFAULT_BASE_MODEL} into {final} (once; this takes a while)")
        with store.staged_folder(settings, final) as staging:
            write_checkpoint(source, staging, system=settings.bootstrap_system_prompt)
            write_model_card(staging, {"kind": "base", "backbone": source or DEFAULT_BASE_MODEL}, name=VERSION_NAME)
        installed = True
    config = {"backend": "transformers", "path": str(final.resolve()), "batch_size": IN_PROCESS_BATCH}
    version = service.register(
        db, name=VERSION_NAME, kind=ModelKind.policy, path=str(final.resolve()),
        base_model=source or DEFAULT_BASE_MODEL, config=config, job_id=job_id, metrics={},
    )  # fmt: skip
    db.commit()
    return version, installed


def write_checkpoint(source: str, out: Path, *, system: str = "") -> None:
    """Save the policy and its tokenizer into ``out``: the SmolLM2 GGUF when ``source`` is empty,
    else the Hugging Face id or local folder it names; ``system`` (when given) becomes the chat template's
    default system message (:mod:`app.versions.chat_template`)."""
    if source:
        tokenizer, model = _load_pretrained(source)
    else:
        from app.training.core.convert import load_gguf_model, load_gguf_tokenizer, plain_copy
        from app.training.core.default_models import smollm2_gguf_path

        gguf = smollm2_gguf_path()
        tokenizer, model = load_gguf_tokenizer(gguf), plain_copy(load_gguf_model(gguf))
    if not getattr(tokenizer, "chat_template", None):
        raise Invalid("model", f"{source or DEFAULT_BASE_MODEL} has no chat template; choose an instruct or chat model")
    tokenizer.chat_template = with_default_system(tokenizer.chat_template, system)
    model.save_pretrained(str(out))
    tokenizer.save_pretrained(str(out))


def _load_pretrained(source: str):  # noqa: ANN202 - (tokenizer, model)
    from transformers import AutoModelForCausalLM, AutoTokenizer

    try:
        tokenizer = AutoTokenizer.from_pretrained(source)
        model = AutoModelForCausalLM.from_pretrained(source, dtype="auto")
    except (OSError, ValueError) as exc:
        raise Invalid(
            "model", f"cannot load {source!r} as a causal LM (an id needs the hub or its cache): {exc}"
        ) from None
    return tokenizer, model


def queue_first_bootstrap(db: Session, settings: Settings) -> Job | None:
    """On ``serve``: queue the bootstrap job when no policy is registered and none is on its way. Commits."""
    if not settings.bootstrap_on_serve:
        return None
    if db.scalar(select(ModelVersion.id).where(ModelVersion.kind == ModelKind.policy).limit(1)) is not None:
        return None
    waiting = (
        select(Job.id).where(Job.kind == BOOTSTRAP, Job.status.in_((JobStatus.queued, JobStatus.running))).limit(1)
    )
    if db.scalar(waiting) is not None:
        return None
    job = jobs.enqueue(db, kind=BOOTSTRAP, params={"model": settings.bootstrap_model}, max_attempts=2)
    db.commit()
    return job
