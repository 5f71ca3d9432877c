"""How a denial leaves (wsreject/transport.py): mode resolution, close-code framing, log line, signal."""

from __future__ import annotations

import json
import logging

import pytest
from django.utils.functional import SimpleLazyObject, empty

from wsreject import DenialResponse, DenyHandshake
from wsreject.scope import client_address, escape, known_user_id
from wsreject.signals import connection_denied
from wsreject.transport import (
    MAX_REASON_BYTES,
    deny,
    resolve_denial_mode,
    supports_denial_response,
    truncate_utf8,
)

from .util import Recorder, ws_scope

# --- resolve_denial_mode ------------------------------------------------------------------------------

MODE_CASES = [
    # (DENIAL_MODE, FALLBACK, extension, explicit mode, expected)
    ("http", "close", True, None, "http"),
    ("http", "close", False, None, "close"),
    ("http", "close_code", True, None, "http"),
    ("http", "close_code", False, None, "close_code"),
    ("close_code", "close", True, None, "close_code"),
    ("close_code", "close", False, None, "close_code"),
    ("close_code", "close_code", True, None, "close_code"),
    ("close_code", "close_code", False, None, "close_code"),
    # an explicit (stack or consumer) mode beats the setting
    ("http", "close", True, "close_code", "close_code"),
    ("http", "close", False, "close_code", "close_code"),
    ("close_code", "close", True, "http", "http"),
    ("close_code", "close", False, "http", "close"),
    ("close_code", "close_code", False, "http", "close_code"),
]


@pytest.mark.parametrize(
    "denial_mode,fallback,extension,explicit,expected",
    MODE_CASES,
    ids=[f"{m}-{f}-{'ext' if e else 'noext'}-{x or 'setting'}" for m, f, e, x, _ in MODE_CASES],
)
def test_resolve_denial_mode(settings, denial_mode, fallback, extension, explicit, expected):
    settings.WSREJECT = {"DENIAL_MODE": denial_mode, "FALLBACK": fallback}
    assert resolve_denial_mode(ws_scope(extension=extension), explicit) == expected


def test_resolve_denial_mode_defaults_without_a_wsreject_setting(settings):
    del settings.WSREJECT
    assert resolve_denial_mode(ws_scope(extension=True)) == "http"
    assert resolve_denial_mode(ws_scope(extension=False)) == "close"


def test_settings_are_read_lazily(settings):
    scope = ws_scope(extension=False)
    settings.WSREJECT = {"FALLBACK": "close"}
    assert resolve_denial_mode(scope) == "close"
    settings.WSREJECT = {"FALLBACK": "close_code"}
    assert resolve_denial_mode(scope) == "close_code"


@pytest.mark.parametrize(
    "extensions,supported",
    [(None, False), ({}, False), ({"websocket.http.response": {}}, True), ({"http.response.trailers": {}}, False)],
    ids=["None", "empty", "present", "other-extension"],
)
def test_supports_denial_response(extensions, supported):
    scope = ws_scope()
    scope["extensions"] = extensions
    assert supports_denial_response(scope) is supported
    del scope["extensions"]
    assert supports_denial_response(scope) is False


@pytest.mark.parametrize("mode", ["close", "bogus", "HTTP"], ids=str)
def test_invalid_denial_mode_setting_raises(settings, mode):
    settings.WSREJECT = {"DENIAL_MODE": mode}
    with pytest.raises(ValueError, match="denial mode"):
        resolve_denial_mode(ws_scope())


@pytest.mark.parametrize("mode", ["close", "bogus"], ids=str)
def test_invalid_explicit_mode_raises(mode):
    with pytest.raises(ValueError, match="denial mode"):
        resolve_denial_mode(ws_scope(), mode)


@pytest.mark.parametrize("fallback", ["http", "bogus", None], ids=str)
def test_invalid_fallback_raises_when_it_is_needed(settings, fallback):
    settings.WSREJECT = {"FALLBACK": fallback}
    with pytest.raises(ValueError, match="FALLBACK"):
        resolve_denial_mode(ws_scope(extension=False))


# --- truncate_utf8 -----------------------------------------------------------------------------

TRUNCATE_CASES = {
    "empty": ("", ""),
    "ascii-123-bytes": ("a" * 123, "a" * 123),
    "ascii-124-bytes": ("a" * 124, "a" * 123),
    "2-byte-fits-exactly": ("a" * 121 + "é", "a" * 121 + "é"),
    "2-byte-straddles": ("a" * 122 + "é", "a" * 122),
    "3-byte-fits-exactly": ("a" * 120 + "€", "a" * 120 + "€"),
    "3-byte-straddles-1": ("a" * 121 + "€", "a" * 121),
    "3-byte-straddles-2": ("a" * 122 + "€", "a" * 122),
    "emoji-fits-exactly": ("a" * 119 + "😀", "a" * 119 + "😀"),
    "emoji-straddles-1": ("a" * 120 + "😀", "a" * 120),
    "emoji-straddles-2": ("a" * 121 + "😀", "a" * 121),
    "emoji-straddles-3": ("a" * 122 + "😀", "a" * 122),
    "emoji-after-boundary": ("a" * 123 + "😀", "a" * 123),
    "only-emoji": ("😀" * 40, "😀" * 30),
    "only-euro": ("€" * 50, "€" * 41),
    "mixed": ("é€😀" * 20, None),
    "combining": ("e\u0301" * 70, None),
}


