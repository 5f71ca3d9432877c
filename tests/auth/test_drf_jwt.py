"""DRF tokens, SimpleJWT, the DRF adapter and custom authenticators, against the demo's own
ASGI application (``project.asgi.application``) and a real database.

The demo's ``AUTHENTICATORS`` are, in order: tickets, wsreject tokens, DRF ``Token``,
SimpleJWT, the session. Tests that need another list set ``WSREJECT`` with
``override_settings`` (the authenticators are rebuilt when it changes).
"""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import sys
from datetime import timedelta
from typing import Any

import jwt
import pytest
from asgiref.sync import sync_to_async
from django.contrib.auth import get_user_model
from django.core.checks import Error
from django.utils import timezone
from rest_framework import exceptions
from rest_framework.authentication import BaseAuthentication
from rest_framework.authtoken.models import Token
from rest_framework_simplejwt.tokens import AccessToken, RefreshToken

from wsreject.authentication import AuthenticationFailed, BaseAuthenticator
from wsreject.checks import INSTALL_HINTS, check_settings
from wsreject.scope import header_values

from .support import assert_401, authorization, connect, denial, get_user, greeting, invalid_token

pytestmark = pytest.mark.usefixtures("demo_tokens")  # seed_demo: alice, bob, carol, dave (inactive)

INVALID = "Invalid credentials"
EXPIRED = "Token expired"


# --- credentials minted for the tests -----------------------------------------------------------


@sync_to_async
def drf_key(username: str) -> str:
    return Token.objects.get(user__username=username).key


@sync_to_async
def access_token(username: str, *, expired: bool = False) -> str:
    token = AccessToken.for_user(get_user(username))
    if expired:
        token.set_exp(from_time=timezone.now() - timedelta(hours=1))  # exp = an hour ago + lifetime
    return str(token)


@sync_to_async
def refresh_token(username: str) -> str:
    return str(RefreshToken.for_user(get_user(username)))


def forged(token: str) -> str:
    """The same header and claims, signed with another key."""
    claims = jwt.decode(token, options={"verify_signature": False})
    return jwt.encode(claims, "not the project's signing key, but long enough for HS256", algorithm="HS256")


def unsigned(token: str) -> str:
    """The same claims with ``alg: none`` and no signature."""
    claims = jwt.decode(token, options={"verify_signature": False})
    return jwt.encode(claims, None, algorithm="none")


def b64(data: Any) -> str:
    raw = data if isinstance(data, bytes) else json.dumps(data).encode()
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


# --- DRF's authtoken -----------------------------------------------------------------------------


async def test_drf_token_opens_private():
    key = await drf_key("alice")
    assert await greeting("/ws/private/", authorization("Token", key)) == {"user": "alice"}


async def test_drf_token_opens_a_room_with_the_users_permissions():
    assert await greeting("/ws/rooms/lobby/", authorization("Token", await drf_key("alice"))) == {"room": "lobby", "user": "alice"}
    result = await denial("/ws/rooms/lobby/", authorization("Token", await drf_key("bob")))
    assert (result.status_code, result.json()) == (403, {"detail": "Not allowed to join this room"})


@pytest.mark.parametrize("key", ["0" * 40, "not-a-key", "a" * 41], ids=["unknown", "short", "long"])
async def test_wrong_drf_key_is_invalid_with_a_token_challenge(key):
    assert_401(await denial("/ws/private/", authorization("Token", key)), INVALID, "Token")


async def test_drf_token_of_an_inactive_user():
    assert_401(await denial("/ws/private/", authorization("Token", await drf_key("dave"))), INVALID, "Token")


async def test_deleting_a_drf_token_revokes_it_at_the_next_handshake():
    key = await drf_key("alice")
    assert await greeting("/ws/private/", authorization("Token", key)) == {"user": "alice"}
    await sync_to_async(Token.objects.filter(key=key).delete)()
    assert_401(await denial("/ws/private/", authorization("Token", key)), INVALID, "Token")


# --- SimpleJWT -----------------------------------------------------------------------------------


@pytest.mark.parametrize(("path", "expected"), [("/ws/private/", {"user": "alice"}), ("/ws/rooms/lobby/", {"room": "lobby", "user": "alice"})])
async def test_jwt_access_token_opens(path, expected):
    assert await greeting(path, authorization("Bearer", await access_token("alice"))) == expected


async def test_jwt_access_token_of_a_user_without_the_permission():
    result = await denial("/ws/rooms/lobby/", authorization("Bearer", await access_token("bob")))
    assert (result.status_code, result.json()) == (403, {"detail": "Not allowed to join this room"})


