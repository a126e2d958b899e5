"""Launch forms generated from a job kind's parameter model (its pydantic JSON schema).

A new job kind gets a form without any template work: each property becomes an input of the
right type with its default, bounds and description. The submitted strings are converted back
by the same field descriptions, then the kind's pydantic model validates them (the one source
of truth): a bad value comes back as ``Invalid('params.<name>')`` and the form shows it beside
that input, with what the researcher typed kept.

A trainer has 25-40 settings and a researcher decides a handful: what to train from and on, how long,
its main knob. Those (:data:`ESSENTIAL`, and anything required) come first; the rest, whose defaults
were chosen by measurement, sit in a collapsed "Advanced" section. Labels are words, not field names.

Nobody should type JSON or look up an id: a nested model (the data filters) becomes one input per field,
named ``filters.<field>``; a field whose values are ids of things in the database becomes a pick list once
the page attaches its :class:`Option` s (:func:`with_choices`, fed by ``launch_data``), a list of ids a set
of checkboxes. :data:`PRESETS` fill the size settings in one click.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from pydantic import BaseModel
from pydantic_core import to_jsonable_python

from app.errors import Invalid

PREFIX = "param."  # form names are prefixed, so a parameter can never collide with csrf_token
# The settings shown up front for every kind: the data and models it starts from, its size, its main knob.
ESSENTIAL = frozenset(
    {
        "name", "backbone", "policy_version_id", "reward_version_id", "classifier_version_id", "backbone_version_id",
        "base_version_id", "seed_set_id", "prompt_set_ids", "filters", "heads", "use_demonstrations",
        "refusal_prompt_set_id", "pairs", "epochs", "updates", "rounds", "target", "learning_rate", "beta",
        "kl_coef", "loss_type", "set_name",
    }
)  # fmt: skip
# Words for the parts of field names that are abbreviations, for labels a person reads.
WORDS = {
    "kl": "KL", "coef": "coefficient", "lora": "LoRA", "ppo": "PPO", "dpo": "DPO", "ipo": "IPO", "eos": "EOS",
    "cpu": "the CPU", "num": "number of", "id": "", "ids": "", "vf": "value-function", "lam": "λ (GAE)",
    "gamma": "γ (discount)", "sft": "SFT", "jsonl": "JSONL", "rm": "reward model", "r": "rank", "max": "maximum",
    "min": "minimum", "gae": "GAE",
}  # fmt: skip


def label_for(name: str) -> str:
    """``kl_coef`` → "KL coefficient", ``use_cpu`` → "Use the CPU", ``prompt_set_ids`` → "Prompt sets"."""
    words = [WORDS.get(part, part) for part in name.split("_")]
    text = " ".join(w for w in words if w) + ("s" if name.endswith("_ids") else "")
    return text[:1].upper() + text[1:] if text[:1].isascii() else text


@dataclass(frozen=True)
class Option:
    """One entry of a pick list: the id submitted and what the researcher reads (a name, its counts)."""

    value: str
    label: str


@dataclass(frozen=True)
class ParamField:
    """One input of a launch form."""

    name: str
    label: str
    kind: str  # integer | number | boolean | select | text | datetime | json | pick (ids from a list)
    required: bool
    value: str  # the default as the input shows it ("" when there is none)
    description: str = ""
    minimum: float | None = None
    maximum: float | None = None
    options: list[str] = field(default_factory=list)
    nullable: bool = False
    essential: bool = True  # shown up front; False: in the collapsed "Advanced" section
    choices: tuple[Option, ...] = ()  # a pick list's entries
    multiple: bool = False  # a list of ids (checkboxes) rather than one id

    @property
    def input_name(self) -> str:
        return PREFIX + self.name

    @property
    def step(self) -> str:
        return "1" if self.kind == "integer" else "any"

    def box_name(self, value: str) -> str:
        """A checkbox's own name: a submitted form is read as a dict, so a list's entries cannot share one."""
        return f"{self.input_name}:{value}"


def _resolve(schema: dict[str, Any], root: dict[str, Any]) -> dict[str, Any]:
    """Follow a local ``$ref`` (enums and nested models live in ``$defs``), keeping sibling keys."""
    if "allOf" in schema and len(schema["allOf"]) == 1:
        schema = {**schema["allOf"][0], **{k: v for k, v in schema.items() if k != "allOf"}}
    ref = schema.get("$ref")
    if isinstance(ref, str) and ref.startswith("#/$defs/"):
        target = root.get("$defs", {}).get(ref.removeprefix("#/$defs/"), {})
        schema = {**target, **{k: v for k, v in schema.items() if k != "$ref"}}
    return schema


def _non_null(schema: dict[str, Any], root: dict[str, Any]) -> tuple[dict[str, Any], bool]:
    """The schema without its ``null`` alternative, and whether null was allowed."""
    options = schema.get("anyOf")
    if not options:
        return _resolve(schema, root), False
    rest = [_resolve(o, root) for o in options if o.get("type") != "null"]
    nullable = len(rest) < len(options)
    base = rest[0] if len(rest) == 1 else {"type": "json"}
    return {**base, **{k: v for k, v in schema.items() if k != "anyOf"}}, nullable


def _kind(schema: dict[str, Any]) -> str:
    if "enum" in schema or "const" in schema:
        return "select"
    if schema.get("format") == "date-time":
        return "datetime"
    return {"integer": "integer", "number": "number", "boolean": "boolean", "string": "text"}.get(
        schema.get("type", ""), "json"
    )


def _shown(kind: str, default: Any) -> str:
    if default is None:
        return ""
    if kind == "json":
        return json.dumps(default)
    if kind == "boolean":
        return "true" if default else "false"
    return str(default)


def _bound(schema: dict[str, Any], inclusive: str, exclusive: str) -> float | None:
    value = schema.get(inclusive, schema.get(exclusive))
    return float(value) if isinstance(value, int | float) else None


def model_fields(model: type[BaseModel]) -> list[ParamField]:
    """The inputs for a parameter model; defaults made by a factory (absent from the schema) included."""
    defaults = {}
    for name, info in model.model_fields.items():
        if not info.is_required():
            defaults[info.alias or name] = to_jsonable_python(info.get_default(call_default_factory=True))
    return fields_for(model.model_json_schema(), defaults)


def fields_for(schema: dict[str, Any], defaults: dict[str, Any] | None = None) -> list[ParamField]:
    """The form's inputs, in the schema's property order; ``defaults`` override the schema's."""
    return _fields(schema, schema, defaults or {}, prefix="")


