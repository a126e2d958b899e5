"""What a browser would submit for a launch form, read from the rendered page."""

from __future__ import annotations

from html.parser import HTMLParser


class _FormValues(HTMLParser):
    """The values a browser would submit for a launch form's ``param.*`` controls, as rendered."""

    def __init__(self) -> None:
        super().__init__()
        self.values: dict[str, str] = {}
        self._select: str | None = None
        self._text: str | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        name = a.get("name") or ""
        if tag == "input" and name.startswith("param."):
            if a.get("type") != "checkbox" or "checked" in a:
                self.values[name] = a.get("value") or ""
        elif tag == "select" and name.startswith("param."):
            self._select = name
        elif tag == "option" and self._select and "selected" in a:
            self.values[self._select] = a.get("value") or ""
        elif tag == "textarea" and name.startswith("param."):
            self._text = name
            self.values[name] = ""

    def handle_endtag(self, tag: str) -> None:
        self._select = None if tag == "select" else self._select
        self._text = None if tag == "textarea" else self._text

    def handle_data(self, data: str) -> None:
        if self._text:
            self.values[self._text] += data


def form_values(page: str) -> dict[str, str]:
    parser = _FormValues()
    parser.feed(page)
    return parser.values