async def test_jwt_bearer_scheme_is_case_insensitive():
    """RFC 9110 §11.1: the authentication scheme is case-insensitive (wsreject's own tokens
    and DRF's ``Token`` already are)."""
    token = await access_token("alice")
    for scheme in ("bearer", "BEARER"):
        assert await greeting("/ws/private/", authorization(scheme, token)) == {"user": "alice"}, scheme


async def test_jwt_header_type_given_as_one_string(monkeypatch):
    """``SIMPLE_JWT["AUTH_HEADER_TYPES"]`` may be one string, as SimpleJWT allows: a scheme
    matches it whole, never one of its letters. (SimpleJWT rebinds its ``api_settings`` on
    ``setting_changed``, so modules that imported it keep the old object: the test sets the
    object wsreject reads instead of overriding ``SIMPLE_JWT``.)"""
    from rest_framework_simplejwt import settings as simplejwt_settings

    from wsreject.authentication import simplejwt

    configured = simplejwt_settings.APISettings(
        {"AUTH_HEADER_TYPES": "JWT"}, simplejwt_settings.DEFAULTS, simplejwt_settings.IMPORT_STRINGS
    )
    monkeypatch.setattr(simplejwt, "api_settings", configured)
    token = await access_token("alice")
    assert await greeting("/ws/private/", authorization("JWT", token)) == {"user": "alice"}
    assert await greeting("/ws/private/", authorization("jwt", token)) == {"user": "alice"}
    for scheme in ("J", "W"):
        assert_401(await denial("/ws/private/", authorization(scheme, token)), "Not authenticated", "Bearer")


async def test_expired_jwt_says_token_expired():
    result = await denial("/ws/private/", authorization("Bearer", await access_token("alice", expired=True)))
    assert result.body == b'{"detail":"Token expired"}'
    assert_401(result, EXPIRED, 'Bearer error="invalid_token", error_description="Token expired"')


@pytest.mark.parametrize("kind", ["forged", "unsigned", "refresh-as-access", "tampered-claims", "truncated"])
async def test_refused_jwts_are_invalid_credentials(kind):
    good = await access_token("alice")
    token = {
        "forged": lambda: forged(good),
        "unsigned": lambda: unsigned(good),
        "tampered-claims": lambda: ".".join([good.split(".")[0], b64({**jwt.decode(good, options={"verify_signature": False}), "user_id": "2"}), good.split(".")[2]]),
        "truncated": lambda: good[:-4],
    }.get(kind)
    raw = await refresh_token("alice") if kind == "refresh-as-access" else token()
    assert_401(await denial("/ws/private/", authorization("Bearer", raw)), INVALID, invalid_token(INVALID))


async def test_jwt_of_an_inactive_user():
    assert_401(await denial("/ws/private/", authorization("Bearer", await access_token("dave"))), INVALID, invalid_token(INVALID))


async def test_jwt_of_a_user_deactivated_after_it_was_issued():
    token = await access_token("alice")
    assert await greeting("/ws/private/", authorization("Bearer", token)) == {"user": "alice"}  # cached now

    @sync_to_async
    def deactivate() -> None:
        user = get_user("alice")
        user.is_active = False
        user.save()

    await deactivate()
    assert_401(await denial("/ws/private/", authorization("Bearer", token)), INVALID, invalid_token(INVALID))


async def test_jwt_of_a_deleted_user():
    @sync_to_async
    def token_then_delete() -> str:
        user = get_user_model().objects.create(username="gone")
        token = str(AccessToken.for_user(user))
        user.delete()
        return token

    token = await token_then_delete()
    assert_401(await denial("/ws/private/", authorization("Bearer", token)), INVALID, invalid_token(INVALID))


async def test_jwt_with_a_user_id_claim_that_is_no_primary_key():
    @sync_to_async
    def signed(user_id: Any) -> str:
        token = AccessToken.for_user(get_user("alice"))
        token["user_id"] = user_id
        return str(token)

    for user_id in ("alice", None, 10**30, [1], {"pk": 1}, True):
        assert_401(await denial("/ws/private/", authorization("Bearer", await signed(user_id))), INVALID, invalid_token(INVALID))


def jwt_like(header: Any, payload: Any, signature: str = "c2ln") -> bytes:
    return f"Bearer {b64(header)}.{b64(payload)}.{signature}".encode()


