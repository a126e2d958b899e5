"""Issue 17, acceptance 1: a researcher runs the whole loop from the home page's next-step button, in headless
Chromium, never typing JSON or an id: train a reward model → improve the policy → compare the two versions
side by side (generate pairs, judge them) → promote the new one.

The server is the real ``rlhf serve`` with its embedded worker (every job runs for real); the promoted policy
is a tiny Llama registered from a folder under the models folder, and the database holds 200 judged pairs,
the data a first reward model needs. The researcher picks every model from a list, takes the "Quick check"
preset and types a few small numbers so each job takes seconds.
"""

from __future__ import annotations

import shutil

import pytest
from sqlalchemy import select, update

from app.config import Settings
from app.dashboard.loop import COMPARE_PAIRS
from app.finetune.core.data_check import RECOMMENDED_EXAMPLES
from app.pool.models import Pair, PairStatus
from app.registry.models import ModelKind, ModelStatus, ModelVersion
from tests.browser_support import login, wait_for_annotate_keys
from tests.ppo.conftest import QUESTIONS, add_version
from tests.rewards.conftest import add_prompt, add_prompt_set, seed_preferences, tiny_backbone  # noqa: F401
from tests.seed import server_session
from tests.server import create_user_cli, running_server

pytestmark = pytest.mark.browser

SERVER_ENV = {
    "RLHF_BOOTSTRAP_ON_SERVE": "false",
    "RLHF_WORKER_POLL_SECONDS": "0.2",
    "RLHF_POOL_TARGET": "0",  # only the comparison generates pairs
    "RLHF_GOLD_SHARE": "0",
}
JUDGED = 4  # side-by-side pairs the researcher generates and judges
JOB_TIMEOUT_MS = 240_000


def _seed(settings: Settings, policy_folder) -> None:
    with server_session(settings) as db:
        add_version(db, ModelKind.policy, policy_folder, name="tiny-policy", status=ModelStatus.promoted)
        prompts = add_prompt_set(db, "questions")
        for question in QUESTIONS:
            add_prompt(db, prompts, question)
        seed_preferences(db, RECOMMENDED_EXAMPLES)
        db.execute(update(Pair).values(status=PairStatus.complete))  # judged history, not waiting pairs
        db.commit()


def _next_step(page, url: str, expected: str):
    from playwright.sync_api import expect

    page.goto(url + "/")
    step = page.locator("#next-step")
    expect(step).to_have_attribute("data-step", expected)
    return step


def _launch_and_wait(page) -> None:
    from playwright.sync_api import expect

    with page.expect_navigation():
        page.click("#launch-form button[type=submit]")
    assert "/dashboard/jobs/" in page.url, page.inner_text("main")
    expect(page.locator("#job-status")).to_have_text("succeeded", timeout=JOB_TIMEOUT_MS)


def _fill_advanced(page, values: dict[str, str]) -> None:
    page.click("#advanced summary")
    for name, value in values.items():
        page.fill(f"input[name='param.{name}']", value)


def test_researcher_runs_the_loop_from_the_home_page(tmp_path, page, artifacts, tiny_backbone):  # noqa: F811
    from playwright.sync_api import expect

    settings = Settings(data_dir=tmp_path / "var")
    policy_folder = settings.resolved_models_dir / "tiny-policy"
    shutil.copytree(tiny_backbone, policy_folder)
    with running_server(settings.data_dir, extra_env=SERVER_ENV) as server:
        _seed(settings, policy_folder)
        create_user_cli(settings.data_dir, "rex", "rex-password-1", "researcher")
        login(page, server.url, "rex", "rex-password-1")

        # A launch with too little data says so before it runs: nobody has labelled a response yet.
        page.goto(server.url + "/dashboard/jobs/new/classifier")
        expect(page.locator("#launch-warnings")).to_contain_text("0 labelled responses: too few")

        # 1. Train a reward model: the backbone is the promoted policy, picked from the registry.
        _next_step(page, server.url, "reward").click()
        page.click("#presets [data-preset=quick]")
        assert page.input_value("input[name='param.epochs']") == "1"
        page.select_option("select[name='param.backbone_version_id']", label="tiny-policy (promoted)")
        page.fill("input[name='param.name']", "rm-1")
        _fill_advanced(page, {"max_length": "64", "num_threads": "1"})
        page.screenshot(path=str(artifacts / "loop-reward-form.png"), full_page=True)
        _launch_and_wait(page)

        # 2. Improve the policy with the default method, against that reward model (the form's defaults).
        step = _next_step(page, server.url, "improve")
        assert "rm-1" in page.inner_text("#next-step-why")
        step.click()
        page.click("#presets [data-preset=quick]")
        page.fill("input[name='param.name']", "policy-2")
        page.fill("input[name='param.rounds']", "1")
        _fill_advanced(
            page, {"prompts_per_round": "2", "samples_per_prompt": "4", "response_length": "6", "batch_size": "2"}
        )
        _launch_and_wait(page)

        # 3. Compare: generate pairs with one answer from each version, then judge them.
        _next_step(page, server.url, "compare").click()
        assert page.input_value("input[name='param.pairs']") == str(COMPARE_PAIRS)
        assert page.input_value("input[name='param.cross_version_share']") == "1"
        page.fill("input[name='param.pairs']", str(JUDGED))
        _fill_advanced(page, {"max_new_tokens": "8"})
        _launch_and_wait(page)
        with page.expect_navigation():
            _next_step(page, server.url, "judge_compare").click()
        assert "/annotate/" in page.url, page.url
        judged = 0
        while page.locator("#response-A").count():
            assert judged < JUDGED, "a pair came back: " + page.inner_text("main")
            wait_for_annotate_keys(page)
            for key in ("1", "k", "q", "e", "i", "p"):  # A is better; both good and safe
                page.keyboard.press(key)
            with page.expect_navigation():
                page.keyboard.press("Enter")
            errors = page.locator("p.error")
            assert not errors.count(), f"judgement {judged + 1} was refused: {errors.inner_text()}"
            judged += 1
        assert judged >= 2, page.inner_text("main")

        # 4. Promote: the home page gives the win rate of the side-by-side verdicts and leads to the models page.
        step = _next_step(page, server.url, "promote")
        assert f"of {judged} side-by-side verdicts against tiny-policy" in page.inner_text("#next-step-why")
        with page.expect_navigation():
            step.click()
        assert page.url.endswith("/dashboard/models"), page.url
        assert "policy-2" in page.inner_text("#leaderboard") and "tiny-policy" in page.inner_text("#leaderboard")
        page.screenshot(path=str(artifacts / "loop-compare.png"), full_page=True)
        row = page.locator("#policies tr", has_text="policy-2")
        with page.expect_navigation():
            row.locator("button", has_text="Promote").click()
        expect(page.locator(".notice")).to_contain_text("Promoted policy-2")
        page.goto(server.url + "/")
        assert "policy-2" in page.inner_text("#promoted-policy")
        assert f"of {judged} side-by-side verdicts against its parent" in page.inner_text("#promoted-policy")
        page.screenshot(path=str(artifacts / "loop-home-after-promotion.png"), full_page=True)

    with server_session(settings) as db:
        versions = {v.name: v for v in db.scalars(select(ModelVersion))}
        assert versions["rm-1"].kind is ModelKind.reward and "val_accuracy" in versions["rm-1"].metrics
        assert versions["policy-2"].status is ModelStatus.promoted
        assert versions["policy-2"].parent_id == versions["tiny-policy"].id
        assert versions["tiny-policy"].status is ModelStatus.ready
