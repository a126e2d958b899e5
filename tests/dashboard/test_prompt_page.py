"""A prompt's page in the dashboard: its responses rated by Elo, the per-prompt reward and Bradley–Terry,
on the hand-worked three-response example (tests/ratings), with what must not count left out."""

from __future__ import annotations

import re

import pytest

from app.annotation.models import Choice, Judgement
from app.auth.models import Role
from app.db import utcnow
from app.pool.models import Pair, PairStatus, Response
from tests.export.data import rated_prompt
from tests.factories import UserFactory
from tests.helpers import log_in_as

XSS = '<img src=x onerror="alert(1)">'


def rows(page: str) -> list[tuple[int, str, str, str, str]]:
    """(response id, games, Elo, reward, BT) of each row of the table, in its order."""
    table = page.split('id="response-ratings"')[1].split("</table>")[0]
    found = re.findall(
        r'data-response="(\d+)">.*?<td>[^<]*</td>\s*<td>(\d+)</td>\s*<td class="elo">(.*?)</td>\s*'
        r'<td class="reward">(.*?)</td>\s*<td class="bt">(.*?)</td>',
        table,
        re.S,
    )
    return [(int(rid), *rest) for rid, *rest in found]


def test_responses_rated_by_elo_reward_and_bt(client, db):
    prompt, responses, pairs = rated_prompt(db)
    x, y, z = responses["x"], responses["y"], responses["z"]
    # none of these is a game: a both-bad verdict, a quarantined annotator's, and one on a gold pair
    db.add(Judgement(pair_id=pairs[0].id, annotator_id=UserFactory().id, choice=Choice.both_bad, strength=1))
    db.add(Judgement(pair_id=pairs[1].id, annotator_id=UserFactory(quarantined_at=utcnow()).id, choice=Choice.b))
    gold = Response(prompt_id=prompt.id, text="made-up", source="gold:shuffled")
    unjudged = Response(prompt_id=prompt.id, text=XSS)
    db.add_all([gold, unjudged])
    db.flush()
    gold_pair = Pair(prompt_id=prompt.id, response_a_id=x.id, response_b_id=gold.id, status=PairStatus.gold)
    db.add_all([gold_pair, Pair(prompt_id=prompt.id, response_a_id=unjudged.id, response_b_id=z.id)])
    db.flush()
    db.add(Judgement(pair_id=gold_pair.id, annotator_id=UserFactory().id, choice=Choice.b, strength=1))
    db.flush()

    log_in_as(client, "rita", Role.researcher)
    page = client.get(f"/dashboard/prompts/{prompt.id}")
    assert page.status_code == 200
    assert "4 judgement(s) of this prompt's pairs, 3 of them games" in page.text  # not gold, not quarantined
    # Elo 1014.4968829 / 1000.7363068 / 984.7668103; reward 0.5208506 / 0.5010596 / 0.4780917;
    # BT ±131.384 around 1000 (σ(t) + σ(2t) = 3/2): worked out in tests/ratings
    rated, unplayed = rows(page.text)[:3], rows(page.text)[3:]  # best Elo first; the gold answer is not listed
    assert rated == [
        (x.id, "2", "1014.5", "0.521", "1131.4"),
        (y.id, "2", "1000.7", "0.501", "1000.0"),
        (z.id, "2", "984.8", "0.478", "868.6"),
    ]
    assert [(rid, games) for rid, games, *_ in unplayed] == [(unjudged.id, "0")] and "–" in unplayed[0][2]
    assert XSS not in page.text and "&lt;img src=x onerror=" in page.text


@pytest.mark.parametrize("role, status", [(Role.annotator, 403), (Role.admin, 200)])
def test_who_may_see_a_prompt_page(client, db, role, status):
    prompt, _, _ = rated_prompt(db)
    log_in_as(client, "someone", role)
    assert client.get(f"/dashboard/prompts/{prompt.id}").status_code == status


def test_an_unknown_prompt_is_a_404(client, db):
    log_in_as(client, "rita", Role.researcher)
    assert client.get("/dashboard/prompts/999999").status_code == 404
    assert client.get("/dashboard/prompts/0").status_code in (404, 422)


def test_the_admin_prompt_page_links_to_it(client, db):
    prompt, _, _ = rated_prompt(db)
    log_in_as(client, "ada", Role.admin)
    page = client.get(f"/admin/prompt-sets/{prompt.prompt_set_id}/prompts/{prompt.id}")
    assert f'href="/dashboard/prompts/{prompt.id}"' in page.text
