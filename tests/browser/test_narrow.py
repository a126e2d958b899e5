"""Issue 17: the pages people use on a phone fit 400 px (no sideways scroll), and every page has its icon."""

from __future__ import annotations

import pytest

from app.config import Settings
from tests.browser_support import create_annotator_and_log_out, login
from tests.seed import seed_server
from tests.server import running_server

pytestmark = pytest.mark.browser
WIDTH = 400


def _fits(page, url: str, artifacts, name: str) -> None:
    page.goto(url)
    width = page.evaluate("document.documentElement.scrollWidth")
    page.screenshot(path=str(artifacts / f"narrow-{name}.png"), full_page=True)
    assert width <= WIDTH, f"{url} is {width} px wide at {WIDTH} px"


def test_annotate_chat_and_dashboard_fit_400_px_for_an_annotator_and_an_admin(tmp_path, page, artifacts):
    page.set_viewport_size({"width": WIDTH, "height": 900})
    data_dir = tmp_path / "var"
    with running_server(data_dir, args=("--no-worker",)) as server:
        long_word = "supercalifragilistic" * 6  # model output without spaces must wrap, not widen the page
        specs = [
            ([{"role": "user", "content": f"Question {i} {long_word}"}], f"ALPHA {long_word}", "BETA") for i in range(2)
        ]
        seed_server(Settings(data_dir=data_dir), specs)
        login(page, server.url, "admin", server.admin_password)
        for name, path in [
            ("dashboard", "/dashboard"),
            ("agreement", "/dashboard/agreement"),
            ("jobs", "/dashboard/jobs"),
        ]:
            _fits(page, server.url + path, artifacts, f"admin-{name}")
        page.goto(server.url + "/admin/users")
        create_annotator_and_log_out(page)
        login(page, server.url, "annie", "annie-password-1")
        _fits(page, server.url + "/annotate", artifacts, "annotate")
        _fits(page, server.url + "/chat", artifacts, "chat")
        assert page.locator("kbd").first.is_visible()  # a mouse and keyboard (desktop Chromium): hints shown
        icon = page.request.get(server.url + "/favicon.ico")
        assert icon.status == 200 and icon.headers["content-type"].startswith("image/svg+xml")
        assert page.locator("link[rel=icon]").get_attribute("href") == "/static/favicon.svg"
