"""Job kinds: a name, one pydantic model for its parameters, and the handler that runs it.

Handler modules register their kinds with ``@register(...)`` when imported; a kind also says who may queue
it (``audience``: researchers by default; exports, imports and the bootstrap are admins' alone), which
``service.enqueue`` enforces for every entry point (API, dashboard forms, admin pages), and the worker lane
it runs in (``app.lanes``: generation, training or short; training when unsaid). The worker's child
process imports the handler's module by name before it runs a job, so a kind must be defined in
an importable module (not ``__main__``). Built-in kinds are listed in ``BUILTIN_JOB_MODULES``;
deployments and tests add more through ``RLHF_JOB_MODULES`` (comma-separated module names).
"""

from __future__ import annotations

import importlib
import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ValidationError

from app.auth.models import Role
from app.errors import Invalid
from app.lanes import Lane
from app.text import first_unstorable

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

    from app.config import Settings
    from app.jobs.context import JobContext

# Modules that define the kinds every deployment has.
BUILTIN_JOB_MODULES: tuple[str, ...] = (
    "app.pool.jobs",
    "app.annotation.gold",  # no kind: the periodic task that keeps gold pairs ready
    "app.versions.jobs",
    "app.export.jobs",
    "app.importing.jobs",
    "app.finetune.reward.job",
    "app.finetune.reward.agreement",
    "app.finetune.reward.ranking",
    "app.finetune.classifier.job",
    "app.finetune.ppo.job",
    "app.finetune.sft.job",
    "app.instruct.self_instruct_job",
    "app.finetune.dpo.job",
    "app.finetune.rloo.job",
)
JOB_MODULES_ENV = "RLHF_JOB_MODULES"
# The key under which ``validate_params`` hands a ``QueueContext`` to the parameter models' validators.
QUEUE_CONTEXT = "queue"

Handler = Callable[["JobContext"], dict[str, Any]]


@dataclass(frozen=True)
class JobKind:
    """One registered kind of job."""

    name: str
    params_model: type[BaseModel]
    handler: Handler
    offered_in_ui: bool = True  # False for kinds only programs or tests start
    audience: Role = Role.researcher  # the least role that may queue it
    lane: Lane = Lane.training  # which of a worker's job slots may run it

    @property
    def module(self) -> str:
        """The module a child process imports to find this kind again."""
        return self.handler.__module__

    def allows(self, role: Role) -> bool:
        """Whether a user with ``role`` may queue (and be offered) this kind."""
        return role.rank >= self.audience.rank


@dataclass(frozen=True)
class QueueContext:
    """What a parameter's validator may consult when a person queues a job (``validate_params``'s
    ``queue``): the database and the settings, e.g. to tell an allowed model location from any other path.

    Absent when the worker re-reads stored parameters or the app queues a job of its own accord, so such
    checks run once, when the job is asked for, and a job queued then does not fail later for them."""

    db: Session
    settings: Settings


_KINDS: dict[str, JobKind] = {}
_loaded: set[str] = set()  # modules imported by load_job_modules
_state = {"environment_read": False}


def register(
    name: str,
    params: type[BaseModel],
    *,
    offered_in_ui: bool = True,
    audience: Role = Role.researcher,
    lane: Lane = Lane.training,
) -> Callable[[Handler], Handler]:
    """Decorator registering ``handler`` as the job kind ``name`` with parameter model ``params``, which
    users of ``audience``'s role and above may queue and workers run in their ``lane`` slots."""
    if not name or len(name) > 50:
        raise ValueError("a job kind name must be 1-50 characters (the jobs.kind column)")

    def decorate(handler: Handler) -> Handler:
        kind = JobKind(
            name=name, params_model=params, handler=handler, offered_in_ui=offered_in_ui, audience=audience, lane=lane
        )
        existing = _KINDS.get(name)
        if existing is not None and (existing.module, existing.handler.__qualname__) != (
            kind.module,
            handler.__qualname__,
        ):
            raise ValueError(f"job kind {name!r} is already registered by {existing.module}")
        _KINDS[name] = kind
        return handler

    return decorate


def load_job_modules(extra: Iterable[str] = ()) -> tuple[str, ...]:
    """Import the built-in handler modules, those named in ``RLHF_JOB_MODULES`` and ``extra``.

    Called by the worker at start and lazily by the first kind lookup, never at import time, so
    the environment is read when the process runs rather than when this module is imported."""
    from_env = [m.strip() for m in os.environ.get(JOB_MODULES_ENV, "").split(",") if m.strip()]
    _state["environment_read"] = True
    modules = tuple(dict.fromkeys([*BUILTIN_JOB_MODULES, *from_env, *extra]))
    for module in modules:
        if module not in _loaded:
            importlib.import_module(module)
            _loaded.add(module)
    return modules


def _ensure_loaded() -> None:
    if not _state["environment_read"]:
        load_job_modules()


def get_kind(name: str) -> JobKind:
    """The registered kind ``name``; ``Invalid('kind')`` when there is none."""
    _ensure_loaded()
    kind = _KINDS.get(name)
    if kind is None:
        known = ", ".join(sorted(_KINDS)) or "none registered"
        raise Invalid("kind", f"unknown job kind {name[:60]!r}; known kinds: {known}")
    return kind


def kinds(*, offered_in_ui: bool | None = None, role: Role | None = None) -> list[JobKind]:
    """All registered kinds, by name; optionally only those the UI offers, or those ``role`` may queue."""
    _ensure_loaded()
    return [
        k
        for _, k in sorted(_KINDS.items())
        if (offered_in_ui is None or k.offered_in_ui == offered_in_ui) and (role is None or k.allows(role))
    ]


def names(lanes: Iterable[Lane] | None = None) -> list[str]:
    """Names of the kinds this process can run (in ``lanes``, when given): what a worker's slot claims."""
    wanted = None if lanes is None else set(lanes)
    return [k.name for k in kinds() if wanted is None or k.lane in wanted]


def validate_params(kind: str, params: dict[str, Any] | None, *, queue: QueueContext | None = None) -> dict[str, Any]:
    """Validate ``params`` for ``kind`` and return them as stored (JSON, defaults filled in).

    ``queue`` is given when a person asks for the job: validators that need the database or the settings
    (allowed model locations) read it from the validation context. Raises ``Invalid`` naming the first
    offending field as ``params.<field>``, so the API's 422 points at the exact input to fix."""
    spec = get_kind(kind)
    try:
        model = spec.params_model.model_validate(params or {}, context={QUEUE_CONTEXT: queue} if queue else None)
    except ValidationError as exc:
        error = exc.errors()[0]
        where = ".".join(str(part) for part in error.get("loc", ()))
        message = str(error.get("msg", "invalid")).removeprefix("Value error, ")
        raise Invalid(f"params.{where}" if where else "params", message) from None
    stored = model.model_dump(mode="json")
    bad = first_unstorable(stored)
    if bad is not None:  # e.g. a NUL in a free-text parameter: PostgreSQL's JSONB would refuse the row
        raise Invalid(f"params.{bad[0]}", bad[1])
    return stored
