"""How a job's parameter model takes a training field from the trainer's config dataclass.

A job's parameters are a pydantic model, validated when the job is queued (API, dashboard form, CLI),
long before the trainer's config is built; the trainer's config dataclass is where each setting's
default and help text are written (``help_field``). :func:`config_field` reads both from there, so
the API schema, the launch form and the trainer default and describe a field alike, and a job default
that differs from the trainer's is written as an argument, with a comment saying why, rather than by
copying a number that then drifts. :func:`config_values` goes the other way: the job's values of the
fields the config has. :func:`version_name_field` is the ``name`` every training job but ``sft`` takes.
Kept free of torch: the web app imports it to validate a job before queueing it.

    class MyParams(BaseModel):
        epochs: Int = config_field(MyConfig, "epochs", ge=1, le=100)  # MyConfig's default and help
        updates: Int = config_field(MyConfig, "updates", 20, ge=1, le=1000)  # the job's own default: …why…

The numbers' types are :mod:`app.bounds`' (strict, finite, bounded to what both databases store).
"""

from __future__ import annotations

from dataclasses import MISSING, fields
from dataclasses import Field as DataclassField
from typing import Any

from pydantic import BaseModel, Field

VERSION_NAME = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$"  # a job's name for the version it registers


def version_name_field(what: str) -> Any:
    """The optional ``name`` of the version a job registers (``what``, e.g. "new policy version")."""
    return Field(None, pattern=VERSION_NAME, description=f"Name of the {what}; default: <kind>-job<job id>.")


def _config_field(config_cls: type, name: str) -> DataclassField[Any]:
    for spec in fields(config_cls):
        if spec.name == name:
            return spec
    raise KeyError(f"{config_cls.__name__} has no field {name!r}")


def config_field(config_cls: type, name: str, default: Any = MISSING, **bounds: Any) -> Any:
    """A pydantic ``Field`` for ``config_cls.<name>``: the config's default (or ``default``, the job's own),
    its ``metadata["help"]`` as the description, and ``bounds`` (``ge``, ``le``, ``max_length``, …).

    Returns a pydantic ``FieldInfo``, typed ``Any`` so that it can be the default of an annotated field.
    Raises ``ValueError`` when ``default`` equals the config's own: an override that no longer differs
    should be dropped, so the config stays the one place the value is written."""
    spec = _config_field(config_cls, name)
    help_text = spec.metadata.get("help")
    if not help_text:
        raise ValueError(f"{config_cls.__name__}.{name} has no help text; declare it with help_field")
    if default is not MISSING:
        if default == spec.default:
            raise ValueError(f"{config_cls.__name__}.{name}: {default!r} is the config's own default; leave it out")
        return Field(default, description=help_text, **bounds)
    if spec.default is not MISSING:
        return Field(spec.default, description=help_text, **bounds)
    if spec.default_factory is not MISSING:
        return Field(default_factory=spec.default_factory, description=help_text, **bounds)
    raise ValueError(f"{config_cls.__name__}.{name} has no default; pass the job's")


def config_values(params: BaseModel, config_cls: type) -> dict[str, Any]:
    """The job's values of the fields ``config_cls`` has (the rest — name, filters, … — are the job's own)."""
    names = {spec.name for spec in fields(config_cls)}
    return {key: value for key, value in params.model_dump().items() if key in names}
