"""A researcher in headless Chromium launches a real ``reward`` job from its form, watches the progress
bar reach 100% and sees the loss plot drawn by Chart.js; a screenshot is kept in test-artifacts/.

The server is the real ``rlhf serve`` with its embedded worker; its database holds judged pairs (a rule
a tiny model can learn) and the researcher points the form's backbone at a tiny Llama folder, so the
job imports, trains and registers exactly as it would with the default backbone, only faster.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from sqlalchemy import select

from app.config import Settings
from app.jobs.models import Job, JobStatus
from app.registry.models import ModelKind, ModelVersion
from tests.browser_support import login
from tests.rewards.conftest import seed_preferences
from tests.seed import server_session
from tests.server import create_user_cli, running_server

pytestmark = pytest.mark.browser

CHART_JS = (
    Path(__file__).resolve().parents[2]
    / "static"
    / "vendor"
    / "node_modules"
    / "chart.js"
    / "dist"
    / "chart.umd.min.js"
)
SERVER_ENV = {"RLHF_BOOTSTRAP_ON_SERVE": "false", "RLHF_WORKER_POLL_SECONDS": "0.2", "RLHF_POOL_TARGET": "0"}
PAIRS = 48  # 36 to train on, 12 to validate: 10 steps over two epochs of batches of 8
# What the researcher types into the launch form; every other input keeps its default.
FORM = {
    "epochs": "2",
    "min_steps": "0",  # two passes, whatever the split's size (the default would add passes up to 50 steps)
    "batch_size": "8",
    "learning_rate": "0.003",
    "max_length": "128",
    "validation_fraction": "0.25",
    "num_threads": "1",
    "checkpoint_every": "0",
    "log_every": "1",  # a curve point per step (the job default reports every 10)
    "name": "rm-from-the-form",
}
# Chart.js's own record of a plot: each dataset's label, its points, and the points it laid out to draw.
CHART_STATE = """id => {
  const chart = Chart.getChart(id);
  return chart && {width: chart.chartArea.right - chart.chartArea.left,
                   series: Object.fromEntries(chart.data.datasets.map((d, i) =>
                     [d.label, [d.data.length, chart.getDatasetMeta(i).data.length]]))};
}"""


def _launch_reward_job(page, url: str, backbone: Path) -> None:
    page.goto(url + "/dashboard/jobs")
    page.click("a[href='/dashboard/jobs/new/reward']")
    # The settings a researcher decides come first; the rest wait, collapsed, under "Advanced".
    assert not page.locator("input[name='param.max_length']").is_visible()
    page.click("#advanced summary")
    page.fill("input[name='param.backbone']", str(backbone))
    for name, value in FORM.items():
        page.fill(f"input[name='param.{name}']", value)
    page.check("input[name='param.use_cpu']")
    with page.expect_navigation():
        page.click("#launch-form button[type=submit]")


def test_researcher_launches_a_reward_job_and_watches_it_train(tmp_path, page, artifacts, tiny_backbone):
    from playwright.sync_api import expect  # installed wherever the page fixture is (it fails or skips otherwise)

    if not CHART_JS.is_file():
        pytest.fail(f"Chart.js is not installed at {CHART_JS}: run `make install` (npm ci in static/vendor)")
    violations: list[str] = []
    page.on("console", lambda msg: violations.append(msg.text) if "Content Security Policy" in msg.text else None)
    settings = Settings(data_dir=tmp_path / "var")
    # A job may load a model only from an allowed location (issue 18): a folder under the models folder.
    backbone = settings.resolved_models_dir / "tiny-backbone"
    shutil.copytree(tiny_backbone, backbone)
    with running_server(settings.data_dir, extra_env=SERVER_ENV) as server:
        with server_session(settings) as db:
            seed_preferences(db, PAIRS)
            db.commit()
        create_user_cli(settings.data_dir, "rex", "rex-password-1", "researcher")
        login(page, server.url, "rex", "rex-password-1")
        _launch_reward_job(page, server.url, backbone)
        assert "/dashboard/jobs/" in page.url and "reward" in page.inner_text("h1")

        # Playwright's assertions poll without eval, which the page's CSP (rightly) forbids.
        expect(page.locator("#job-progress")).to_have_js_property("value", 1, timeout=120_000)
        expect(page.locator("#job-status")).to_have_text("succeeded", timeout=30_000)
        expect(page.locator("#chart-loss")).to_have_attribute("data-points", "11", timeout=30_000)  # 10 train + 1 val
        assert page.inner_text("#job-percent") == "100%"
        loss = page.evaluate(CHART_STATE, "chart-loss")
        assert loss["series"] == {"train_loss": [10, 10], "val_loss": [1, 1]} and loss["width"] > 0
        accuracy = page.evaluate(CHART_STATE, "chart-accuracy")
        assert accuracy["series"] == {"train_accuracy": [10, 10], "val_accuracy": [1, 1]}
        margin = page.evaluate(CHART_STATE, "chart-margin")  # the reward model's margin: train and val on one plot
        assert margin["series"] == {"train_margin": [10, 10], "val_margin": [1, 1]}
        assert f"reward job: {PAIRS} examples, backbone {backbone}" in page.inner_text("#job-log")
        assert '"name": "rm-from-the-form"' in page.inner_text("#job-result")
        page.screenshot(path=str(artifacts / "dashboard-reward-job.png"), full_page=True)

        page.goto(server.url + "/dashboard/jobs")
        row = page.locator("tr[data-job]").first
        expect(row.locator("[data-field=progress]")).to_have_js_property("value", 1)
        expect(row.locator("[data-field=status]")).to_have_text("succeeded")
        page.goto(server.url + "/dashboard")
        expect(page.locator("#judgements-chart")).to_have_attribute("data-points", "30")
    assert violations == []

    with server_session(settings) as db:
        job = db.scalar(select(Job).where(Job.kind == "reward"))
        assert job.status is JobStatus.succeeded and job.params["backbone"] == str(backbone)
        assert (job.params["epochs"], job.params["batch_size"], job.params["use_cpu"]) == (2, 8, True)
        assert job.params["min_steps"] == 0
        version = db.scalar(select(ModelVersion).where(ModelVersion.created_by_job_id == job.id))
        assert (version.kind, version.name) == (ModelKind.reward, "rm-from-the-form")
        assert Path(version.path).is_dir() and "val_accuracy" in version.metrics
