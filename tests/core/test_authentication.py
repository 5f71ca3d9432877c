"""Authenticators, the credentials middleware and the lazy user (wsreject/authentication/)."""

from __future__ import annotations

import json
import time
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
from wsreject.authentication import (
    AuthenticationFailed,
    AuthState,
    CredentialsMiddleware,
    SessionAuthenticator,
    aresolve_user,
    auth_state,
    authorization,
)
from wsreject.authentication.credentials import STATE_KEY, UNRECOGNISED_BEARER, candidates
from wsreject.authentication.tokens import authenticate, digest, issue_token, new_secret, well_formed
from wsreject.conf import wsreject_settings
from wsreject.middleware import DenialMiddleware, LoginRequiredMiddleware
from wsreject.scope import loaded_user
from wsreject.testing import HandshakeCommunicator

from .asgi_apps import lazy_probe_app, whoami_app
from .util import Recorder, denial_headers, disconnect, handshake, ws_scope

INVALID = b'Bearer error="invalid_token", error_description="Invalid credentials"'
EXPIRED = b'Bearer error="invalid_token", error_description="Token expired"'

# --- reading the Authorization header ---------------------------------------------------------

AUTHORIZATION_CASES = {
    "bearer": ([(b"authorization", b"Bearer abc.DEF-123_~+/")], ("Bearer", "abc.DEF-123_~+/")),
    "bearer-padding": ([(b"authorization", b"Bearer abc==")], ("Bearer", "abc==")),
    "lowercase-scheme": ([(b"authorization", b"bearer abc")], ("bearer", "abc")),
    "header-name-case": ([(b"Authorization", b"Bearer abc")], ("Bearer", "abc")),
    "several-spaces": ([(b"authorization", b"Bearer   abc")], ("Bearer", "abc")),
    "token-scheme": ([(b"authorization", b"Token abc")], ("Token", "abc")),
    "basic": ([(b"authorization", b"Basic abc")], ("Basic", "abc")),
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
}


@pytest.mark.parametrize("headers,expected", AUTHORIZATION_CASES.values(), ids=AUTHORIZATION_CASES.keys())
def test_authorization(headers, expected):
    assert authorization(ws_scope(headers=headers)) == expected


def kinds(headers, **extra):
    """The demo's authenticators that recognise something in the handshake."""
    return [type(a).__name__ for a, _ in candidates(ws_scope(headers=headers, **extra), wsreject_settings.authenticators())]


SESSION_KEY = b"k123" * 8  # the shape of Django's keys: 32 of [a-z0-9]

CANDIDATE_CASES = {
    "nothing": ([], {}, []),
    "wsreject-token": ([(b"authorization", b"Bearer wsr_x")], {}, ["AccessTokenAuthenticator", "UnrecognisedBearer"]),
    "jwt": ([(b"authorization", b"Bearer a.b.c")], {}, ["SimpleJWTAuthenticator", "UnrecognisedBearer"]),
    "random-bearer": ([(b"authorization", b"Bearer abc")], {}, ["UnrecognisedBearer"]),
    "drf-token": ([(b"authorization", b"Token abc")], {}, ["DRFTokenAuthenticator"]),
    "basic": ([(b"authorization", b"Basic abc")], {}, []),
    "session": ([(b"cookie", b"a=1; sessionid=" + SESSION_KEY)], {}, ["SessionAuthenticator"]),
    "two-cookie-headers": ([(b"cookie", b"a=1"), (b"cookie", b"sessionid=" + SESSION_KEY)], {}, ["SessionAuthenticator"]),
    "not-a-session-key": ([(b"cookie", b"a=1; sessionid=k123")], {}, []),
    "empty-session-cookie": ([(b"cookie", b"sessionid=")], {}, []),
    "bearer-beats-cookie": ([(b"cookie", b"sessionid=k"), (b"authorization", b"Bearer wsr_x")], {}, ["AccessTokenAuthenticator", "UnrecognisedBearer"]),
    "basic-keeps-cookie": ([(b"authorization", b"Basic abc"), (b"cookie", b"sessionid=" + SESSION_KEY)], {}, ["SessionAuthenticator"]),
    "ticket": ([], {"query_string": b"ticket=wst_abc"}, ["TicketAuthenticator"]),
    "two-tickets": ([], {"query_string": b"ticket=wst_a&ticket=wst_b"}, []),
    "query-token-ignored": ([], {"query_string": b"token=wsr_abc&access_token=abc"}, []),
}