def _fields(schema: dict[str, Any], root: dict[str, Any], defaults: dict[str, Any], prefix: str) -> list[ParamField]:
    """The inputs of one (possibly nested) model; a nested model's fields are named ``<field>.<its field>``."""
    required = set(schema.get("required", []))
    fields = []
    for name, raw in schema.get("properties", {}).items():
        prop, nullable = _non_null(raw, root)
        if prop.get("type") == "object" and "properties" in prop:
            inner = defaults.get(name) if isinstance(defaults.get(name), dict) else {}
            fields += _fields(prop, root, inner, prefix=f"{prefix}{name}.")
            continue
        kind = _kind(prop)
        options = [str(v) for v in prop.get("enum", [prop["const"]] if "const" in prop else [])]
        fields.append(
            ParamField(
                name=prefix + name,
                label=label_for(name),
                kind=kind,
                required=name in required and not prefix,
                value=_shown(kind, defaults.get(name, raw.get("default", prop.get("default")))),
                description=str(raw.get("description") or prop.get("description") or ""),
                minimum=_bound(prop, "minimum", "exclusiveMinimum"),
                maximum=_bound(prop, "maximum", "exclusiveMaximum"),
                options=options,
                nullable=nullable,
                essential=name in required or name in ESSENTIAL or prefix.removesuffix(".") in ESSENTIAL,
                multiple=prop.get("type") == "array",
            )
        )
    return fields


