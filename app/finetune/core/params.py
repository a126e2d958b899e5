"""How a job's parameter model takes its training fields from the trainer's config dataclass.

A job's parameters are a pydantic model, validated when the job is queued (API, dashboard form, CLI),
long before the trainer's config is built; the trainer's config dataclass is where each setting's
default and help text are written (``help_field``). :func:`config_field` reads both from there, so
the API schema, the launch form and the trainer default and describe a field alike, and a job default
that differs from the trainer's is written as an argument, with a comment saying why, rather than by
copying a number that then drifts. A setting's bounds as a job parameter are written once, by name, in
:data:`SETTING_BOUNDS`, whichever jobs take it; :func:`config_params` builds the pydantic fields for a
list of a config's settings from those three sources (type from the config's annotation), so a job
names the settings it exposes instead of declaring each again. :func:`config_values` goes the other way:
the job's values of the fields the config has. :func:`version_name_field` is the ``name`` every training
job but ``sft`` takes. :class:`ProcessesParams` is how many processes every training job trains on.
Kept free of torch: the web app imports it to validate a job before queueing it.

    class MyJob(BaseModel):  # the job's own fields: what to train on, the version's name, …
        name: str | None = version_name_field("registered version")

    _MySettings = config_params(MyConfig, ("epochs", "learning_rate"), base=MyJob)

    class MyParams(_MySettings):  # name, then MyConfig's epochs and learning_rate, bounded by SETTING_BOUNDS
        def trainer_config(self) -> MyConfig: ...

    class OtherParams(BaseModel):  # one field at a time, where a job types a setting its own way
        updates: Int = config_field(MyConfig, "updates", 20)  # the job's own default: …why…

The numbers' types are :mod:`app.bounds`' (strict, finite, bounded to what both databases store).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import MISSING, fields
from dataclasses import Field as DataclassField
from itertools import chain
from pathlib import Path
from typing import Any, Literal, TypeVar, get_origin, get_type_hints

from pydantic import BaseModel, Field, create_model, field_validator

from app.bounds import Bool, Float, Int, Seed

VERSION_NAME = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$"  # a job's name for the version it registers

ModelT = TypeVar("ModelT", bound=BaseModel)

# Each trainer setting's bounds as a job parameter, by field name: a setting several jobs take (the LoRA
# rank, the learning rate, …) is bounded alike in all of them. A job whose trainer sets other limits passes
# its own to config_params (``bounds=``); a setting whose limits differ in every job that takes it has no
# entry here. A bool or a choice (Literal) needs none; a number or a string without bounds is refused.
SETTING_BOUNDS: dict[str, dict[str, Any]] = {
    # the model and its adapters
    "backbone": {"min_length": 1, "max_length": 500},
    "lora_r": {"ge": 1, "le": 1024},
    "lora_alpha": {"ge": 1, "le": 4096},
    "lora_dropout": {"ge": 0, "lt": 1},
    "lora_target_modules": {"max_length": 500},
    "trainable_layers": {"ge": 0, "le": 1000},
    # data and sampling
    "batch_size": {"ge": 1, "le": 4096},
    "min_steps": {"ge": 0, "le": 1_000_000},
    "eval_batch_size": {"ge": 1, "le": 4096},
    "max_prompt_length": {"ge": 1, "le": 32768},
    "max_response_length": {"ge": 1, "le": 32768},
    "response_length": {"ge": 1, "le": 8192},
    "validation_fraction": {"ge": 0, "lt": 1},
    "temperature": {"gt": 0, "le": 10},
    "prompts_per_round": {"ge": 1, "le": 4096},
    "rounds": {"ge": 1, "le": 10_000},
    # the reward and the losses
    "missing_eos_penalty": {"ge": 0, "le": 100},
    "safety_weight": {"ge": 0, "le": 100},
    "safety_head": {"min_length": 1, "max_length": 100},
    "kl_coef": {"ge": 0, "le": 100},
    "target_kl": {"ge": 0, "le": 1000},
    "kl_horizon": {"ge": 1, "le": 10_000_000},
    "beta": {"gt": 0, "le": 100},
    "margin": {"ge": 0, "le": 20},
    "strength_margin": {"ge": 0, "le": 20},
    "center_rewards_coefficient": {"ge": 0, "le": 10},
    "threshold": {"gt": 0, "lt": 1},
    "value_clip_range": {"gt": 0, "le": 1000},
    "vf_coef": {"ge": 0, "le": 100},
    "gamma": {"ge": 0, "le": 1},
    "lam": {"ge": 0, "le": 1},
    # optimisation
    "epochs": {"ge": 1, "le": 100},
    "updates": {"ge": 1, "le": 1_000_000},
    "ppo_epochs": {"ge": 1, "le": 100},
    "num_minibatches": {"ge": 1, "le": 4096},
    "micro_batch_size": {"ge": 0, "le": 4096},
    "learning_rate": {"gt": 0, "le": 1},
    "warmup_ratio": {"ge": 0, "lt": 1},
    "weight_decay": {"ge": 0, "le": 1},
    "max_grad_norm": {"ge": 0, "le": 1000},
    "clip_range": {"gt": 0, "le": 10},
    # runtime
    "log_every": {"ge": 1, "le": 1_000_000},
    "checkpoint_every": {"ge": 0, "le": 1_000_000},
    "num_threads": {"ge": 0, "le": 256},
}

# A setting's job-parameter type from its config annotation: app.bounds' strict types for the numbers and
# booleans; a Literal (a choice) stays itself. ``seed`` is typed by name: Seed carries its own bounds.
_PARAM_TYPES: dict[Any, Any] = {int: Int, float: Float, bool: Bool, str: str}
_TYPED_BY_NAME: dict[str, Any] = {"seed": Seed}
_NEEDS_BOUNDS = (Int, Float, str)


class ProcessesParams(BaseModel):
    """How many processes a training job trains on, written once for every kind (the base of each kind's
    own fields). Above one, or with an accelerate config, the job process keeps the database work and runs
    the trainer under ``torchrun`` / ``accelerate launch`` (``app.finetune.core.processes``); the result is
    still one registered version."""

    processes: Int = Field(
        1,
        ge=1,
        le=64,
        description="Training processes, one per GPU (or CPU share): above 1 the trainer runs under torchrun on "
        "this worker, each process on its share of every batch (DDP); with accelerate_config, it overrides "
        "the file's num_processes.",
    )
    accelerate_config: str | None = Field(
        None,
        min_length=1,
        max_length=1000,
        description="Path of an accelerate config file on the worker (from `accelerate config`): the trainer "
        "runs under `accelerate launch --config_file` with it: DeepSpeed, FSDP, several machines.",
    )

    @field_validator("accelerate_config")
    @classmethod
    def _config_exists(cls, value: str | None) -> str | None:
        if value is not None and not Path(value).is_file():
            raise ValueError(f"no accelerate config file at {value}")
        return value

    @property
    def launched(self) -> bool:
        """Whether the trainer runs on processes of its own rather than in the job process."""
        return self.processes > 1 or self.accelerate_config is not None


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
    its ``metadata["help"]`` as the description, and ``bounds`` (``ge``, ``le``, ``max_length``, …), by
    default the setting's entry in :data:`SETTING_BOUNDS`.

    Returns a pydantic ``FieldInfo``, typed ``Any`` so that it can be the default of an annotated field.
    Raises ``ValueError`` when ``default`` equals the config's own: an override that no longer differs
    should be dropped, so the config stays the one place the value is written."""
    spec = _config_field(config_cls, name)
    help_text = spec.metadata.get("help")
    if not help_text:
        raise ValueError(f"{config_cls.__name__}.{name} has no help text; declare it with help_field")
    bounds = bounds or SETTING_BOUNDS.get(name, {})
    if default is not MISSING:
        if default == spec.default:
            raise ValueError(f"{config_cls.__name__}.{name}: {default!r} is the config's own default; leave it out")
        return Field(default, description=help_text, **bounds)
    if spec.default is not MISSING:
        return Field(spec.default, description=help_text, **bounds)
    if spec.default_factory is not MISSING:
        return Field(default_factory=spec.default_factory, description=help_text, **bounds)
    raise ValueError(f"{config_cls.__name__}.{name} has no default; pass the job's")


