"""Job kinds: registration, parameter validation naming the field, loading handler modules."""

from __future__ import annotations

import pytest
from pydantic import BaseModel

from app.errors import Invalid
from app.jobs import registry


def test_params_are_validated_and_stored_with_defaults():
    assert registry.validate_params("test.offered", {"size": 3}) == {"size": 3, "name": "x"}


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({}, "params.size"),
        ({"size": 0}, "params.size"),
        ({"size": "many"}, "params.size"),
        ({"size": 1, "name": 5}, "params.name"),
    ],
)
def test_invalid_params_name_the_field(params, field):
    with pytest.raises(Invalid) as raised:
        registry.validate_params("test.offered", params)
    assert raised.value.field == field


def test_an_unknown_kind_is_invalid_and_names_kind():
    with pytest.raises(Invalid) as raised:
        registry.get_kind("no.such.kind")
    assert raised.value.field == "kind"
    assert "test.record" in raised.value.message


def test_test_kinds_are_not_offered_in_the_ui():
    offered = {k.name for k in registry.kinds(offered_in_ui=True)}
    assert "test.offered" in offered
    assert "test.record" not in offered
    assert registry.get_kind("test.record").module == "tests.jobs.handlers"


def test_a_name_cannot_be_taken_by_another_handler():
    class P(BaseModel):
        pass

    with pytest.raises(ValueError, match="already registered"):
        registry.register("test.record", P)(lambda ctx: {})


def test_handler_modules_come_from_the_environment(monkeypatch):
    monkeypatch.setenv(registry.JOB_MODULES_ENV, " tests.jobs.handlers , ")
    loaded = registry.load_job_modules()
    assert loaded[-1] == "tests.jobs.handlers" and set(loaded[:-1]) == set(registry.BUILTIN_JOB_MODULES)
    monkeypatch.setenv(registry.JOB_MODULES_ENV, "tests.jobs.no_such_module")
    with pytest.raises(ModuleNotFoundError):
        registry.load_job_modules()


@pytest.mark.parametrize(
    ("kind", "params", "field", "problem"),
    [
        ("reward", {"backbone": "tiny\x00llama"}, "params.backbone", "NUL"),
        ("export", {"include_annotators": ["amy", "bo\x00b"]}, "params.include_annotators.1", "NUL"),
    ],
)
def test_text_a_database_cannot_store_is_refused_by_name(kind, params, field, problem):
    # PostgreSQL's JSONB refuses NUL anywhere in the params: a 422 naming the field, not a 500 at commit.
    with pytest.raises(Invalid) as raised:
        registry.validate_params(kind, params)
    assert raised.value.field == field and problem in raised.value.message
