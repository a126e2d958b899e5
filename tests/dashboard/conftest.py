"""The dashboard's browser test uses the Playwright fixtures of tests/browser (Debian Chromium)."""

from tests.browser.conftest import artifacts, browser, page  # noqa: F401 - fixtures, re-exported for this folder
