"""The annotator's page in headless Chromium: keyboard only, and inert against XSS payloads."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from app.annotation.models import Choice, Demonstration, Judgement, JudgementEdit, ResponseLabel
from app.config import Settings
from app.pool.models import Pair
from app.prompts import guidelines
from tests.browser_support import create_annotator_and_log_out, login, wait_for_annotate_keys
from tests.seed import seed_server, server_session
from tests.server import running_server

pytestmark = pytest.mark.browser


def _admin_creates_annotator(page, url: str, admin_password: str) -> None:
    login(page, url, "admin", admin_password)
    page.goto(url + "/admin/users")
    create_annotator_and_log_out(page)


def _judge_with_keyboard(page, *, demonstration: str | None) -> None:
    """ALPHA marks the real response A: choose it, label it good/safe and the other bad/unsafe."""
    wait_for_annotate_keys(page)
    alpha_left = "ALPHA" in page.inner_text("#response-A .markdown")
    keys = ["1" if alpha_left else "2", "k"]
    keys += ["q", "e", "i", "p"] if alpha_left else ["w", "r", "u", "o"]
    for key in keys:
        page.keyboard.press(key)
    if demonstration:
        page.keyboard.press("d")
        page.keyboard.type(demonstration)
        page.keyboard.press("Escape")
    with page.expect_navigation():
        page.keyboard.press("Enter")


def test_annotator_judges_five_pairs_with_the_keyboard(tmp_path, page, artifacts):
    data_dir = tmp_path / "var"
    with running_server(data_dir, args=("--no-worker",)) as server:
        specs = [
            (
                [{"role": "user", "content": f"Question {i}: how do I boil an egg?"}],
                f"ALPHA {i}: boil it 8 minutes.",
                f"BETA {i}: no idea.",
            )
            for i in range(6)
        ]
        pair_ids = seed_server(Settings(data_dir=data_dir), specs)
        _admin_creates_annotator(page, server.url, server.admin_password)
        login(page, server.url, "annie", "annie-password-1")
        page.goto(server.url + "/annotate")
        page.screenshot(path=str(artifacts / "annotate.png"), full_page=True)
        with page.expect_navigation():
            page.keyboard.press("s")  # skip one pair
        for n in range(5):
            _judge_with_keyboard(
                page, demonstration="Boil it for 8 minutes, then cool it in cold water." if n == 2 else None
            )
        assert "No pairs are waiting" in page.inner_text("main")

    with server_session(Settings(data_dir=data_dir)) as db:
        judgements = list(db.scalars(select(Judgement)))
        labels = list(db.scalars(select(ResponseLabel)))
        demos = list(db.scalars(select(Demonstration)))
        assert (len(judgements), len(labels), len(demos)) == (5, 10, 1)
        pairs = {p.id: p for p in db.scalars(select(Pair).where(Pair.id.in_(pair_ids)))}
        for judgement in judgements:
            assert judgement.choice is Choice.a and judgement.strength == 2
        by_response = {label.response_id: label for label in labels}
        for judgement in judgements:
            pair = pairs[judgement.pair_id]
            assert by_response[pair.response_a_id].quality and by_response[pair.response_a_id].safety
            assert not by_response[pair.response_b_id].quality and not by_response[pair.response_b_id].safety
        assert demos[0].text.startswith("Boil it for 8 minutes")


XSS = [
    "<script>window.__pwned = 1; alert('script')</script>",
    "<img src=x onerror=\"alert('img')\">",
    "<svg onload=\"alert('svg')\"></svg>",
    "</textarea><script>alert('textarea')</script>",
    "[click me](javascript:alert('link'))",
    "</script><script>alert('data')</script>",
    "![pixel](http://evil.example/pixel.png)",
]


def test_xss_payloads_are_inert_in_the_browser(tmp_path, page):
    data_dir = tmp_path / "var"
    with running_server(data_dir, args=("--no-worker",)) as server:
        specs = [([{"role": "user", "content": p}], p, "plain " + p) for p in XSS]
        seed_server(Settings(data_dir=data_dir), specs, needed=1)
        from tests.server import create_user_cli

        create_user_cli(data_dir, "xavier", "xavier-password-1")
        dialogs, foreign = [], []
        page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
        page.on(
            "request",
            lambda r: None if r.url.startswith(server.url) or r.url.startswith("data:") else foreign.append(r.url),
        )
        login(page, server.url, "xavier", "xavier-password-1")
        page.goto(server.url + "/annotate")
        seen = 0
        while page.query_selector("#judge-form") is not None:
            page.wait_for_timeout(300)  # give any injected handler the chance to fire
            assert page.evaluate("window.__pwned") is None
            seen += 1
            with page.expect_navigation():
                page.keyboard.press("s")
        assert seen == len(XSS)
        assert dialogs == [] and foreign == []


def test_back_then_enter_stores_nothing_a_change_keeps_its_history_and_a_cut_off_answer_is_marked(
    tmp_path, page, artifacts
):
    """Issue 16: after a submission the browser's Back shows the judged pair (no form that Enter would
    submit), the verdict can be changed there within the window with its history kept, and an answer
    that stopped at the token budget carries its mark."""
    data_dir = tmp_path / "var"
    with running_server(data_dir, args=("--no-worker",)) as server:
        specs = [
            ([{"role": "user", "content": f"Question {i}: how do I boil an egg?"}], f"ALPHA {i}: boil it.", f"BETA {i}")
            for i in range(3)
        ]
        pair_ids = seed_server(Settings(data_dir=data_dir), specs)
        with server_session(Settings(data_dir=data_dir)) as db:
            for pair in db.scalars(select(Pair).where(Pair.id.in_(pair_ids))):
                pair.response_b.generation_params = {"finish_reason": "length", "max_new_tokens": 48}
            db.commit()
        _admin_creates_annotator(page, server.url, server.admin_password)
        login(page, server.url, "annie", "annie-password-1")
        page.goto(server.url + "/annotate")
        beta_side = "A" if "BETA" in page.inner_text("#response-A .markdown") else "B"
        assert page.locator(f"#response-{beta_side} .cut-off").is_visible()
        assert page.locator("article .cut-off").count() == 1
        first_url = page.url
        _judge_with_keyboard(page, demonstration=None)  # ALPHA, clearly better
        assert page.url != first_url and page.locator("#judge-form").count() == 1

        page.go_back()
        page.wait_for_selector("#judged")
        assert page.url == first_url and page.locator("#judge-form").count() == 0
        page.keyboard.press("Enter")  # what used to judge the next pair unseen
        page.keyboard.press("1")
        page.wait_for_timeout(500)
        assert page.url == first_url
        page.screenshot(path=str(artifacts / "annotate-judged.png"), full_page=True)

        page.check("#change-form input[name=choice][value=tie]")
        page.check("#change-form input[name=strength][value='']")
        with page.expect_navigation():
            page.click("#save-change")
        assert "Your change is saved" in page.inner_text("#judged") and "Tie" in page.inner_text("#verdict")
        page.goto(server.url + "/annotate/recent")
        assert "Tie" in page.inner_text("#recent") and "change" in page.inner_text("#recent")

    with server_session(Settings(data_dir=data_dir)) as db:
        (judgement,) = db.scalars(select(Judgement)).all()
        assert judgement.choice is Choice.tie and judgement.strength is None
        (edit,) = db.scalars(select(JudgementEdit)).all()
        assert (edit.old_choice, edit.old_strength, edit.new_choice) == (Choice.a, 2, Choice.tie)
        assert edit.judgement_id == judgement.id


def test_guidelines_are_confirmed_once_and_a_label_link_opens_them(tmp_path, page):
    data_dir = tmp_path / "var"
    with running_server(data_dir, args=("--no-worker",)) as server:
        specs = [([{"role": "user", "content": f"Q{i}"}], f"ALPHA {i}", f"BETA {i}") for i in range(2)]
        pair_ids = seed_server(Settings(data_dir=data_dir), specs)
        with server_session(Settings(data_dir=data_dir)) as db:
            set_id = db.get(Pair, pair_ids[0]).prompt.prompt_set_id
            guidelines.update(db, set_id=set_id, text="Prefer the answer that **names a number**.", definitions={})
        _admin_creates_annotator(page, server.url, server.admin_password)
        login(page, server.url, "annie", "annie-password-1")
        page.goto(server.url + "/annotate")
        assert page.locator("#guidelines").get_attribute("open") is not None
        assert "names a number" in page.inner_text("#guidelines strong")
        with page.expect_navigation():
            page.click("#confirm")
        assert page.locator("#judge-form").is_visible()
        assert page.locator("#guidelines").get_attribute("open") is None  # folded away once confirmed
        page.click("a.guide-link[data-guide='strength_1']")
        assert page.locator("#guidelines").get_attribute("open") is not None
        assert page.locator("#guide-strength_1").is_visible()
        _judge_with_keyboard(page, demonstration=None)
        assert page.locator("#judge-form").is_visible()  # the next pair of the set: no second confirmation
