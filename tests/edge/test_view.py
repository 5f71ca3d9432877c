"""The forward-auth view in process: who may call it, what a description must look like,
the two answer shapes (verbatim, nginx's 401/403 + signed denial) and the signed tokens."""

from __future__ import annotations

import time

import pytest
from django.core import signing
from django.http import HttpResponse
from django.test import AsyncRequestFactory, override_settings

from wsreject.denial import DenyHandshake
from wsreject.edge import views
from wsreject.edge.signing import denial_from_token, denial_token, vouch, vouched_user_id
from wsreject.edge.target import BadTarget, parse_target

VIEWS = {
    "/wsreject/edge/auth/": views.forward_auth,
    "/wsreject/edge/auth/nginx/": views.forward_auth_nginx,
    "/wsreject/edge/denial/": views.render_denial,
}


async def ask(path: str, headers: dict[str, str] | None = None, address: str = "127.0.0.1") -> HttpResponse:
    """Call the view mounted at ``path`` as the caller at ``address`` would."""
    request = AsyncRequestFactory().get(path, headers=headers or {})
    request.META["REMOTE_ADDR"] = address
    view = VIEWS[path]
    response = view(request)
    return await response if not isinstance(response, HttpResponse) else response


@pytest.mark.parametrize(
    "target",
    [
        "", "ws/echo/", "http://evil.example/ws/echo/", "//evil.example/ws/echo/", "*", "/ws/echo/#x",
        "/ws/ echo/", "/ws/echo/\r\nX-Injected: 1", "/ws/\x00/", "/ws/\x7f/", "/ws/é/", "/ws/%zz/", "/ws/%4/",
        "/" + "a" * 9000,
    ],
)  # fmt: skip
def test_a_target_no_server_would_take_is_refused(target: str) -> None:
    with pytest.raises(BadTarget):
        parse_target(target)


def test_a_target_is_decoded_as_the_servers_do() -> None:
    target = parse_target("/ws/rooms/caf%C3%A9%2F/?ticket=a%20b&x=1")
    assert target.path == "/ws/rooms/café//"
    assert target.raw_path == b"/ws/rooms/caf%C3%A9%2F/" and target.query_string == b"ticket=a%20b&x=1"
    assert parse_target("/ws/%FF/").path == "/ws/\ufffd/"


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("path", ["/wsreject/edge/auth/", "/wsreject/edge/auth/nginx/"])
async def test_only_a_configured_proxy_is_answered(path: str) -> None:
    described = {"X-Original-URI": "/ws/echo/"}
    with override_settings(WSREJECT_EDGE={"TRUSTED_PROXIES": ["10.0.0.0/8"]}):
        refused = await ask(path, described, "127.0.0.1")
        admitted = await ask(path, described, "10.1.2.3")
    assert refused.status_code == 403 and admitted.status_code == 200
    with override_settings(WSREJECT_EDGE={}):  # nobody configured: nobody is answered
        assert (await ask(path, described, "127.0.0.1")).status_code == 403


@pytest.mark.django_db(transaction=True)
async def test_a_bad_description_is_400_verbatim_and_carried_for_nginx() -> None:
    for headers in (
        {},
        {"X-Original-URI": "http://evil/ws/echo/"},
        {"X-Forwarded-Uri": "/ws/echo/", "X-Forwarded-Method": "POST"},
    ):
        response = await ask("/wsreject/edge/auth/", headers)
        assert response.status_code == 400, headers
        assert response["Content-Type"] == "application/json"
        nginx = await ask("/wsreject/edge/auth/nginx/", headers)
        assert nginx.status_code == 403 and denial_from_token(nginx["X-Wsreject-Denial"]).status_code == 400


@pytest.mark.django_db(transaction=True)
async def test_a_denial_is_the_handshakes_and_nginx_gets_it_signed() -> None:
    headers = {"X-Original-URI": "/ws/private/"}
    direct = await ask("/wsreject/edge/auth/", headers)
    assert direct.status_code == 401 and direct["WWW-Authenticate"] == "Bearer"
    assert direct.content == b'{"detail":"Not authenticated"}'
    nginx = await ask("/wsreject/edge/auth/nginx/", headers)
    assert nginx.status_code == 401 and nginx.content == b""
    rendered = await ask("/wsreject/edge/denial/", {"X-Wsreject-Denial": nginx["X-Wsreject-Denial"]})
    assert (rendered.status_code, rendered["WWW-Authenticate"], rendered.content) == (401, "Bearer", direct.content)


@pytest.mark.django_db(transaction=True)
async def test_the_renderer_refuses_a_forged_token_and_strangers() -> None:
    token = denial_token(DenyHandshake(429, "x", headers={"Retry-After": "3"}).response())
    forged = token[:-2] + ("AA" if not token.endswith("AA") else "BB")
    assert (await ask("/wsreject/edge/denial/", {"X-Wsreject-Denial": forged})).status_code == 403
    assert (await ask("/wsreject/edge/denial/", {"X-Wsreject-Denial": token}, "192.0.2.1")).status_code == 403
    good = await ask("/wsreject/edge/denial/", {"X-Wsreject-Denial": token})
    assert (good.status_code, good["Retry-After"]) == (429, "3")


def test_a_vouch_holds_for_its_target_only_and_not_for_long(monkeypatch) -> None:
    token = vouch(b"/ws/private/", b"", 7)
    assert vouched_user_id(token, b"/ws/private/", b"", max_age=10) == (True, "7")
    assert vouched_user_id(token, b"/ws/staff/", b"", max_age=10) == (False, None)
    assert vouched_user_id(token + "x", b"/ws/private/", b"", max_age=10) == (False, None)
    later = time.time() + 11
    monkeypatch.setattr(signing.time, "time", lambda: later)
    assert vouched_user_id(token, b"/ws/private/", b"", max_age=10) == (False, None)
