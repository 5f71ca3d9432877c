"""Django REST framework's authentication, reused for handshakes (``pip install "wsreject[drf]"``).

* :class:`DRFAuthenticator` runs **any** DRF authentication class (knox, OAuth
  toolkit, your own) against the handshake, as DRF would run it against a
  ``GET`` request with the same headers and cookies;
* :class:`DRFTokenAuthenticator` reads DRF's ``Authorization: Token <key>``.

DRF's ``AuthenticationFailed`` becomes a ``401`` with its detail; its
``authenticate_header()`` becomes the challenge.
"""

from __future__ import annotations

from typing import Any

from django.apps import apps
from django.http import HttpRequest
from django.http.cookie import parse_cookie
from django.utils.module_loading import import_string
from rest_framework import exceptions as drf_exceptions
from rest_framework.authentication import BaseAuthentication, SessionAuthentication, TokenAuthentication
from rest_framework.request import Request

from ..scope import header_values
from ..types import Scope
from .base import AuthenticationFailed, BaseAuthenticator, authorization, bearer_challenge

__all__ = ["DRFAuthenticator", "DRFTokenAuthenticator", "drf_request"]


def drf_request(scope: Scope) -> Request:
    """A DRF ``Request`` for the handshake: a ``GET`` of its path with its headers and cookies."""
    request = HttpRequest()
    request.method = "GET"
    request.path = request.path_info = scope.get("path", "")
    meta: dict[str, Any] = {"REQUEST_METHOD": "GET", "QUERY_STRING": scope.get("query_string", b"").decode("latin-1")}
    for name, value in scope.get("headers", ()):
        key = name.decode("latin-1").upper().replace("-", "_")
        if key in ("CONTENT_TYPE", "CONTENT_LENGTH"):
            continue
        text = value.decode("latin-1")
        meta_key = f"HTTP_{key}"
        meta[meta_key] = f"{meta[meta_key]},{text}" if meta_key in meta else text
    client = scope.get("client")
    if client:
        meta["REMOTE_ADDR"] = client[0]
    request.META = meta
    cookies = header_values(scope, b"cookie")
    request.COOKIES = parse_cookie("; ".join(value.decode("latin-1") for value in cookies)) if cookies else {}
    return Request(request)


class DRFAuthenticator(BaseAuthenticator):
    """Authenticate with a DRF authentication class (an instance, a class or a dotted path).

    In ``AUTHENTICATORS``: ``("wsreject.authentication.drf.DRFAuthenticator",
    {"authentication_class": "knox.auth.TokenAuthentication", "header": "authorization"})``.
    The class decides whether the credential is its own (it returns None
    otherwise, and the next authenticator is asked). Only it can tell, so without
    ``header`` every handshake is offered to it — one worker-thread hop each, even
    without credentials; with ``header`` (the request header its credential
    travels in), a handshake without that header skips it at no cost.
    """

    scheme = None

    def __init__(self, authentication_class: Any, *, header: str | None = None) -> None:
        if isinstance(authentication_class, str):
            authentication_class = import_string(authentication_class)
        self.authentication = authentication_class() if isinstance(authentication_class, type) else authentication_class
        if not isinstance(self.authentication, BaseAuthentication):
            raise TypeError(f"{authentication_class!r} is not a DRF authentication class")
        self.header = header.lower().encode("latin-1") if header else None

    def get_credential(self, scope: Scope) -> Any:
        if self.header is not None and not header_values(scope, self.header):
            return None
        return True  # only the DRF class can tell; it answers None for "not mine"

    def authenticate(self, scope: Scope, credential: Any) -> Any:
        request = drf_request(scope)
        result = self.authentication.authenticate(request)
        if result is None:
            return None
        return result[0]

    def challenge(self, failure: AuthenticationFailed | None) -> str | None:
        header = self.authentication.authenticate_header(drf_request({"type": "websocket"}))
        return header or None

    def configuration_problems(self) -> list[tuple[str, str]]:
        """DRF's own classes need their apps: ``TokenAuthentication`` with DRF's ``Token`` model
        ``rest_framework.authtoken``, ``SessionAuthentication`` Django's sessions."""
        name = type(self.authentication).__name__
        if (
            isinstance(self.authentication, TokenAuthentication)
            and getattr(self.authentication, "model", None) is None  # DRF's Token, not a model of the project's
            and not apps.is_installed("rest_framework.authtoken")
        ):
            return [
                (
                    f"{name} looks tokens up in DRF's Token model, but 'rest_framework.authtoken' is not in "
                    "INSTALLED_APPS: every 'Authorization: Token ...' handshake would fail with a server error.",
                    "Add 'rest_framework.authtoken' to INSTALLED_APPS and run migrate.",
                )
            ]
        if isinstance(self.authentication, SessionAuthentication) and not apps.is_installed("django.contrib.sessions"):
            return [
                (
                    f"{name} reads Django's session, but 'django.contrib.sessions' is not in INSTALLED_APPS.",
                    "Add 'django.contrib.sessions' to INSTALLED_APPS and run migrate.",
                )
            ]
        return []

    def __repr__(self) -> str:
        return f"DRFAuthenticator({type(self.authentication).__name__})"


class DRFTokenAuthenticator(DRFAuthenticator):
    """DRF's ``authtoken``: ``Authorization: Token <key>`` (the keyword of ``TokenAuthentication``)."""

    def __init__(self, authentication_class: Any = TokenAuthentication) -> None:
        super().__init__(authentication_class)
        self.keyword = getattr(self.authentication, "keyword", "Token")

    def get_credential(self, scope: Scope) -> Any:
        found = authorization(scope)
        return found[1] if found and found[0].lower() == self.keyword.lower() else None

    def authenticate(self, scope: Scope, credential: Any) -> Any:
        """DRF's refusals ("Invalid token.", "User inactive or deleted.") say no more than
        "Invalid credentials", as for every other token: the account's state is not told."""
        try:
            return super().authenticate(scope, credential)
        except drf_exceptions.AuthenticationFailed:
            raise AuthenticationFailed() from None

    def challenge(self, failure: AuthenticationFailed | None) -> str | None:
        return bearer_challenge(self.keyword, None)