@pytest.mark.parametrize("headers,extra,expected", CANDIDATE_CASES.values(), ids=CANDIDATE_CASES.keys())
def test_candidates(headers, extra, expected):
    assert kinds(headers, **extra) == expected


def test_session_cookie_name_setting_is_honoured(settings):
    settings.SESSION_COOKIE_NAME = "mysession"
    cookie = b"sessionid=" + b"a" * 32 + b"; mysession=" + b"b" * 32
    found = candidates(ws_scope(headers=[(b"cookie", cookie)]), [SessionAuthenticator()])
    assert [credential for _, credential in found] == ["b" * 32]


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
    assert scope[STATE_KEY].candidates == ()
    assert scope["session"].session_key is None
    assert "user" not in original and STATE_KEY not in original, "the caller's scope is not modified"
    assert query_counter.count == 0 and thread_hop_counter.count == 0


async def test_a_credential_is_resolved_before_the_inner_application(thread_hop_counter):
    """As Channels' AuthMiddleware: an async consumer may read scope["user"] on the event loop."""
    _, scope = await run_credentials(bearer("wsr_abc"))
    assert not isinstance(scope["user"], LazyObject), "a plain user object: nothing left to load"
    assert loaded_user(scope) is scope["user"] and not scope["user"].is_authenticated
    assert scope[STATE_KEY].presented and scope[STATE_KEY].failure.detail == "Invalid credentials"
    assert thread_hop_counter.count == 0, "a malformed wsreject token is refused on the event loop"


def test_auth_state_without_the_middleware():
    assert not auth_state({}).presented
    assert auth_state({"user": AnonymousUser()}).presented, "another middleware resolved the user: trust it"
    state = AuthState([(UNRECOGNISED_BEARER, "x")])
    assert auth_state({STATE_KEY: state}) is state


# --- end to end on a login-required endpoint ---------------------------------------------------


def login_app():
    return DenialMiddleware(CredentialsMiddleware(LoginRequiredMiddleware(whoami_app)))


async def expect_user(headers, username, path="/ws/private/"):
    communicator, result = await handshake(login_app(), path, headers=headers)
    assert result.accepted, getattr(result, "body", None)
    assert json.loads(await communicator.receive_from()) == {"user": username}
    await disconnect(communicator)


async def expect_401(headers, detail, challenge=b"Bearer", path="/ws/private/"):
    _, result = await handshake(login_app(), path, headers=headers)
    assert result.status_code == 401
    body = json.dumps({"detail": detail}, separators=(",", ":")).encode()
    assert result.body == body
    assert result.headers == denial_headers(body, (b"www-authenticate", challenge))


@pytest.mark.parametrize("scheme", [b"Bearer", b"bearer"], ids=bytes.decode)
async def test_valid_token(demo_tokens, scheme):
    await expect_user([(b"authorization", scheme + b" " + demo_tokens["alice"].encode())], "alice")


