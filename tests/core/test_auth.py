"""Credentials and the lazy user (wsreject/auth.py, wsreject/tokens.py)."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
from asgiref.sync import sync_to_async
from django.conf import settings as django_settings
from django.contrib.auth import get_user_model
from django.contrib.auth.models import AnonymousUser
from django.test import Client
from django.utils import timezone
from django.utils.functional import LazyObject

from tests.helpers import bearer
from wsreject.auth import (
    STATE_KEY,
    AuthState,
    Credential,
    CredentialsMiddleware,
    aresolve_user,
    auth_state,
    loaded_user,
    read_credential,
)
from wsreject.middleware import DenialMiddleware, LoginRequiredMiddleware
from wsreject.testing import HandshakeCommunicator
from wsreject.tokens import authenticate, digest, issue_token

from .asgi_apps import lazy_probe_app, whoami_app
from .util import Recorder, denial_headers, disconnect, handshake, ws_scope

# --- parsing -----------------------------------------------------------------------------------

CREDENTIAL_CASES = {
    "bearer": ([(b"authorization", b"Bearer abc.DEF-123_~+/")], Credential("bearer", "abc.DEF-123_~+/")),
    "bearer-padding": ([(b"authorization", b"Bearer abc==")], Credential("bearer", "abc==")),
    "lowercase-scheme": ([(b"authorization", b"bearer abc")], Credential("bearer", "abc")),
    "uppercase-scheme": ([(b"authorization", b"BEARER abc")], Credential("bearer", "abc")),
    "header-name-case": ([(b"Authorization", b"Bearer abc")], Credential("bearer", "abc")),
    "several-spaces": ([(b"authorization", b"Bearer   abc")], Credential("bearer", "abc")),
    "basic": ([(b"authorization", b"Basic abc")], None),
    "bearer-alone": ([(b"authorization", b"Bearer")], None),
    "bearer-trailing-spaces": ([(b"authorization", b"Bearer  ")], None),
    "bearer-two-words": ([(b"authorization", b"Bearer abc def")], None),
    "bearer-trailing-space-after-token": ([(b"authorization", b"Bearer abc ")], None),
    "bearer-no-space": ([(b"authorization", b"Bearerabc")], None),
    "bearer-non-ascii-utf8": ([(b"authorization", "Bearer tökén".encode())], None),
    "bearer-non-ascii-latin1": ([(b"authorization", b"Bearer t\xf6ken")], None),
    "bearer-bad-chars": ([(b"authorization", b"Bearer a,b")], None),
    "padding-in-middle": ([(b"authorization", b"Bearer a=b")], None),
    "empty": ([(b"authorization", b"")], None),
    "two-authorization-headers": ([(b"authorization", b"Bearer abc"), (b"authorization", b"Bearer abc")], None),
    "no-headers": ([], None),
    "session-cookie": ([(b"cookie", b"sessionid=k123")], Credential("session", "k123")),
    "session-among-cookies": ([(b"cookie", b"a=1; sessionid=k123; b=2")], Credential("session", "k123")),
    "two-cookie-headers": ([(b"cookie", b"a=1"), (b"cookie", b"sessionid=k123")], Credential("session", "k123")),
    "other-cookies-only": ([(b"cookie", b"csrftoken=x; a=1")], None),
    "empty-session-cookie": ([(b"cookie", b"sessionid=")], None),
    "bearer-wins-over-cookie": ([(b"cookie", b"sessionid=k123"), (b"authorization", b"Bearer abc")], Credential("bearer", "abc")),
    "malformed-bearer-falls-back-to-cookie": ([(b"authorization", b"Basic abc"), (b"cookie", b"sessionid=k123")], Credential("session", "k123")),
}


@pytest.mark.parametrize("headers,expected", CREDENTIAL_CASES.values(), ids=CREDENTIAL_CASES.keys())
def test_read_credential(headers, expected):
    assert read_credential(ws_scope(headers=headers)) == expected


@pytest.mark.parametrize(
    "query_string", [b"token=abc", b"access_token=abc", b"authorization=Bearer%20abc", b"sessionid=k123"], ids=bytes.decode
)
def test_query_string_credentials_are_ignored(query_string):
    assert read_credential(ws_scope(query_string=query_string)) is None


def test_session_cookie_name_setting_is_honoured(settings):
    settings.SESSION_COOKIE_NAME = "mysession"
    assert read_credential(ws_scope(headers=[(b"cookie", b"sessionid=a; mysession=b")])) == Credential("session", "b")


# --- the middleware ----------------------------------------------------------------------------


async def run_credentials(headers):
    seen = []

    async def inner(scope, receive, send):
        seen.append(scope)

    scope = ws_scope(headers=headers)
    await CredentialsMiddleware(inner)(scope, Recorder().receive, Recorder().send)
    return scope, seen[0]


async def test_no_credential_is_anonymous_at_once(query_counter, thread_hop_counter):
    original, scope = await run_credentials([])
    assert isinstance(scope["user"], AnonymousUser)
    assert loaded_user(scope) is scope["user"]
    assert scope[STATE_KEY].credential is None
    assert scope["session"].session_key is None
    assert "user" not in original and STATE_KEY not in original, "the caller's scope is not modified"
    assert query_counter.count == 0 and thread_hop_counter.count == 0


async def test_a_credential_gives_a_lazy_unloaded_user():
    _, scope = await run_credentials(bearer("abc"))
    assert isinstance(scope["user"], LazyObject)
    assert loaded_user(scope) is None
    assert scope[STATE_KEY].credential == Credential("bearer", "abc")
    assert scope[STATE_KEY].invalid is False


def test_auth_state_without_the_middleware():
    assert auth_state({}).credential is None
    assert auth_state({"user": AnonymousUser()}).credential == Credential("external", "")
    state = AuthState(Credential("bearer", "x"))
    assert auth_state({STATE_KEY: state}) is state


# --- end to end on a login-required endpoint ---------------------------------------------------


def login_app():
    return DenialMiddleware(CredentialsMiddleware(LoginRequiredMiddleware(whoami_app)))


async def expect_user(headers, username):
    communicator, result = await handshake(login_app(), "/ws/private/", headers=headers)
    assert result.accepted, getattr(result, "body", None)
    assert json.loads(await communicator.receive_from()) == {"user": username}
    await disconnect(communicator)


async def expect_401(headers, detail):
    _, result = await handshake(login_app(), "/ws/private/", headers=headers)
    assert result.status_code == 401
    body = json.dumps({"detail": detail}, separators=(",", ":")).encode()
    assert result.body == body
    assert result.headers == denial_headers(body, (b"www-authenticate", b"Bearer"))


@pytest.mark.parametrize("scheme", [b"Bearer", b"bearer"], ids=bytes.decode)
async def test_valid_token(demo_tokens, scheme):
    await expect_user([(b"authorization", scheme + b" " + demo_tokens["alice"].encode())], "alice")


@pytest.mark.parametrize(
    "who", ["unknown", "inactive-dave", "deleted-erin", "truncated-alice"], ids=str
)
async def test_refused_tokens_are_invalid_credentials(demo_tokens, who):
    token = {
        "unknown": "no-such-token",
        "inactive-dave": demo_tokens["dave"],
        "deleted-erin": demo_tokens["erin"],
        "truncated-alice": demo_tokens["alice"][:-1],
    }[who]
    await expect_401(bearer(token), "Invalid credentials")


@pytest.mark.parametrize(
    "headers",
    [[(b"authorization", b"Basic abc")], [(b"authorization", b"Bearer")], [(b"authorization", b"Bearer  ")], [(b"authorization", "Bearer ü".encode())], []],
    ids=["basic", "bearer-alone", "bearer-trailing", "non-ascii", "none"],
)
async def test_malformed_or_missing_is_not_authenticated(headers):
    await expect_401(headers, "Not authenticated")


async def test_two_authorization_headers_count_as_none(demo_tokens):
    token = demo_tokens["alice"].encode()
    await expect_401([(b"authorization", b"Bearer " + token), (b"authorization", b"Bearer " + token)], "Not authenticated")


async def test_token_in_query_string_is_ignored(demo_tokens):
    communicator = HandshakeCommunicator(login_app(), f"/ws/private/?token={demo_tokens['alice']}")
    result = await communicator.handshake()
    assert (result.status_code, result.json()) == (401, {"detail": "Not authenticated"})


@pytest.mark.django_db(transaction=True)
async def test_expired_token_is_invalid_and_unexpired_is_fine():
    def make():
        user = get_user_model().objects.create(username="tess")
        _, expired = issue_token(user, expires=timezone.now() - timedelta(seconds=1))
        _, valid = issue_token(user, expires=timezone.now() + timedelta(hours=1))
        return expired, valid

    expired, valid = await sync_to_async(make)()
    await expect_401(bearer(expired), "Invalid credentials")
    await expect_user(bearer(valid), "tess")


def session_cookie_for(username):
    client = Client()
    client.force_login(get_user_model().objects.get(username=username))
    return client.cookies[django_settings.SESSION_COOKIE_NAME].value


async def test_session_cookie_resolves_the_user(demo_tokens):
    key = await sync_to_async(session_cookie_for)("alice")
    await expect_user([(b"cookie", f"csrftoken=x; sessionid={key}".encode())], "alice")


async def test_bearer_wins_over_session_cookie(demo_tokens):
    key = await sync_to_async(session_cookie_for)("alice")
    await expect_user([(b"cookie", f"sessionid={key}".encode())] + bearer(demo_tokens["bob"]), "bob")
    # an invalid bearer token is not rescued by a valid cookie
    await expect_401([(b"cookie", f"sessionid={key}".encode())] + bearer("no-such-token"), "Invalid credentials")


async def test_unknown_session_is_not_authenticated(demo_tokens):
    await expect_401([(b"cookie", b"sessionid=doesnotexist0123456789abcdefghij")], "Not authenticated")


async def test_session_is_invalidated_by_a_password_change(demo_tokens):
    key = await sync_to_async(session_cookie_for)("alice")

    def change_password():
        user = get_user_model().objects.get(username="alice")
        user.set_password("a new password")
        user.save()

    await sync_to_async(change_password)()
    await expect_401([(b"cookie", f"sessionid={key}".encode())], "Not authenticated")


async def test_session_of_an_inactive_user_is_not_authenticated(demo_tokens):
    key = await sync_to_async(session_cookie_for)("alice")
    await sync_to_async(lambda: get_user_model().objects.filter(username="alice").update(is_active=False))()
    await expect_401([(b"cookie", f"sessionid={key}".encode())], "Not authenticated")


# --- laziness ----------------------------------------------------------------------------------


async def test_an_endpoint_that_does_not_need_the_user_makes_no_query(demo_tokens, query_counter, thread_hop_counter):
    app = DenialMiddleware(CredentialsMiddleware(lazy_probe_app))
    communicator, result = await handshake(app, headers=bearer(demo_tokens["alice"]))
    assert result.accepted
    assert json.loads(await communicator.receive_from()) == {"loaded": False}
    await disconnect(communicator)
    assert query_counter.count == 0
    assert thread_hop_counter.count == 0


async def test_aresolve_user_loads_with_one_hop_then_none(demo_tokens, thread_hop_counter, query_counter):
    seen = []

    async def inner(scope, receive, send):
        seen.append(scope)

    await CredentialsMiddleware(inner)(ws_scope(headers=bearer(demo_tokens["alice"])), Recorder().receive, Recorder().send)
    scope = seen[0]
    user = await aresolve_user(scope)
    assert user.get_username() == "alice"
    assert thread_hop_counter.count == 1
    assert query_counter.count == 1, query_counter.items  # the token joined to its user
    assert loaded_user(scope) is not None
    again = await aresolve_user(scope)
    assert again.pk == user.pk
    assert thread_hop_counter.count == 1
    assert query_counter.count == 1


async def test_aresolve_user_for_an_invalid_token_marks_the_state(demo_tokens, thread_hop_counter):
    seen = []

    async def inner(scope, receive, send):
        seen.append(scope)

    await CredentialsMiddleware(inner)(ws_scope(headers=bearer("nope")), Recorder().receive, Recorder().send)
    scope = seen[0]
    user = await aresolve_user(scope)
    assert not user.is_authenticated
    assert scope[STATE_KEY].invalid is True
    assert thread_hop_counter.count == 1


async def test_aresolve_user_without_credential_takes_no_hop(thread_hop_counter):
    _, scope = await run_credentials([])
    assert isinstance(await aresolve_user(scope), AnonymousUser)
    assert thread_hop_counter.count == 0


async def test_aresolve_user_without_any_user():
    assert await aresolve_user({}) is None


# --- tokens and a custom authenticator ----------------------------------------------------------


@pytest.mark.django_db
def test_issue_token_stores_only_a_digest():
    user = get_user_model().objects.create(username="ivy")
    row, secret = issue_token(user, name="cli")
    assert row.digest == digest(secret) != secret
    assert row.prefix == secret[:8]
    assert secret not in str(row.__dict__.values())
    assert authenticate(secret) == user
    assert authenticate(secret + "x") is None


@pytest.mark.parametrize(
    "token,username,detail",
    [("good-token", "tokenuser", None), ("inactive-token", None, "Invalid credentials"), ("bad", None, "Invalid credentials")],
    ids=["good", "inactive", "unknown"],
)
async def test_custom_token_authenticator_setting(settings, token, username, detail):
    settings.WSREJECT = {"TOKEN_AUTHENTICATOR": "tests.core.asgi_apps.token_authenticator"}
    if username:
        await expect_user(bearer(token), username)
    else:
        await expect_401(bearer(token), detail)