def with_choices(fields: list[ParamField], choices: Mapping[str, list[Option]]) -> list[ParamField]:
    """The fields with a pick list wherever ``choices`` has one for the field's name (ids from the database)."""
    return [
        replace(f, kind="pick", choices=tuple(choices[f.name]), value="" if f.value in ("", "[]") else f.value)
        if f.name in choices
        else f
        for f in fields
    ]


# Size settings a preset scales; a kind has some of them. (name, value from the default) per preset.
_SIZES = ("epochs", "updates", "rounds")
PRESETS: dict[str, tuple[str, str, Callable[[int], int]]] = {
    "quick": ("Quick check", "a short run that proves the data and settings end to end", lambda d: max(1, d // 4)),
    "longer": ("Longer run", "twice the training of the measured defaults", lambda d: 2 * d),
}


def preset_values(fields: list[ParamField], preset: str) -> dict[str, str]:
    """The inputs a preset fills in: each size setting the kind has, scaled from its default, within bounds."""
    if preset not in PRESETS:
        return {}
    scale = PRESETS[preset][2]
    values = {}
    for f in fields:
        if f.name in _SIZES and f.value.isdigit():
            value = scale(int(f.value))
            if f.maximum is not None:
                value = min(value, int(f.maximum))
            values[f.name] = str(value)
    return values


def _convert(spec: ParamField, text: str) -> Any:
    """A typed value from the input's text; the pydantic model checks bounds and choices after."""
    if spec.kind == "integer":
        try:
            return int(text)
        except ValueError:
            raise Invalid(f"params.{spec.name}", "must be a whole number") from None
    if spec.kind == "number":
        try:
            return float(text)
        except ValueError:
            raise Invalid(f"params.{spec.name}", "must be a number") from None
    if spec.kind == "pick":
        try:
            return int(text)
        except ValueError:
            raise Invalid(f"params.{spec.name}", "pick one of the listed entries") from None
    if spec.kind == "datetime":  # a datetime-local input has no zone: the form says its times are UTC
        return text if re.search(r"(Z|[+-]\d\d:?\d\d)$", text) else text + "+00:00"
    if spec.kind == "json":
        try:
            return json.loads(text)
        except json.JSONDecodeError as exc:
            raise Invalid(f"params.{spec.name}", f"must be JSON ({exc.msg})") from None
    return text


def _picked(spec: ParamField, form: Mapping[str, Any]) -> list[int]:
    return [int(o.value) for o in spec.choices if form.get(spec.box_name(o.value)) in ("true", "on", "1")]


def parse_form(fields: list[ParamField], form: Mapping[str, Any]) -> dict[str, Any]:
    """Parameters from a submitted form: an empty input means "use the default" (or null); the inputs of a
    nested model (``filters.since``) go back into its dict."""
    params: dict[str, Any] = {}
    for spec in fields:
        *outer, name = spec.name.split(".")
        into = params
        for part in outer:
            into = into.setdefault(part, {})
        raw = form.get(spec.input_name)
        if spec.kind == "boolean":
            into[name] = raw in ("true", "on", "1")  # an unticked box is not sent at all
            continue
        if spec.kind == "pick" and spec.multiple:
            picked = _picked(spec, form)
            if picked:
                into[name] = picked
            continue
        text = raw.strip() if isinstance(raw, str) else ""
        if text:
            into[name] = _convert(spec, text)
        elif spec.nullable and not spec.required and spec.value == "":
            into[name] = None
    return params


def submitted_values(fields: list[ParamField], form: Mapping[str, Any]) -> dict[str, str]:
    """What the researcher typed, to show again beside an error (a list's picks joined by commas)."""
    values = {}
    for spec in fields:
        raw = form.get(spec.input_name)
        if spec.kind == "boolean":
            values[spec.name] = "true" if raw in ("true", "on", "1") else "false"
        elif spec.kind == "pick" and spec.multiple:
            values[spec.name] = ",".join(str(i) for i in _picked(spec, form))
        else:
            values[spec.name] = raw if isinstance(raw, str) else ""
    return values
