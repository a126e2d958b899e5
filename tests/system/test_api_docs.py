"""The API as programs expect it: ``/docs`` from the app's own assets, every operation tagged and described,
every refusal documented as the one ``Problem`` schema the handlers send."""

from __future__ import annotations

from html.parser import HTMLParser

from app.http_errors import PROBLEM_RESPONSE, is_json_path
from app.openapi import TAGS
from app.security_headers import CONTENT_SECURITY_POLICY

PROBLEM_REF = "#/components/schemas/Problem"


class Assets(HTMLParser):
    """Every URL a page loads (script src, link href) and whether it has inline script."""

    def __init__(self) -> None:
        super().__init__()
        self.urls: list[str] = []
        self.inline_script = False
        self._in_script = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = dict(attrs)
        if tag == "script":
            self._in_script = True
            if not values.get("src"):
                self.inline_script = True
        for name in ("src", "href"):
            if values.get(name) and tag in ("script", "link", "img"):
                self.urls.append(str(values[name]))

    def handle_endtag(self, tag: str) -> None:
        self._in_script = self._in_script and tag != "script"

    def handle_data(self, data: str) -> None:
        self.inline_script = self.inline_script or (self._in_script and bool(data.strip()))


def test_docs_loads_only_same_origin_assets_that_exist(client):
    page = client.get("/docs")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert page.headers["content-security-policy"] == CONTENT_SECURITY_POLICY  # no exception made for /docs
    assets = Assets()
    assets.feed(page.text)
    assert not assets.inline_script, "the CSP forbids inline script"
    assert any("swagger-ui-bundle.js" in url for url in assets.urls)
    for url in assets.urls:
        assert url.startswith("/") and not url.startswith("//"), f"{url} is not on this origin"
        assert client.get(url).status_code == 200, f"{url} is missing (make install vendors swagger-ui-dist)"
    assert 'data-openapi="/api/v1/openapi.json"' in page.text


def test_every_operation_is_tagged_described_and_summarised(client):
    schema = client.get("/api/v1/openapi.json").json()
    described = {tag["name"] for tag in schema["tags"] if tag.get("description")}
    assert described == {tag["name"] for tag in TAGS}
    operations = [(method, path, op) for path, ops in schema["paths"].items() for method, op in ops.items()]
    assert len(operations) > 30
    for method, path, op in operations:
        where = f"{method.upper()} {path}"
        assert op.get("tags") and set(op["tags"]) <= described, f"{where}: tags {op.get('tags')} not described"
        assert op.get("summary") and op.get("description", "").strip(), f"{where} has no summary or description"


def test_the_document_covers_the_json_api_and_nothing_else(client):
    paths = client.get("/api/v1/openapi.json").json()["paths"]
    assert all(is_json_path(path) for path in paths), [p for p in paths if not is_json_path(p)]
    assert "/healthz" in paths and "/api/v1/jobs" in paths and "/docs" not in paths and "/login" not in paths


def test_every_error_response_is_the_one_problem_schema(client):
    schema = client.get("/api/v1/openapi.json").json()
    errors = [name for name in schema["components"]["schemas"] if "error" in name.lower()]
    assert errors == [], f"error schemas besides Problem: {errors}"
    assert schema["components"]["schemas"]["Problem"]["required"] == ["type", "title", "status", "detail"]
    for path, ops in schema["paths"].items():
        for method, op in ops.items():
            codes = [code for code in op["responses"] if code[0] in "45"]
            assert codes == ["4XX"], f"{method.upper()} {path}: error responses {codes}"
            assert op["responses"]["4XX"] == PROBLEM_RESPONSE
            assert op["responses"]["4XX"]["content"]["application/problem+json"]["schema"] == {"$ref": PROBLEM_REF}


def test_a_real_refusal_matches_the_documented_schema(client):
    answer = client.get("/api/v1/jobs")  # no token
    assert answer.status_code == 401 and answer.headers["content-type"] == "application/problem+json"
    assert {"type", "title", "status", "detail"} <= set(answer.json())
