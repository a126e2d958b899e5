"""The README's first start, for real: ``rlhf serve`` on an empty SQLite data folder prints the
admin password, and logging in with it in Chromium shows the admin pages."""

from __future__ import annotations

import pytest

from tests.browser_support import create_annotator_and_log_out
from tests.server import running_server

pytestmark = pytest.mark.browser


def test_first_start_prints_password_and_admin_can_log_in(tmp_path, page, artifacts):
    with running_server(tmp_path / "var", args=("--no-worker",)) as server:
        assert server.admin_password, "no admin password printed:\n" + "".join(server.output)
        assert (tmp_path / "var" / "rlhf.sqlite3").exists()
        page.goto(server.url + "/")
        assert "/login" in page.url
        page.fill("input[name=username]", "admin")
        page.fill("input[name=password]", server.admin_password)
        page.click("button[type=submit]")
        page.wait_for_url(server.url + "/")
        assert "Welcome, admin" in page.inner_text("h1")
        page.click("nav >> text=Users")
        page.wait_for_url(server.url + "/admin/users")
        assert "admin" in page.inner_text("table")
        page.screenshot(path=str(artifacts / "admin-users.png"), full_page=True)
        create_annotator_and_log_out(page)
        page.wait_for_url("**/login")


def test_wrong_password_shows_message(tmp_path, page):
    with running_server(tmp_path / "var", args=("--no-worker",)) as server:
        page.goto(server.url + "/login")
        page.fill("input[name=username]", "admin")
        page.fill("input[name=password]", "wrong-password")
        page.click("button[type=submit]")
        assert "Unknown username or wrong password." in page.inner_text("[role=alert]")
