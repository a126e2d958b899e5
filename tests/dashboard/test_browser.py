"""A researcher in headless Chromium launches a job from its form, watches the progress bar reach
100% and sees the loss plot drawn by Chart.js; a screenshot is kept in test-artifacts/."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.server import create_user_cli, running_server

pytestmark = pytest.mark.browser

CHART_JS = Path(__file__).resolve().parents[2] / "static" / "vendor" / "node_modules" / "chart.js" / "dist" / "chart.umd.min.js"
# The job kind the real reward trainer registers is another engineer's; this test-only kind reports
# progress and train_loss / train_accuracy curves the same way.
SERVER_ENV = {"RLHF_JOB_MODULES": "tests.dashboard.handlers", "RLHF_BOOTSTRAP_ON_SERVE": "false", "RLHF_WORKER_POLL_SECONDS": "0.2"}


def _login(page, url: str, username: str, password: str) -> None:
    page.goto(url + "/login")
    page.fill("input[name=username]", username)
    page.fill("input[name=password]", password)
    page.keyboard.press("Enter")
    page.wait_for_url(url + "/")


def test_researcher_launches_a_job_and_watches_it_train(tmp_path, page, artifacts):
    from playwright.sync_api import expect  # installed wherever the page fixture is (it fails or skips otherwise)

    if not CHART_JS.is_file():
        pytest.fail(f"Chart.js is not installed at {CHART_JS}: run `make install` (npm ci in static/vendor)")
    violations: list[str] = []
    page.on("console", lambda msg: violations.append(msg.text) if "Content Security Policy" in msg.text else None)
    data_dir = tmp_path / "var"
    with running_server(data_dir, extra_env=SERVER_ENV) as server:
        create_user_cli(data_dir, "rex", "rex-password-1", "researcher")
        _login(page, server.url, "rex", "rex-password-1")
        page.goto(server.url + "/dashboard/jobs")
        page.click("a[href='/dashboard/jobs/new/test.curves']")
        page.fill("input[name='param.steps']", "25")
        page.fill("input[name='param.step_seconds']", "0.12")
        with page.expect_navigation():
            page.click("#launch-form button[type=submit]")
        assert "/dashboard/jobs/" in page.url

        # Playwright's assertions poll without eval, which the page's CSP (rightly) forbids.
        expect(page.locator("#job-progress")).to_have_js_property("value", 1, timeout=90_000)
        expect(page.locator("#job-status")).to_have_text("succeeded", timeout=30_000)
        expect(page.locator("#chart-loss")).to_have_attribute("data-points", "25", timeout=30_000)
        assert page.inner_text("#job-percent") == "100%"
        assert page.locator("#chart-accuracy").count() == 1  # train_accuracy and val_accuracy share a plot
        assert "trained 25 steps" in page.inner_text("#job-log")
        page.screenshot(path=str(artifacts / "dashboard-job.png"), full_page=True)

        page.goto(server.url + "/dashboard/jobs")
        row = page.locator("tr[data-job]").first
        expect(row.locator("[data-field=progress]")).to_have_js_property("value", 1)
        expect(row.locator("[data-field=status]")).to_have_text("succeeded")
        page.goto(server.url + "/dashboard")
        expect(page.locator("#judgements-chart")).to_have_attribute("data-points", "30")
    assert violations == []
