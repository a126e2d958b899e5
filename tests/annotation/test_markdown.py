"""Untrusted text becomes inert HTML: no raw HTML, no script URLs, no remote images."""

from __future__ import annotations

from html.parser import HTMLParser

import pytest

from app.annotation.markdown import render_markdown

PAYLOADS = [
    "<script>alert(1)</script>",
    '<img src=x onerror="alert(1)">',
    "<svg onload=alert(1)>",
    "</textarea><script>alert(1)</script>",
    "[click](javascript:alert(1))",
    '<a href="javascript:alert(1)">x</a>',
    "![img](http://evil.example/pixel.png)",
    "<iframe src='http://evil.example'></iframe>",
    "</script><script>alert(1)</script>",
]


class _Elements(HTMLParser):
    """Collects the elements and attributes a browser would build from the HTML."""

    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str | None]]] = []

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))


@pytest.mark.parametrize("payload", PAYLOADS)
def test_payloads_are_inert(payload):
    parser = _Elements()
    parser.feed(str(render_markdown(payload)))
    for tag, attrs in parser.tags:
        assert tag not in {"script", "img", "svg", "iframe", "object", "embed", "textarea", "style"}
        assert not any(name.startswith("on") for name in attrs)
        assert not (attrs.get("href") or "").lower().startswith("javascript")


def test_links_are_nofollow_and_shown_in_full():
    html = str(render_markdown("see [the docs](https://example.org/a?b=1)"))
    assert 'rel="noopener nofollow noreferrer"' in html
    assert "(https://example.org/a?b=1)" in html


def test_markdown_still_formats():
    html = str(render_markdown("**bold** and `code`\n\n- item"))
    assert "<strong>bold</strong>" in html and "<code>code</code>" in html and "<li>item</li>" in html