def _param_type(config_cls: type, name: str, annotation: Any) -> Any:
    """The job parameter's type for a config field annotated ``annotation``."""
    if name in _TYPED_BY_NAME:
        return _TYPED_BY_NAME[name]
    if get_origin(annotation) is Literal:
        return annotation
    if annotation in _PARAM_TYPES:
        return _PARAM_TYPES[annotation]
    raise TypeError(
        f"{config_cls.__name__}.{name}: no job-parameter type for {annotation!r}; declare it with config_field"
    )


def config_params(
    config_cls: type,
    *groups: Iterable[str],
    base: type[ModelT],
    defaults: Mapping[str, Any] | None = None,
    bounds: Mapping[str, Mapping[str, Any]] | None = None,
) -> type[ModelT]:
    """``base`` with a field for each of ``config_cls``' settings named in ``groups``, in that order.

    A group is a line of related names (the adapters, the sampling, the runtime, …); the launch form
    shows the fields in the order given, after ``base``'s own. Each field is typed from the config's
    annotation (``int`` → ``Int``, …, a Literal as is), bounded by :data:`SETTING_BOUNDS` or the job's
    ``bounds``, and described and defaulted by :func:`config_field` (``defaults`` are the job's own,
    each a deliberate difference from the trainer's). A name ``base`` has already keeps its place and
    takes this config's default, help and bounds: how a job's trainer redescribes a shared setting.

    Raises ``TypeError`` for a setting with no job-parameter type (declare it with :func:`config_field`),
    and ``ValueError`` for a number or string with no bounds or a default for a setting not listed."""
    defaults = defaults or {}
    bounds = bounds or {}
    names = list(chain.from_iterable(groups))
    strays = (set(defaults) | set(bounds)) - set(names)
    if strays:
        raise ValueError(f"defaults or bounds for settings not listed: {sorted(strays)}")
    hints = get_type_hints(config_cls)
    definitions: dict[str, Any] = {}
    for name in names:
        if name not in hints:
            raise KeyError(f"{config_cls.__name__} has no field {name!r}")
        param_type = _param_type(config_cls, name, hints[name])
        field_bounds = bounds.get(name, SETTING_BOUNDS.get(name, {}))
        if param_type in _NEEDS_BOUNDS and not field_bounds:
            raise ValueError(f"{config_cls.__name__}.{name}: no bounds; add them to SETTING_BOUNDS or pass the job's")
        definitions[name] = (param_type, config_field(config_cls, name, defaults.get(name, MISSING), **field_bounds))
    return create_model(  # type: ignore[call-overload]  # the fields are keyword arguments
        f"{base.__name__}With{config_cls.__name__}", __base__=base, __module__=base.__module__, **definitions
    )


def config_values(params: BaseModel, config_cls: type) -> dict[str, Any]:
    """The job's values of the fields ``config_cls`` has (the rest — name, filters, … — are the job's own)."""
    names = {spec.name for spec in fields(config_cls)}
    return {key: value for key, value in params.model_dump().items() if key in names}
