"""Headless Debian Chromium driven by Playwright's Python package (never a browser download).

The fixtures are registered once, in tests/conftest.py, so every folder shares one browser per run
(two sync Playwright instances in one process cannot coexist)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import IN_CI

CHROMIUM = os.environ.get("RLHF_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
]
ARTIFACTS = Path(__file__).resolve().parents[1] / "test-artifacts"  # the repository root's, as `make clean` expects


def _unavailable(reason: str) -> None:
    if IN_CI:
        pytest.fail(f"{reason} (CI=true: browser tests may not skip)", pytrace=False)
    pytest.skip(reason)


@pytest.fixture(scope="session")
def browser() -> Iterator:
    if not Path(CHROMIUM).exists():
        _unavailable(f"{CHROMIUM} not found; install Debian's chromium and chromium-driver")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        _unavailable("the playwright package is not installed")
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        yield browser
        browser.close()


@pytest.fixture()
def page(browser) -> Iterator:
    context = browser.new_context()
    page = context.new_page()
    # The servers under test share two cores with model work (generation, training jobs): give
    # navigations and waits room instead of Playwright's 30 s default.
    page.set_default_timeout(90_000)
    yield page
    context.close()


@pytest.fixture(scope="session")
def artifacts() -> Path:
    ARTIFACTS.mkdir(exist_ok=True)
    return ARTIFACTS


def login(page, url: str, username: str, password: str) -> None:
    """Log in through the real form with the keyboard, as every browser test's user does first."""
    page.goto(url + "/login")
    page.fill("input[name=username]", username)
    page.fill("input[name=password]", password)
    page.keyboard.press("Enter")
    page.wait_for_url(url + "/")


def create_annotator_and_log_out(page, username: str = "annie", password: str = "annie-password-1") -> None:
    """On the Users page, as an admin: create an annotator through the form, see it confirmed, log out."""
    page.fill("input[name=username]", username)
    page.fill("input[name=password]", password)
    page.select_option("select[name=role]", "annotator")
    page.click("text=Create user")
    assert "User created." in page.inner_text("main")
    page.click("text=Log out")


def wait_for_annotate_keys(page) -> None:
    """Until static/annotate.js has bound the judging keys: a key pressed before that is lost, and on a loaded
    machine the first keys after a navigation could arrive before the page's script ran."""
    page.wait_for_selector("#judge-form[data-keys=ready]", state="attached")