GARBAGE = [
    b"Bearer a.b.c",
    b"Bearer ..",
    b"Bearer a.b.",
    b"Bearer " + b"A" * 20_000 + b".b.c",
    jwt_like({"alg": "HS256"}, b"\xff\xfe not json"),
    jwt_like(b"[1,2]", [1]),
    jwt_like({"alg": "RS256", "typ": "JWT"}, {"user_id": 1}),
    jwt_like({"alg": "HS256", "kid": "../../etc/passwd"}, {"token_type": "access"}),
    jwt_like({"alg": "none"}, {"token_type": "access", "user_id": 1, "exp": 4102444800, "jti": "x"}, ""),
    b"Bearer eyJ.eyJ.",
    b"Bearer \xff\xfe.\x00.x",
    b"Token ",
    b"Token \xff",
    b"Token a b",
    b"Token " + b"k" * 5000,
    b"Bearer",
    b"JWT a.b.c",
    b"\x00\x01",
]


@pytest.mark.parametrize("value", GARBAGE, ids=range(len(GARBAGE)))
async def test_garbage_is_never_a_500(value):
    result = await denial("/ws/private/", [(b"authorization", value)])
    assert result.status_code == 401, (value[:60], result.status_code, result.body)
    assert result.json()["detail"] in ("Not authenticated", INVALID)


# --- the DRF adapter with a class written here ---------------------------------------------------

API_KEYS = {"key-alice": "alice", "key-dave": "dave", "key-nobody": "nobody"}


class ApiKeyAuthentication(BaseAuthentication):
    """A DRF authentication class of the kind projects write: ``X-Api-Key: <key>``."""

    def authenticate(self, request) -> tuple[Any, str] | None:
        key = request.META.get("HTTP_X_API_KEY")
        if key is None:
            return None  # not mine: the next authentication class is asked
        username = API_KEYS.get(key)
        user = get_user_model().objects.filter(username=username).first() if username else None
        if user is None:
            raise exceptions.AuthenticationFailed("Unknown API key")
        return user, key

    def authenticate_header(self, request) -> str:
        return 'ApiKey realm="ws"'


class SilentAuthentication(ApiKeyAuthentication):
    """The same, without a challenge (DRF then answers 403; a handshake still says 401)."""

    def authenticate_header(self, request) -> None:
        return None


DRF_ADAPTER = "wsreject.authentication.drf.DRFAuthenticator"


@pytest.fixture
def api_key_first(settings):
    settings.WSREJECT = {
        "AUTHENTICATORS": [
            (DRF_ADAPTER, {"authentication_class": f"{__name__}.ApiKeyAuthentication"}),
            "wsreject.authentication.drf.DRFTokenAuthenticator",
            "wsreject.authentication.simplejwt.SimpleJWTAuthenticator",
        ]
    }


def api_key(key: str) -> list[tuple[bytes, bytes]]:
    return [(b"x-api-key", key.encode())]


async def test_drf_adapter_authenticates(api_key_first):
    assert await greeting("/ws/private/", api_key("key-alice")) == {"user": "alice"}
    assert await greeting("/ws/rooms/lobby/", api_key("key-alice")) == {"room": "lobby", "user": "alice"}


async def test_drf_adapter_refusal_is_401_with_the_class_challenge(api_key_first):
    assert_401(await denial("/ws/private/", api_key("key-wrong")), "Unknown API key", 'ApiKey realm="ws"')
    assert_401(await denial("/ws/private/", api_key("key-nobody")), "Unknown API key", 'ApiKey realm="ws"')


async def test_drf_adapter_inactive_user_is_refused(api_key_first):
    assert_401(await denial("/ws/private/", api_key("key-dave")), INVALID, 'ApiKey realm="ws"')


async def test_drf_adapter_none_asks_the_next_authenticator(api_key_first):
    assert await greeting("/ws/private/", authorization("Token", await drf_key("bob"))) == {"user": "bob"}
    assert await greeting("/ws/private/", authorization("Bearer", await access_token("carol"))) == {"user": "carol"}
    assert_401(await denial("/ws/private/"), "Not authenticated", "Bearer")


async def test_drf_adapter_first_in_the_list_decides(api_key_first):
    headers = api_key("key-alice") + authorization("Token", await drf_key("bob"))
    assert await greeting("/ws/private/", headers) == {"user": "alice"}
    # A refused API key is not rescued by a valid token further down the list.
    headers = api_key("key-wrong") + authorization("Token", await drf_key("bob"))
    assert_401(await denial("/ws/private/", headers), "Unknown API key", 'ApiKey realm="ws"')


async def test_drf_adapter_without_a_challenge_falls_back_to_bearer(settings):
    settings.WSREJECT = {"AUTHENTICATORS": [(DRF_ADAPTER, {"authentication_class": SilentAuthentication})]}
    assert_401(await denial("/ws/private/", api_key("key-wrong")), "Unknown API key", "Bearer")
    assert await greeting("/ws/private/", api_key("key-alice")) == {"user": "alice"}