@pytest.mark.parametrize("who", ["unknown", "random-wsr", "inactive-dave", "deleted-erin", "truncated-alice", "flipped-mac"])
async def test_refused_tokens_are_invalid_credentials(demo_tokens, who):
    alice = demo_tokens["alice"]
    token = {
        "unknown": "no-such-token",
        "random-wsr": "wsr_" + "a" * 62,
        "inactive-dave": demo_tokens["dave"],
        "deleted-erin": demo_tokens["erin"],
        "truncated-alice": alice[:-1],
        "flipped-mac": alice[:-1] + ("A" if alice[-1] != "A" else "B"),
    }[who]
    await expect_401(bearer(token), "Invalid credentials", INVALID)


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
async def test_expired_token_says_so_and_unexpired_is_fine():
    def make():
        user = get_user_model().objects.create(username="tess")
        _, expired = issue_token(user, expires=timezone.now() - timedelta(seconds=1))
        _, valid = issue_token(user, expires=timezone.now() + timedelta(hours=1))
        return expired, valid

    expired, valid = await sync_to_async(make)()
    await expect_401(bearer(expired), "Token expired", EXPIRED)
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
    await expect_401([(b"cookie", f"sessionid={key}".encode())] + bearer("no-such-token"), "Invalid credentials", INVALID)


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


# --- laziness and the event loop -----------------------------------------------------------------


async def test_the_user_is_loaded_for_the_consumer_and_then_cached(demo_tokens, query_counter, thread_hop_counter):
    app = DenialMiddleware(CredentialsMiddleware(lazy_probe_app))
    for expected_hops in (1, 0):  # cold: one worker thread; warm: none, and no query
        before_hops, before_queries = thread_hop_counter.count, query_counter.count
        communicator, result = await handshake(app, headers=bearer(demo_tokens["alice"]))
        assert result.accepted
        assert json.loads(await communicator.receive_from()) == {"loaded": True}
        await disconnect(communicator)
        assert thread_hop_counter.count - before_hops == expected_hops
    assert query_counter.count == before_queries


async def resolved(headers):
    _, scope = await run_credentials(headers)
    return scope, await aresolve_user(scope)


async def test_aresolve_user_loads_with_one_hop_then_from_the_cache(demo_tokens, thread_hop_counter, query_counter):
    scope, user = await resolved(bearer(demo_tokens["alice"]))
    assert user.get_username() == "alice"
    assert thread_hop_counter.count == 1
    assert query_counter.count == 2, query_counter.items  # the token's owner, then the user
    assert loaded_user(scope) is not None
    _, again = await resolved(bearer(demo_tokens["alice"]))
    assert again.pk == user.pk
    assert (thread_hop_counter.count, query_counter.count) == (1, 2), "a warm local cache: no hop, no query"


async def test_a_forged_token_costs_no_query_and_no_hop(demo_tokens, thread_hop_counter, query_counter):
    forged = "wsr_" + demo_tokens["alice"][4:-3] + "xyz"
    scope, user = await resolved(bearer(forged))
    assert not user.is_authenticated
    assert scope[STATE_KEY].failure.detail == "Invalid credentials"
    assert (thread_hop_counter.count, query_counter.count) == (0, 0)


async def test_aresolve_user_without_credential_takes_no_hop(thread_hop_counter):
    _, scope = await run_credentials([])
    assert isinstance(await aresolve_user(scope), AnonymousUser)
    assert thread_hop_counter.count == 0


async def test_aresolve_user_without_any_user():
    assert await aresolve_user({}) is None


# --- wsreject's tokens -----------------------------------------------------------------------------


@pytest.mark.django_db
def test_issue_token_stores_only_a_digest():
    user = get_user_model().objects.create(username="ivy")
    row, secret = issue_token(user, name="cli")
    assert secret.startswith("wsr_") and len(secret) == 66 and well_formed(secret)
    assert row.digest == digest(secret) != secret
    assert row.prefix == secret[:8]
    assert secret not in str(row.__dict__.values())
    assert authenticate(secret) == user
    with pytest.raises(AuthenticationFailed):
        authenticate(secret + "x")


def test_the_mac_depends_on_the_secret_key(settings):
    secret, _, _ = new_secret()
    assert well_formed(secret)
    settings.SECRET_KEY = "another key entirely, long enough to be a key"
    assert not well_formed(secret)
    settings.SECRET_KEY_FALLBACKS = ["django-insecure-wsreject-demo-only"]
    assert well_formed(secret), "a rotated key in SECRET_KEY_FALLBACKS keeps tokens valid"


