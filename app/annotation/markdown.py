"""Markdown for untrusted text (model output, imported prompts): rendered without raw HTML,
then sanitised by nh3 (Ammonia), so nothing a model writes can run in an annotator's browser.

Links keep ``rel="noopener nofollow"`` and are followed by their full address, so an annotator
sees where a link goes; images are dropped (no remote fetches from the page).
"""

from __future__ import annotations

from functools import lru_cache

import nh3
from markdown_it import MarkdownIt
from markupsafe import Markup, escape

ALLOWED_TAGS = {
    "p",
    "br",
    "hr",
    "strong",
    "em",
    "code",
    "pre",
    "blockquote",
    "ul",
    "ol",
    "li",
    "h1",
    "h2",
    "h3",
    "h4",
    "h5",
    "h6",
    "a",
    "table",
    "thead",
    "tbody",
    "tr",
    "th",
    "td",
    "del",
    "span",
}
ALLOWED_ATTRIBUTES = {"a": {"href", "title"}, "code": {"class"}, "th": {"align"}, "td": {"align"}, "span": {"class"}}
URL_SCHEMES = {"http", "https", "mailto"}


def _render_link_close(self, tokens, idx, options, env) -> str:  # noqa: ANN001 - markdown-it renderer rule
    """Close the link, then show its full target as plain (escaped) text."""
    opening = next(t for t in reversed(tokens[:idx]) if t.type == "link_open")
    href = opening.attrGet("href") or ""
    return f'</a> <span class="link-target">({escape(href)})</span>'


@lru_cache(maxsize=1)
def _parser() -> MarkdownIt:
    md = MarkdownIt("commonmark", {"html": False, "linkify": False}).enable("table").enable("strikethrough")
    md.disable("image")
    md.add_render_rule("link_close", _render_link_close)
    return md


def render_markdown(text: str) -> Markup:
    html = _parser().render(text or "")
    clean = nh3.clean(
        html,
        tags=ALLOWED_TAGS,
        attributes=ALLOWED_ATTRIBUTES,
        url_schemes=URL_SCHEMES,
        link_rel="noopener nofollow noreferrer",
        strip_comments=True,
    )
    return Markup(clean)