@pytest.mark.parametrize("text,expected", TRUNCATE_CASES.values(), ids=TRUNCATE_CASES.keys())
def test_truncate_utf8_never_splits_a_character(text, expected):
    result = truncate_utf8(text)
    encoded = result.encode("utf-8")
    assert len(encoded) <= MAX_REASON_BYTES == 123
    assert text.startswith(result)
    # maximal: one more character would not fit
    if result != text:
        assert len(text[: len(result) + 1].encode("utf-8")) > MAX_REASON_BYTES
    if expected is not None:
        assert result == expected


@pytest.mark.parametrize(
    "text,limit,expected",
    [("héllo", 2, "h"), ("héllo", 3, "hé"), ("😀", 3, ""), ("😀", 4, "😀"), ("abc", 0, "")],
    ids=["2-byte-at-2", "2-byte-at-3", "emoji-at-3", "emoji-at-4", "zero"],
)
def test_truncate_utf8_with_a_limit(text, limit, expected):
    assert truncate_utf8(text, limit) == expected


# --- deny -------------------------------------------------------------------------------


async def test_http_mode_sends_the_two_extension_messages():
    recorder = Recorder()
    response = DenyHandshake(401, "Not authenticated", headers={"WWW-Authenticate": "Bearer"}).response()
    transport = await deny(ws_scope(), recorder.send, response)
    assert transport == "http"
    assert recorder.sent == response.asgi_messages()


async def test_close_mode_sends_a_bare_close():
    recorder = Recorder()
    transport = await deny(ws_scope(extension=False), recorder.send, DenyHandshake(401).response())
    assert transport == "close"
    assert recorder.sent == [{"type": "websocket.close"}]


@pytest.mark.parametrize(
    "status,detail",
    [(401, "Not authenticated"), (403, "Origin not allowed"), (404, "Room not found"), (429, "Too many"), (500, "Internal Server Error"), (503, "Down for maintenance"), (418, None)],
    ids=["401", "403", "404", "429", "500", "503", "418-default"],
)
async def test_close_code_mode_accepts_sends_detail_and_closes(status, detail):
    recorder = Recorder()
    response = DenyHandshake(status, detail).response()
    transport = await deny(ws_scope(), recorder.send, response, denial_mode="close_code")
    assert transport == "close_code"
    text = response.detail
    assert recorder.sent == [
        {"type": "websocket.accept"},
        {"type": "websocket.send", "text": json.dumps({"detail": text}, separators=(",", ":"))},
        {"type": "websocket.close", "code": 4000 + status, "reason": text},
    ]


async def test_close_code_mode_cuts_the_reason_but_not_the_frame():
    detail = "Zugriff verweigert 😀 " * 20
    recorder = Recorder()
    await deny(ws_scope(), recorder.send, DenyHandshake(403, detail).response(), denial_mode="close_code")
    accept, frame, close = recorder.sent
    assert json.loads(frame["text"]) == {"detail": detail}
    assert len(close["reason"].encode("utf-8")) <= 123
    assert detail.startswith(close["reason"])
    assert close["code"] == 4403


async def test_close_code_mode_with_a_dict_detail_sends_it_as_json_text():
    recorder = Recorder()
    await deny(ws_scope(), recorder.send, DenyHandshake(409, {"a": 1}).response(), denial_mode="close_code")
    assert json.loads(recorder.sent[1]["text"]) == {"detail": '{"a":1}'}
    assert recorder.sent[2]["reason"] == '{"a":1}'


async def test_close_code_mode_for_an_arbitrary_response_uses_its_detail():
    recorder = Recorder()
    response = DenialResponse(418, headers={"content-type": "text/plain"}, body=b"I'm a teapot", detail="Brewing")
    await deny(ws_scope(), recorder.send, response, denial_mode="close_code")
    assert recorder.sent[2] == {"type": "websocket.close", "code": 4418, "reason": "Brewing"}


# --- log line ----------------------------------------------------------------------------------


def denial_records(caplog):
    return [r for r in caplog.records if r.name == "wsreject" and r.getMessage().startswith("WebSocket denied")]


