"""The shared shapes of services and pages: ``get_or_404`` and ``form_action``."""

import pytest
from fastapi.responses import Response
from sqlalchemy import select

from app.auth.models import User
from app.errors import Conflict, DomainError, NotFound
from app.lookup import get_or_404
from app.prompts.models import PromptSet
from app.web import form_action
from tests.factories import PromptSetFactory, UserFactory


def test_get_or_404_returns_the_row(db):
    user = UserFactory()
    assert get_or_404(db, User, user.id, "user") is user


def test_get_or_404_names_what_is_missing(db):
    with pytest.raises(NotFound, match=r"^prompt set 999999 not found$"):
        get_or_404(db, PromptSet, 999_999, "prompt set")


def test_a_row_that_fails_where_reads_as_missing_with_the_given_message(db):
    user = UserFactory()
    with pytest.raises(NotFound, match=r"^user \d+ is not yours$"):
        get_or_404(db, User, user.id, where=lambda u: u.id != user.id, message=f"user {user.id} is not yours")


def test_for_update_reads_the_row_and_still_refuses_a_missing_one(db):
    prompt_set = PromptSetFactory()
    db.flush()
    assert get_or_404(db, PromptSet, prompt_set.id, "prompt set", for_update=True) is prompt_set
    with pytest.raises(NotFound):
        get_or_404(db, PromptSet, 999_999, "prompt set", for_update=True)


def test_form_action_answers_with_done_of_the_result(db):
    response = form_action(db, lambda: 7, done=lambda n: Response(str(n * 6)), failed=lambda exc: Response("no"))
    assert response.body == b"42"


def test_form_action_without_done_answers_with_what_run_built(db):
    built = Response("built")
    assert form_action(db, lambda: built, failed=lambda exc: Response("no")) is built


def test_a_refusal_rolls_back_and_answers_with_failed(db):
    seen: list[DomainError] = []

    def run() -> None:
        db.add(PromptSet(name="half an action"))
        db.flush()
        raise Conflict("refused")

    def failed(exc: DomainError) -> Response:
        seen.append(exc)
        return Response(exc.message, status_code=exc.status_code)

    response = form_action(db, run, done=lambda _: Response("yes"), failed=failed)
    assert (response.status_code, response.body) == (409, b"refused")
    assert [type(e) for e in seen] == [Conflict]
    assert db.scalar(select(PromptSet).where(PromptSet.name == "half an action")) is None


def test_only_run_is_guarded(db):
    def done(_: object) -> Response:
        raise NotFound("gone while rendering")

    with pytest.raises(NotFound):
        form_action(db, lambda: None, done=done, failed=lambda exc: Response("no"))
