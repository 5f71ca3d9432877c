"""Read an admin change form from its HTML, as a browser without JavaScript would submit it."""

from __future__ import annotations

from html.parser import HTMLParser


class _FormParser(HTMLParser):
    def __init__(self, form_id: str | None) -> None:
        super().__init__(convert_charrefs=True)
        self.form_id = form_id
        self.in_form = False
        self.done = False
        self.fields: list[tuple[str, str]] = []
        self._select: str | None = None
        self._textarea: str | None = None
        self._text: list[str] = []

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if self.done:
            return
        if tag == "form" and a.get("method", "").lower() == "post" and self.form_id in (None, a.get("id")):
            self.in_form = True
            return
        if not self.in_form:
            return
        name = a.get("name")
        if tag == "input" and name and "disabled" not in a:
            kind = a.get("type", "text").lower()
            if kind in ("checkbox", "radio"):
                if "checked" in a:
                    self.fields.append((name, a.get("value", "on")))
            elif kind not in ("submit", "button", "image", "file", "reset"):
                self.fields.append((name, a.get("value", "")))
        elif tag == "select" and name:
            self._select = name
        elif tag == "option" and self._select and "selected" in a:
            self.fields.append((self._select, a.get("value", "")))
        elif tag == "textarea" and name:
            self._textarea, self._text = name, []

    def handle_endtag(self, tag):
        if tag == "form" and self.in_form:
            self.in_form, self.done = False, True
        elif tag == "select":
            self._select = None
        elif tag == "textarea" and self._textarea:
            self.fields.append((self._textarea, "".join(self._text).lstrip("\n")))
            self._textarea = None

    def handle_data(self, data):
        if self._textarea:
            self._text.append(data)


def form_fields(html: str, form_id: str | None = None) -> list[tuple[str, str]]:
    """The (name, value) pairs the first POST form (or ``form_id``) would submit."""
    parser = _FormParser(form_id)
    parser.feed(html)
    if not parser.done and not parser.fields:
        raise AssertionError(f"no POST form {form_id or ''} in the page")
    return parser.fields


def replace(fields: list[tuple[str, str]], name: str, values) -> list[tuple[str, str]]:
    """``fields`` with every value of ``name`` replaced by ``values`` (a str or a list)."""
    values = [values] if isinstance(values, str) else list(values)
    return [(k, v) for k, v in fields if k != name] + [(name, v) for v in values]


def values(fields: list[tuple[str, str]], name: str) -> list[str]:
    return [v for k, v in fields if k == name]


def as_data(fields: list[tuple[str, str]]) -> dict[str, list[str]]:
    """For ``django.test.Client.post``: every name with the list of its values."""
    data: dict[str, list[str]] = {}
    for name, value in fields:
        data.setdefault(name, []).append(value)
    return data