@pytest.fixture
def basic_auth(settings):
    settings.WSREJECT = {"AUTHENTICATORS": [(DRF_ADAPTER, {"authentication_class": "rest_framework.authentication.BasicAuthentication"})]}

    @sync_to_async
    def set_passwords() -> None:
        for username in ("alice", "dave"):
            user = get_user(username)
            user.set_password("basic-secret")
            user.save()

    return set_passwords


def basic(username: str, password: str) -> list[tuple[bytes, bytes]]:
    return authorization("Basic", base64.b64encode(f"{username}:{password}".encode()).decode())


async def test_drf_basic_authentication(basic_auth):
    await basic_auth()
    assert await greeting("/ws/private/", basic("alice", "basic-secret")) == {"user": "alice"}


@pytest.mark.parametrize(
    ("headers", "detail"),
    [
        (basic("alice", "wrong"), "Invalid username/password."),
        (basic("dave", "basic-secret"), "Invalid username/password."),  # inactive: Django's backend refuses
        (basic("nobody", "basic-secret"), "Invalid username/password."),
        (authorization("Basic", "!!!not-base64"), "Invalid basic header. Credentials not correctly base64 encoded."),
        ([(b"authorization", b"Basic")], "Invalid basic header. No credentials provided."),
    ],
    ids=["wrong-password", "inactive", "unknown-user", "not-base64", "empty"],
)
async def test_drf_basic_authentication_refusals(basic_auth, headers, detail):
    await basic_auth()
    assert_401(await denial("/ws/private/", headers), detail, 'Basic realm="api"')


async def test_drf_basic_authentication_without_credentials_is_not_authenticated(basic_auth):
    assert_401(await denial("/ws/private/"), "Not authenticated", "Bearer")


# --- custom authenticators: async, and broken -----------------------------------------------------


class AsyncHeaderAuthenticator(BaseAuthenticator):
    """``X-Demo-User: <username>`` looked up with the async ORM (a test-only scheme)."""

    scheme = "Demo"

    def get_credential(self, scope) -> str | None:
        values = header_values(scope, b"x-demo-user")
        return values[0].decode("latin-1") if len(values) == 1 else None

    async def authenticate(self, scope, credential: str) -> Any:
        await asyncio.sleep(0)  # really asynchronous
        if credential == "expired":
            from wsreject.authentication import CredentialExpired

            raise CredentialExpired()
        user = await get_user_model().objects.filter(username=credential).afirst()
        if user is None:
            raise AuthenticationFailed("No such demo user")
        return user


class BrokenAuthenticator(BaseAuthenticator):
    """Raises what no authenticator should: a bug."""

    def get_credential(self, scope) -> str | None:
        values = header_values(scope, b"x-broken")
        return values[0].decode("latin-1") if values else None

    def authenticate(self, scope, credential: str) -> Any:
        raise RuntimeError(f"database password is hunter2, credential {credential}")


@pytest.fixture
def custom_authenticators(settings):
    settings.WSREJECT = {
        "AUTHENTICATORS": [
            f"{__name__}.AsyncHeaderAuthenticator",
            f"{__name__}.BrokenAuthenticator",
            "wsreject.authentication.drf.DRFTokenAuthenticator",
        ]
    }


def demo_user(name: str) -> list[tuple[bytes, bytes]]:
    return [(b"x-demo-user", name.encode())]


async def test_async_authenticator(custom_authenticators):
    assert await greeting("/ws/private/", demo_user("alice")) == {"user": "alice"}
    assert await greeting("/ws/rooms/lobby/", demo_user("alice")) == {"room": "lobby", "user": "alice"}
    assert await greeting("/ws/staff/", demo_user("carol")) == {"user": "carol"}
    result = await denial("/ws/staff/", demo_user("bob"))
    assert (result.status_code, result.json()) == (403, {"detail": "Staff only"})


async def test_async_authenticator_refusals(custom_authenticators):
    assert_401(await denial("/ws/private/", demo_user("nobody")), "No such demo user", invalid_token("No such demo user", "Demo"))
    assert_401(await denial("/ws/private/", demo_user("expired")), EXPIRED, invalid_token(EXPIRED, "Demo"))
    assert_401(await denial("/ws/private/", demo_user("dave")), INVALID, invalid_token(INVALID, "Demo"))


async def test_many_async_authentications_at_once(custom_authenticators):
    names = ["alice", "bob", "carol"] * 5
    greetings = await asyncio.wait_for(asyncio.gather(*(greeting("/ws/private/", demo_user(name)) for name in names)), 60)
    assert greetings == [{"user": name} for name in names]


