"""``/docs`` works in a real browser under the app's Content-Security-Policy: Swagger UI starts from the
vendored assets, lists the API's operations, and nothing is refused or fetched from another origin."""

from __future__ import annotations

import pytest

from tests.server import running_server

pytestmark = pytest.mark.browser


def test_swagger_ui_renders_the_api_with_no_csp_violation_and_no_other_origin(tmp_path, page, artifacts):
    problems: list[str] = []
    page.on("console", lambda message: problems.append(message.text) if message.type == "error" else None)
    page.on("pageerror", lambda error: problems.append(str(error)))
    requested: list[str] = []
    page.on("request", lambda request: requested.append(request.url))
    with running_server(tmp_path / "var", args=("--no-worker",)) as server:
        page.goto(server.url + "/docs")
        page.wait_for_selector(".swagger-ui .opblock-tag", state="visible")
        tags = page.locator(".swagger-ui .opblock-tag").all_inner_texts()
        page.locator(".swagger-ui .opblock-summary-path", has_text="/api/v1/jobs").first.wait_for()  # operations listed
        page.screenshot(path=str(artifacts / "api-docs.png"), full_page=True)
        assert "RLHF Loop" in page.locator(".swagger-ui .info .title").inner_text()
        others = [url for url in requested if not url.startswith((server.url, "data:"))]
    assert any(tag.startswith("jobs") for tag in tags) and any(tag.startswith("annotation") for tag in tags), tags
    assert problems == [], problems  # a CSP refusal shows up here ("Refused to …")
    assert others == [], f"requests to other origins: {others}"
