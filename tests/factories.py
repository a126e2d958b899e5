"""factory_boy factories for test data, bound to the test's session by the ``db`` fixture."""

from __future__ import annotations

import hashlib
import json
from functools import cache

import factory
from factory.alchemy import SQLAlchemyModelFactory
from sqlalchemy.orm import Session

from app.annotation.models import Choice, Judgement
from app.auth.models import Role, User
from app.auth.passwords import hash_password
from app.jobs.models import Job
from app.pool.models import Pair, Response
from app.prompts.models import Prompt, PromptSet
from app.registry.models import ModelKind, ModelStatus, ModelVersion

PASSWORD = "correct-horse-battery"


@cache
def _password_hash() -> str:
    return hash_password(PASSWORD)  # argon2 is slow by design: hash once per run


class Base(SQLAlchemyModelFactory):
    class Meta:
        abstract = True
        sqlalchemy_session_persistence = "flush"


class UserFactory(Base):
    class Meta:
        model = User

    username = factory.Sequence(lambda n: f"user{n}")
    password_hash = factory.LazyFunction(_password_hash)
    role = Role.annotator
    is_active = True


class PromptSetFactory(Base):
    class Meta:
        model = PromptSet

    name = factory.Sequence(lambda n: f"set {n}")


def _messages_hash(messages: list[dict[str, str]]) -> str:
    return hashlib.sha256(json.dumps(messages, sort_keys=True).encode()).hexdigest()


class PromptFactory(Base):
    class Meta:
        model = Prompt

    prompt_set = factory.SubFactory(PromptSetFactory)
    messages = factory.Sequence(lambda n: [{"role": "user", "content": f"Question number {n}?"}])
    content_hash = factory.LazyAttribute(lambda o: _messages_hash(o.messages))


class ModelVersionFactory(Base):
    class Meta:
        model = ModelVersion

    name = factory.Sequence(lambda n: f"policy-v{n}")
    kind = ModelKind.policy
    status = ModelStatus.ready


class ResponseFactory(Base):
    class Meta:
        model = Response

    prompt = factory.SubFactory(PromptFactory)
    text = factory.Sequence(lambda n: f"Answer {n}.")


class PairFactory(Base):
    class Meta:
        model = Pair

    prompt = factory.SubFactory(PromptFactory)
    response_a = factory.SubFactory(ResponseFactory, prompt=factory.SelfAttribute("..prompt"))
    response_b = factory.SubFactory(ResponseFactory, prompt=factory.SelfAttribute("..prompt"))


class JudgementFactory(Base):
    class Meta:
        model = Judgement

    pair = factory.SubFactory(PairFactory)
    annotator_id = factory.LazyFunction(lambda: UserFactory().id)
    choice = Choice.a
    strength = 2


class JobFactory(Base):
    class Meta:
        model = Job

    kind = "noop"
    params = factory.LazyFunction(dict)


ALL = [
    UserFactory,
    PromptSetFactory,
    PromptFactory,
    ModelVersionFactory,
    ResponseFactory,
    PairFactory,
    JudgementFactory,
    JobFactory,
]


def bind(session: Session) -> None:
    for f in ALL:
        f._meta.sqlalchemy_session = session
