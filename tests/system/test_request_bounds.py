"""Issue 18, finding 5: every integer and float a request carries is bounded to what both databases
store, a boolean is not a number, and Infinity and NaN are refused, on SQLite and PostgreSQL alike.

The first tests walk every request model there is (each JSON body the app's routes take, each job
kind's parameters, and the models nested in them) and try the values that used to get through on each
numeric field; the HTTP tests then show the 422s a client sees, naming the field, with nothing queued.
"""

from __future__ import annotations

import json
import math
import types
import typing
from collections.abc import Iterator
from typing import Annotated, Any

import pytest
from fastapi import params as fastapi_params
from pydantic import BaseModel, TypeAdapter, ValidationError
from pydantic.fields import FieldInfo
from sqlalchemy import func, select

from app.auth import service as auth_service
from app.auth.models import Role
from app.auth.policy import endpoints
from app.bounds import MAX_INT
from app.config import Settings
from app.jobs import registry
from app.jobs.models import Job
from app.main import create_app
from tests.factories import UserFactory

BAD = {
    "int": [True, False, MAX_INT + 1, -MAX_INT - 1, 2**63, 2**70, "1", 1.5],
    "float": [True, math.inf, -math.inf, math.nan, "1.0"],
    "bool": [1, 0, "true", "yes"],
}


def _base_models(annotation: Any) -> Iterator[type[BaseModel]]:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        yield annotation
    for arg in typing.get_args(annotation):
        yield from _base_models(arg)


def request_models() -> list[type[BaseModel]]:
    """Every model a request is validated by: JSON bodies of the app's routes, the app's job kinds'
    parameters, and every model nested in those."""
    app = create_app(Settings(data_dir="/nonexistent", secret_key="bounds-test-" + "k" * 20))
    roots: list[type[BaseModel]] = []
    for route in endpoints(app):
        body = route.original_route.body_field
        if body is not None and not isinstance(body.field_info, fastapi_params.Form | fastapi_params.File):
            roots.extend(_base_models(body.field_info.annotation))
    roots.extend(k.params_model for k in registry.kinds() if k.module.startswith("app."))
    seen: dict[type[BaseModel], None] = {}
    while roots:
        model = roots.pop()
        if model not in seen:
            seen[model] = None
            for field in model.model_fields.values():
                roots.extend(_base_models(field.annotation))
    return list(seen)


MODELS = request_models()


def _numeric(annotation: Any, *, in_list: bool = False) -> Iterator[tuple[str, bool]]:
    """("int" | "float" | "bool", whether inside a list) for each number the annotation holds."""
    origin = typing.get_origin(annotation)
    if annotation is bool:
        yield "bool", in_list
    elif annotation is int:
        yield "int", in_list
    elif annotation is float:
        yield "float", in_list
    elif origin is Annotated:
        yield from _numeric(typing.get_args(annotation)[0], in_list=in_list)
    elif origin in (typing.Union, types.UnionType):
        for arg in typing.get_args(annotation):
            yield from _numeric(arg, in_list=in_list)
    elif origin is list:
        yield from _numeric(typing.get_args(annotation)[0], in_list=True)


def numeric_fields() -> list[tuple[str, FieldInfo, str, bool]]:
    found = []
    for model in MODELS:
        for name, field in model.model_fields.items():
            for kind, in_list in set(_numeric(field.annotation)):
                found.append((f"{model.__module__}.{model.__qualname__}.{name}", field, kind, in_list))
    return found


FIELDS = numeric_fields()


def test_the_walk_finds_the_models_the_issue_names():
    names = {m.__qualname__ for m in MODELS}
    assert {"SFTParams", "GenerateParams", "SelfInstructParams", "RewardParams", "FiltersIn", "ExportParams"} <= names
    assert {"JobCreate", "JudgementIn", "ScoreRequest", "DecisionIn", "PromptSetCreate", "UserUpdate"} <= names
    assert len(FIELDS) > 150


@pytest.mark.parametrize(("where", "field", "kind", "in_list"), FIELDS, ids=[f[0] for f in FIELDS])
def test_every_number_refuses_what_no_database_stores_and_what_is_not_a_number(where, field, kind, in_list):
    annotation = Annotated[(field.annotation, *field.metadata)] if field.metadata else field.annotation
    adapter = TypeAdapter(annotation)
    accepted = []
    for value in BAD[kind]:
        try:
            adapter.validate_python([value] if in_list else value)
        except ValidationError:
            continue
        accepted.append(value)
    assert not accepted, f"{where} accepts {accepted}"