@pytest.mark.django_db(transaction=True)
async def test_revoking_a_token_takes_effect_at_the_next_handshake(demo_tokens):
    from wsreject.models import AccessToken

    await expect_user(bearer(demo_tokens["alice"]), "alice")  # cached now
    await sync_to_async(lambda: AccessToken.objects.get(digest=digest(demo_tokens["alice"])).delete())()
    await expect_401(bearer(demo_tokens["alice"]), "Invalid credentials", INVALID)


# --- custom authenticators -------------------------------------------------------------------------

CUSTOM = {
    "good": ("good-token", 101, "tokenuser"),
    "inactive": ("inactive-token", 401, "Invalid credentials"),
    "refused": ("bad-token", 401, "Invalid credentials"),
    "expired": ("expired-token", 401, "Token expired"),
    "drf-exception": ("drf-failed-token", 401, "Token revoked"),
    "not-mine": ("other-token", 401, "Invalid credentials"),
    "unrecognised": ("bad", 401, "Invalid credentials"),
    "bug": ("broken-token", 500, "Internal Server Error"),
}


@pytest.mark.parametrize("authenticator", ["FixedTokens", "AsyncFixedTokens"])
@pytest.mark.parametrize("token,status,expected", CUSTOM.values(), ids=CUSTOM.keys())
async def test_custom_authenticator(settings, authenticator, token, status, expected, caplog):
    settings.WSREJECT = {"AUTHENTICATORS": [f"tests.core.asgi_apps.{authenticator}"]}
    if status == 101:
        await expect_user(bearer(token), expected)
        return
    _, result = await handshake(login_app(), "/ws/private/", headers=bearer(token))
    assert (result.status_code, result.json()) == (status, {"detail": expected})
    if status == 401:
        assert result.header("www-authenticate") == f'Bearer error="invalid_token", error_description="{expected}"'
    else:
        assert "secret internal state" not in result.body.decode() + str(result.headers)
        assert "secret internal state" in caplog.text, "the traceback is logged"


async def test_a_warm_session_costs_no_query_and_logout_holds_at_the_next_handshake(demo_tokens, query_counter, thread_hop_counter):
    key = await sync_to_async(session_cookie_for)("alice")
    cookie = [(b"cookie", f"sessionid={key}".encode())]
    await expect_user(cookie, "alice")  # cold: the session and the user are read once
    before = (query_counter.count, thread_hop_counter.count)
    await expect_user(cookie, "alice")
    assert (query_counter.count, thread_hop_counter.count) == before, "warm: neither the session nor the user is read"

    from django.contrib.sessions.backends.db import SessionStore

    await sync_to_async(lambda: SessionStore(key).delete())()  # what logout does
    await expect_401(cookie, "Not authenticated")


async def test_a_cached_session_past_its_expiry_is_asked_of_django_again(demo_tokens):
    """The session expired in the database (update(): no signal) and its cached expiry has passed
    too: wsreject does not trust the cache, Django's get_user says anonymous."""
    from django.contrib.sessions.models import Session
    from django.utils import timezone as tz

    from wsreject.cache.versions import local

    key = await sync_to_async(session_cookie_for)("alice")
    cookie = [(b"cookie", f"sessionid={key}".encode())]
    await expect_user(cookie, "alice")
    await sync_to_async(lambda: Session.objects.filter(session_key=key).update(expire_date=tz.now() - timedelta(seconds=1)))()
    owner_key = next(k for k in local.entries if k.startswith("wsreject:session:"))
    stamp, (pk, _, session_hash) = local.entries[owner_key]  # (the user's version), owner
    local.entries[owner_key] = (stamp, (pk, time.time() - 1, session_hash))  # its cached expiry, passed
    await expect_401(cookie, "Not authenticated")
