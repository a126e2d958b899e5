"""Job kinds: a name, one pydantic model for its parameters, and the handler that runs it.

Handler modules register their kinds with ``@register(...)`` when imported. The worker's child
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

from app.errors import Invalid
from app.text import first_unstorable

if TYPE_CHECKING:
    from app.jobs.context import JobContext

# Modules that define the kinds every deployment has.
BUILTIN_JOB_MODULES: tuple[str, ...] = (
    "app.pool.jobs",
    "app.versions.jobs",
    "app.export.jobs",
    "app.importing.jobs",
    "app.finetune.reward.job",
    "app.finetune.classifier.job",
    "app.finetune.ppo.job",
    "app.finetune.sft.job",
    "app.instruct.self_instruct_job",
    "app.finetune.dpo.job",
    "app.finetune.rloo.job",
)
JOB_MODULES_ENV = "RLHF_JOB_MODULES"

Handler = Callable[["JobContext"], dict[str, Any]]


@dataclass(frozen=True)
class JobKind:
    """One registered kind of job."""

    name: str
    params_model: type[BaseModel]
    handler: Handler
    offered_in_ui: bool = True  # False for kinds only programs or tests start

    @property
    def module(self) -> str:
        """The module a child process imports to find this kind again."""
        return self.handler.__module__


_KINDS: dict[str, JobKind] = {}
_loaded: set[str] = set()  # modules imported by load_job_modules
_state = {"environment_read": False}


def register(name: str, params: type[BaseModel], *, offered_in_ui: bool = True) -> Callable[[Handler], Handler]:
    """Decorator registering ``handler`` as the job kind ``name`` with parameter model ``params``."""
    if not name or len(name) > 50:
        raise ValueError("a job kind name must be 1-50 characters (the jobs.kind column)")

    def decorate(handler: Handler) -> Handler:
        kind = JobKind(name=name, params_model=params, handler=handler, offered_in_ui=offered_in_ui)
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


def kinds(*, offered_in_ui: bool | None = None) -> list[JobKind]:
    """All registered kinds (optionally only those the UI offers), by name."""
    _ensure_loaded()
    return [k for _, k in sorted(_KINDS.items()) if offered_in_ui is None or k.offered_in_ui == offered_in_ui]


def names() -> list[str]:
    """Names of the kinds this process can run: what a worker claims."""
    return [k.name for k in kinds()]


def validate_params(kind: str, params: dict[str, Any] | None) -> dict[str, Any]:
    """Validate ``params`` for ``kind`` and return them as stored (JSON, defaults filled in).

    Raises ``Invalid`` naming the first offending field as ``params.<field>``, so the API's 422
    points at the exact input to fix."""
    spec = get_kind(kind)
    try:
        model = spec.params_model.model_validate(params or {})
    except ValidationError as exc:
        error = exc.errors()[0]
        where = ".".join(str(part) for part in error.get("loc", ()))
        raise Invalid(f"params.{where}" if where else "params", error.get("msg", "invalid")) from None
    stored = model.model_dump(mode="json")
    bad = first_unstorable(stored)
    if bad is not None:  # e.g. a NUL in a free-text parameter: PostgreSQL's JSONB would refuse the row
        raise Invalid(f"params.{bad[0]}", bad[1])
    return stored