def test_every_integer_states_both_bounds_in_the_schema():
    """The bounds are in the API schema too: what a client reads is what the server enforces."""
    unbounded = []

    def walk(schema: dict[str, Any], where: str) -> None:
        if schema.get("type") == "integer":
            low = schema.get("minimum", schema.get("exclusiveMinimum"))
            high = schema.get("maximum", schema.get("exclusiveMaximum"))
            if low is None or high is None or low < -MAX_INT or high > MAX_INT:
                unbounded.append(where)
        for key, value in schema.items():
            if isinstance(value, dict):
                walk(value, f"{where}.{key}")
            elif isinstance(value, list):
                for i, item in enumerate(value):
                    if isinstance(item, dict):
                        walk(item, f"{where}.{key}[{i}]")

    for model in MODELS:
        walk(model.model_json_schema(), model.__qualname__)
    assert not unbounded


HUGE = 2**70


@pytest.mark.parametrize(
    ("kind", "params", "field"),
    [
        ("sft", {"seed": HUGE}, "params.seed"),
        ("sft", {"base_version_id": HUGE}, "params.base_version_id"),
        ("generate", {"seed": HUGE}, "params.seed"),
        ("generate", {"seed": 2**31}, "params.seed"),
        ("self_instruct", {"seed_set_id": 1, "seed": HUGE}, "params.seed"),
        ("self_instruct", {"seed_set_id": HUGE}, "params.seed_set_id"),
        ("reward", {"backbone_version_id": HUGE}, "params.backbone_version_id"),
        ("reward", {"backbone_version_id": 2**31}, "params.backbone_version_id"),
        ("reward", {"filters": {"annotator_ids": [1, HUGE]}}, "params.filters.annotator_ids.1"),
        ("reward", {"epochs": True}, "params.epochs"),
        ("reward", {"use_cpu": 1}, "params.use_cpu"),
        ("ppo", {"seed": HUGE}, "params.seed"),
        ("dpo", {"filters": {"prompt_set_ids": [HUGE]}}, "params.filters.prompt_set_ids.0"),
    ],
)
def test_an_unstorable_parameter_is_a_422_naming_it(client, db, kind, params, field):
    _, raw = auth_service.create_token(db, user=UserFactory(role=Role.researcher), name="t")
    response = client.post(
        "/api/v1/jobs", json={"kind": kind, "params": params}, headers={"Authorization": f"Bearer {raw}"}
    )
    assert response.status_code == 422, response.text
    assert response.json()["field"] == field
    assert db.scalar(select(func.count()).select_from(Job)) == 0


@pytest.mark.parametrize("literal", ["Infinity", "-Infinity", "NaN", "1e999"])
@pytest.mark.parametrize(
    ("kind", "name"), [("reward", "max_grad_norm"), ("ppo", "max_grad_norm"), ("generate", "top_p")]
)
def test_a_non_finite_float_is_a_422_on_both_backends(client, db, literal, kind, name):
    """Python's JSON parser reads these (1e999 as infinity); neither database would store them as sent."""
    _, raw = auth_service.create_token(db, user=UserFactory(role=Role.researcher), name="t")
    body = '{"kind": %s, "params": {"%s": %s}}' % (json.dumps(kind), name, literal)  # noqa: UP031 - JSON text
    headers = {"Authorization": f"Bearer {raw}", "Content-Type": "application/json"}
    response = client.post("/api/v1/jobs", content=body, headers=headers)
    assert response.status_code == 422, response.text
    assert response.json()["field"] == f"params.{name}" and "finite" in response.json()["detail"]
    assert db.scalar(select(func.count()).select_from(Job)) == 0


@pytest.mark.parametrize(
    ("url", "body", "field"),
    [
        ("/api/v1/annotation/judgements", {"assignment_id": HUGE, "choice": "A", "labels": {}}, "assignment_id"),
        ("/api/v1/annotation/skip", {"assignment_id": True}, "assignment_id"),
        ("/api/v1/reward/score", {"version_id": 2**31, "items": [{"prompt": "p", "response": "r"}]}, "version_id"),
        ("/api/v1/self-instruct/sets/1/decisions", {"decision": "approve", "prompt_ids": [HUGE]}, "prompt_ids.0"),
        ("/api/v1/prompt-sets", {"name": "s", "judgements_per_pair": True}, "judgements_per_pair"),
        ("/api/v1/jobs", {"kind": "generate", "max_attempts": True}, "max_attempts"),
    ],
)
def test_json_bodies_refuse_them_too(client, db, url, body, field):
    _, raw = auth_service.create_token(db, user=UserFactory(role=Role.admin), name="t")
    response = client.post(url, json=body, headers={"Authorization": f"Bearer {raw}"})
    assert response.status_code == 422, response.text
    assert field in [e["field"] for e in response.json()["errors"]]