async def test_an_authenticator_bug_is_a_bare_500_logged_with_its_traceback(custom_authenticators, caplog):
    caplog.set_level(logging.INFO, logger="wsreject")
    result = await denial("/ws/private/", [(b"x-broken", b"credential-xyz")])
    assert (result.status_code, result.body) == (500, b'{"detail":"Internal Server Error"}')
    assert result.headers == [(b"content-length", b"34"), (b"content-type", b"application/json")]
    wire = result.body + repr(result.headers).encode()
    assert b"hunter2" not in wire and b"RuntimeError" not in wire and b"credential-xyz" not in wire
    errors = [r for r in caplog.records if r.name == "wsreject" and r.levelno == logging.ERROR and r.exc_info]
    assert len(errors) == 1
    assert errors[0].exc_info[0] is RuntimeError
    assert "hunter2" in caplog.text and "Traceback" in caplog.text
    assert "in authenticate" in caplog.text, "the traceback reaches the authenticator's frame"


async def test_an_authenticator_bug_is_a_500_even_where_the_user_is_never_read(custom_authenticators):
    """The user is authenticated before the consumer (as Channels' AuthMiddleware does), so a
    credential the project's code cannot handle is a 500 everywhere, never an accept."""
    _, result = await connect("/ws/echo/", [(b"x-broken", b"x")])
    assert not result.accepted
    assert (result.status_code, result.json()) == (500, {"detail": "Internal Server Error"})


# --- system checks: an authenticator that cannot be imported ---------------------------------------


def e005() -> list[Error]:
    return [message for message in check_settings() if message.id == "wsreject.E005"]


def test_check_reports_a_missing_module(settings):
    settings.WSREJECT = {"AUTHENTICATORS": ["wsreject_plugin_not_installed.auth.Authenticator", "wsreject.authentication.SessionAuthenticator"]}
    errors = e005()
    assert len(errors) == 1
    assert "'wsreject_plugin_not_installed.auth.Authenticator' cannot be imported" in errors[0].msg
    assert "No module named 'wsreject_plugin_not_installed'" in errors[0].msg
    assert errors[0].hint is None  # nothing known to install


def _uninstall(monkeypatch, package: str, *dependants: str) -> None:
    """Make ``package`` unimportable, as if it were not installed (``None`` in ``sys.modules``)."""
    for name in list(sys.modules):
        if name == package or name.startswith(package + "."):
            monkeypatch.setitem(sys.modules, name, None)
    monkeypatch.setitem(sys.modules, package, None)
    for name in dependants:
        if name in sys.modules:
            monkeypatch.delitem(sys.modules, name)


def test_check_hints_how_to_install_simplejwt(settings, monkeypatch):
    _uninstall(monkeypatch, "rest_framework_simplejwt", "wsreject.authentication.simplejwt")
    settings.WSREJECT = {"AUTHENTICATORS": ["wsreject.authentication.simplejwt.SimpleJWTAuthenticator"]}
    errors = e005()
    assert len(errors) == 1
    assert "'wsreject.authentication.simplejwt.SimpleJWTAuthenticator' cannot be imported" in errors[0].msg
    assert "rest_framework_simplejwt" in errors[0].msg
    assert errors[0].hint == 'pip install "wsreject[simplejwt]"' == INSTALL_HINTS["rest_framework_simplejwt"]


def test_check_hints_how_to_install_drf(settings, monkeypatch):
    _uninstall(monkeypatch, "rest_framework", "wsreject.authentication.drf")
    settings.WSREJECT = {"AUTHENTICATORS": ["wsreject.authentication.drf.DRFTokenAuthenticator"]}
    errors = e005()
    assert len(errors) == 1 and errors[0].hint == 'pip install "wsreject[drf]"'


def test_demo_authenticators_pass_the_check():
    assert e005() == []


async def test_the_drf_adapter_with_a_header_costs_nothing_without_it(settings, thread_hop_counter):
    """DRFAuthenticator(header=...): a handshake without that header never reaches the DRF class."""
    settings.WSREJECT = {
        **settings.WSREJECT,
        "AUTHENTICATORS": [
            ("wsreject.authentication.drf.DRFAuthenticator",
             {"authentication_class": "rest_framework.authentication.BasicAuthentication", "header": "Authorization"}),
        ],
    }  # fmt: skip
    await connect("/ws/private/", [])  # the access rules, loaded once
    before = thread_hop_counter.count
    _, result = await connect("/ws/private/", [])
    assert (result.status_code, result.json()) == (401, {"detail": "Not authenticated"})
    assert thread_hop_counter.items[before:] == []