@pytest.mark.parametrize(
    "path,detail",
    [
        ("/ws/a\nforged line/", "plain"),
        ("/ws/ok/", "line one\nWebSocket denied: path=/fake status=200"),
        ("/ws/cr\r/", "cr\r\nlf"),
        ("/ws/nel\x85/", "sep\u2028para\u2029"),
        ("/ws/esc\x1b[31m/", "nul\x00"),
    ],
    ids=["LF-in-path", "LF-in-detail", "CRLF", "NEL-and-unicode-separators", "ESC-and-NUL"],
)
@pytest.mark.parametrize("mode", ["http", "close_code"])
async def test_one_log_line_per_denial_with_control_characters_escaped(caplog, path, detail, mode):
    caplog.set_level(logging.INFO, logger="wsreject")
    await deny(ws_scope(path), Recorder().send, DenyHandshake(403, detail).response(), denial_mode=mode)
    records = denial_records(caplog)
    assert len(records) == 1
    message = records[0].getMessage()
    assert message.splitlines() == [message]
    assert not any(not ch.isprintable() for ch in message)
    assert f"mode={mode}" in message
    assert "status=403" in message
    assert "client=127.0.0.1:50000" in message


def test_escape_examples():
    assert escape("a\nb") == "a\\nb"
    assert escape("\x85") == "\\x85"
    assert escape("\u2028") == "\\u2028"
    assert escape("ünïcode ✓") == "ünïcode ✓"
    assert escape(12) == "12"


@pytest.mark.parametrize(
    "client,expected",
    [(["127.0.0.1", 50000], "127.0.0.1:50000"), (["::1", 1], "::1:1"), (None, "-"), ([], "-"), (["unix-socket"], "unix-socket"), (["a\nb", 1], "a\\nb:1")],
    ids=["ipv4", "ipv6", "None", "empty", "host-only", "LF"],
)
def test_client_address(client, expected):
    assert client_address({"client": client}) == expected


async def test_log_line_with_a_lazy_user_makes_no_query_and_says_dash(caplog, query_counter):
    caplog.set_level(logging.INFO, logger="wsreject")
    loads = []
    scope = ws_scope("/ws/private/", user=SimpleLazyObject(lambda: loads.append(1)))
    await deny(scope, Recorder().send, DenyHandshake(403).response())
    assert loads == []
    assert scope["user"]._wrapped is empty
    assert query_counter.count == 0
    assert "user=-" in denial_records(caplog)[0].getMessage()


class FakeUser:
    def __init__(self, pk, authenticated=True):
        self.pk = pk
        self.is_authenticated = authenticated


@pytest.mark.parametrize(
    "user,expected",
    [(None, "-"), (FakeUser(42), "42"), (FakeUser(7, authenticated=False), "-"), (FakeUser("a\nb"), "a\\nb")],
    ids=["no-user", "loaded", "anonymous", "escaped-pk"],
)
def test_known_user_id(user, expected):
    scope = {} if user is None else {"user": user}
    assert known_user_id(scope) == expected


def test_known_user_id_of_a_loaded_lazy_user():
    user = SimpleLazyObject(lambda: FakeUser(5))
    assert known_user_id({"user": user}) == "-"  # not loaded yet: no loading for the log's sake
    assert user.pk == 5  # loads it
    assert known_user_id({"user": user}) == "5"


# --- connection_denied signal ------------------------------------------------------------------


@pytest.fixture
def receivers():
    connected = []

    def connect(receiver):
        connection_denied.connect(receiver, weak=False)
        connected.append(receiver)

    yield connect
    for receiver in connected:
        connection_denied.disconnect(receiver)


@pytest.mark.parametrize(
    "mode,extension,resolved",
    [(None, True, "http"), (None, False, "close"), ("close_code", True, "close_code")],
    ids=["http", "close", "close_code"],
)
async def test_signal_fires_once_with_scope_response_and_denial_mode(receivers, mode, extension, resolved):
    calls = []
    receivers(lambda **kwargs: calls.append(kwargs))
    scope = ws_scope(extension=extension)
    response = DenyHandshake(403).response()
    await deny(scope, Recorder().send, response, denial_mode=mode)
    assert len(calls) == 1
    call = calls[0]
    assert call["sender"] is None
    assert call["scope"] is scope
    assert call["response"] is response
    assert call["denial_mode"] == resolved


async def test_a_failing_receiver_does_not_break_the_denial(receivers, caplog):
    calls = []

    def broken(**kwargs):
        raise RuntimeError("receiver bug")

    receivers(broken)
    receivers(lambda **kwargs: calls.append(kwargs["denial_mode"]))
    recorder = Recorder()
    response = DenyHandshake(401).response()
    assert await deny(ws_scope(), recorder.send, response) == "http"
    assert recorder.sent == response.asgi_messages()
    assert calls == ["http"]


async def test_signal_fires_after_the_denial_was_sent(receivers):
    recorder = Recorder()
    seen = []
    receivers(lambda **kwargs: seen.append(list(recorder.types)))
    await deny(ws_scope(), recorder.send, DenyHandshake(401).response())
    assert seen == [["websocket.http.response.start", "websocket.http.response.body"]]
