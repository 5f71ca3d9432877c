"""The Django admin of a running demo server, driven over HTTP like a browser without JavaScript.

A change made through it happens inside the server process, so that process sees it at
its next handshake whatever its cache (no waiting for another process's staleness bound).
"""

from __future__ import annotations

import re
from http.cookiejar import CookieJar
from urllib.error import HTTPError
from urllib.parse import urlencode
from urllib.request import (
    HTTPCookieProcessor,
    HTTPRedirectHandler,
    ProxyHandler,
    Request,
    build_opener,
)

from tests.support.servers import Server

from .html_forms import form_fields, replace

ADMIN_USERNAME = "root"
ADMIN_PASSWORD = "test-admin-password"
CREATE_ADMIN = (
    "from django.contrib.auth import get_user_model\n"
    f"get_user_model().objects.create_superuser({ADMIN_USERNAME!r}, 'root@example.com', {ADMIN_PASSWORD!r})\n"
)

RULE_DEFAULTS = {"enabled": "on", "retry_after": "120", "disabled_detail": "Down for maintenance", "deny_status": "403"}


class _NoRedirect(HTTPRedirectHandler):
    def redirect_request(self, *args, **kwargs):  # type: ignore[no-untyped-def]
        return None  # a 302 is the answer (a saved form)


class AdminClient:
    """Cookies and CSRF tokens as a browser sends them; every request has a timeout."""

    def __init__(self, server: Server) -> None:
        self.server = server
        self.opener = build_opener(ProxyHandler({}), HTTPCookieProcessor(CookieJar()), _NoRedirect())

    def request(self, path: str, fields: list[tuple[str, str]] | None = None) -> tuple[int, str]:
        data = urlencode(fields).encode() if fields is not None else None
        try:
            with self.opener.open(Request(self.server.http_url(path), data=data), timeout=20) as response:
                return response.status, response.read().decode()
        except HTTPError as error:
            return error.code, error.read().decode()

    def login(self) -> AdminClient:
        status, page = self.request("/admin/login/")
        assert status == 200, page[:500]
        fields = replace(replace(form_fields(page, "login-form"), "username", ADMIN_USERNAME), "password", ADMIN_PASSWORD)
        status, page = self.request("/admin/login/?next=/admin/", fields)
        assert status == 302, f"admin login failed: {page[:1000]}"
        return self

    def submit(self, path: str, form_id: str, **changes: str | list[str]) -> None:
        """Open the form at ``path``, change fields, save; the admin must redirect (saved)."""
        status, page = self.request(path)
        assert status == 200, f"{path}: {status}"
        fields = form_fields(page, form_id)
        for name, value in changes.items():
            fields = replace(fields, name, value)
        status, page = self.request(path, fields + [("_save", "Save")])
        errors = re.findall(r'<ul class="errorlist[^"]*"[^>]*>(.*?)</ul>', page, re.DOTALL)
        assert status == 302, f"{path} not saved ({status}): {errors or page[:1500]}"

    def add_rule(self, **fields: str | list[str]) -> None:
        self.submit("/admin/wsreject/accessrule/add/", "accessrule_form", **{**RULE_DEFAULTS, **fields})

    def object_id(self, changelist: str, label: str) -> str:
        """The id of the object whose changelist link reads ``label``."""
        status, page = self.request(f"{changelist}?q={label}")
        assert status == 200, f"{changelist}: {status}"
        end = page.index(f'">{label}</a>')
        start = page.rindex(changelist, 0, end) + len(changelist)
        return page[start:end].split("/")[0]
