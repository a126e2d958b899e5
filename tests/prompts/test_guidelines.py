"""Issue 16: per-set guidelines and label wording, shown to annotators and confirmed once per version."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select

from app.auth.models import Role
from app.errors import Conflict, Invalid
from app.prompts import guidelines
from app.prompts.models import GuidelineConfirmation
from tests.factories import PairFactory, PromptSetFactory, UserFactory
from tests.helpers import log_in_as

XSS = "<script>window.__pwned=1</script><img src=x onerror=alert(1)>"


def test_a_change_raises_the_version_and_the_same_text_does_not(db):
    prompt_set = PromptSetFactory()
    assert prompt_set.guidelines_version == 0
    guidelines.update(db, set_id=prompt_set.id, text="Prefer **short** answers.", definitions={})
    assert prompt_set.guidelines_version == 1
    guidelines.update(db, set_id=prompt_set.id, text="  Prefer **short** answers.  ", definitions={"tie": " "})
    assert prompt_set.guidelines_version == 1  # same text once trimmed; a blank definition is the default
    guidelines.update(db, set_id=prompt_set.id, text="Prefer **short** answers.", definitions={"tie": "Equal."})
    assert prompt_set.guidelines_version == 2
    rules = guidelines.for_set(prompt_set)
    assert rules.by_key["tie"].meaning == "Equal." and not rules.by_key["tie"].default
    assert rules.by_key["safety_unsafe"].default and "harm" in rules.by_key["safety_safe"].meaning


@pytest.mark.parametrize(
    ("text", "definitions", "field"),
    [
        ("x" * (guidelines.MAX_GUIDELINES + 1), {}, "guidelines"),
        ("ok", {"nonsense": "x"}, "label_definitions.nonsense"),
        ("ok", {"tie": "x" * (guidelines.MAX_DEFINITION + 1)}, "label_definitions.tie"),
        ("nul \x00 here", {}, "guidelines"),
    ],
)
def test_bad_input_names_the_field_and_writes_nothing(db, text, definitions, field):
    prompt_set = PromptSetFactory()
    db.commit()
    with pytest.raises(Invalid) as caught:
        guidelines.update(db, set_id=prompt_set.id, text=text, definitions=definitions)
    assert caught.value.field == field
    db.rollback()
    db.refresh(prompt_set)
    assert (prompt_set.guidelines, prompt_set.guidelines_version) == ("", 0)


def test_confirmation_is_per_user_and_per_version(db):
    prompt_set, ann, other = PromptSetFactory(), UserFactory(), UserFactory()
    assert not guidelines.needs_confirmation(db, user=ann, prompt_set=prompt_set)  # nothing written: no gate
    guidelines.update(db, set_id=prompt_set.id, text="Read me.", definitions={})
    assert guidelines.needs_confirmation(db, user=ann, prompt_set=prompt_set)
    guidelines.confirm(db, user=ann, set_id=prompt_set.id, version=1)
    guidelines.confirm(db, user=ann, set_id=prompt_set.id, version=1)  # a second tab: no error, one row
    assert not guidelines.needs_confirmation(db, user=ann, prompt_set=prompt_set)
    assert guidelines.needs_confirmation(db, user=other, prompt_set=prompt_set)
    assert db.scalar(select(func.count()).select_from(GuidelineConfirmation)) == 1
    guidelines.update(db, set_id=prompt_set.id, text="Read me again.", definitions={})
    assert guidelines.needs_confirmation(db, user=ann, prompt_set=prompt_set)
    with pytest.raises(Conflict, match="changed"):
        guidelines.confirm(db, user=ann, set_id=prompt_set.id, version=1)


class TestPages:
    def test_admin_writes_them_and_the_annotator_confirms_before_judging(self, client, db):
        pair = PairFactory()
        set_id = pair.prompt.prompt_set_id
        log_in_as(client, "boss", Role.admin)
        saved = client.post(
            f"/admin/prompt-sets/{set_id}/guidelines",
            data={"csrf_token": client.csrf, "guidelines": f"# Rules\nPrefer answers with a *number*. {XSS}"}
            | {"label.strength_3": "One answers, the other does not."},
        )
        assert saved.status_code == 200 and "Guidelines saved (version 1)" in saved.text
        assert XSS not in saved.text  # the admin page shows the text escaped in its textarea
        log_in_as(client, "annie", Role.annotator)
        gate = client.get("/annotate")
        assert 'id="confirm-guidelines"' in gate.text and 'id="judge-form"' not in gate.text
        assert "<h1>Rules</h1>" in gate.text and "<em>number</em>" in gate.text
        assert "<script>window" not in gate.text and "<img src=x" not in gate.text  # escaped or stripped: inert
        assert "One answers, the other does not." in gate.text
        after = gate.text.split('name="next" value="')[1].split('"')[0]
        confirmed = client.post(
            f"/annotate/guidelines/{set_id}", data={"csrf_token": client.csrf, "version": "1", "next": after}
        )
        assert confirmed.status_code == 200 and 'id="judge-form"' in confirmed.text
        assert 'id="guidelines"' in confirmed.text and 'href="#guide-strength_1"' in confirmed.text
        assert 'id="guide-strength_3"' in confirmed.text and "Prefer answers with a" in confirmed.text
        stale = client.post(f"/annotate/guidelines/{set_id}", data={"csrf_token": client.csrf, "version": "0"})
        assert stale.status_code == 409

    def test_a_set_without_guidelines_shows_the_default_wording_without_a_gate(self, client, db):
        PairFactory()
        log_in_as(client, "annie", Role.annotator)
        page = client.get("/annotate")
        assert 'id="judge-form"' in page.text and 'id="guidelines"' in page.text
        assert guidelines.LABELS[0][2] in page.text
