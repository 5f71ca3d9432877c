"""The ASGI applications of uvicorn's and hypercorn's own WebSocket tests, rewritten to run
in a real ``python -m wsreject.daphne`` process (one path each).

Peers' tests assert what their application *received* (a disconnect event, the text of
an exception); here the application reports it as one log line,
``PEER-REPORT <id> <json>``, which the test waits for (``reported``). ``<id>`` comes
from the query string, so one server serves every test of a module.
"""

from __future__ import annotations

import asyncio
import json
import sys
from urllib.parse import parse_qs

START = "websocket.http.response.start"
BODY = "websocket.http.response.body"


def report(scope, value) -> None:
    """One line the test reads from the server's log."""
    query = parse_qs(scope["query_string"].decode("ascii"))
    print(f"PEER-REPORT {query.get('id', ['-'])[0]} {json.dumps(value, sort_keys=True)}", file=sys.stderr, flush=True)


def option(scope, name, default=None):
    return parse_qs(scope["query_string"].decode("ascii"), keep_blank_values=True).get(name, [default])[0]


async def until_disconnect(receive) -> dict:
    while True:
        message = await receive()
        if message["type"] == "websocket.disconnect":
            return message


# --- uvicorn's tests/protocols/test_websocket.py -----------------------------------------


async def accept(scope, receive, send):
    await receive()
    await send({"type": "websocket.accept"})
    await until_disconnect(receive)


async def close(scope, receive, send):
    await receive()
    await send({"type": "websocket.close"})


async def headers(scope, receive, send):
    await receive()
    found = dict(scope["headers"])
    report(scope, {"host": found[b"host"].decode("latin-1"), "username": found[b"username"].hex()})
    await send({"type": "websocket.accept"})
    await until_disconnect(receive)


async def extra_headers(scope, receive, send):
    await receive()
    await send({"type": "websocket.accept", "headers": [(b"extra", b"header")]})
    await until_disconnect(receive)


async def missing_handshake(scope, receive, send):
    pass


async def send_before_handshake(scope, receive, send):
    await send({"type": "websocket.send", "text": "123"})


async def duplicate_handshake(scope, receive, send):
    await send({"type": "websocket.accept"})
    await send({"type": "websocket.accept"})


async def asgi_return_value(scope, receive, send):
    await send({"type": "websocket.accept"})
    return 123


async def app_close(scope, receive, send):
    """``code``: absent or an int; ``reason``: absent (``reason=`` not given), ``none``, or text."""
    while True:
        message = await receive()
        if message["type"] == "websocket.connect":
            await send({"type": "websocket.accept"})
        elif message["type"] == "websocket.receive":
            reply: dict = {"type": "websocket.close"}
            code = option(scope, "code")
            if code is not None:
                reply["code"] = int(code)
            reason = option(scope, "reason")
            if reason is not None:
                reply["reason"] = None if reason == "none" else reason
            await send(reply)
        elif message["type"] == "websocket.disconnect":
            break


async def client_close(scope, receive, send):
    await receive()
    await send({"type": "websocket.accept"})
    report(scope, await until_disconnect(receive))


async def subprotocols(scope, receive, send):
    await receive()
    await send({"type": "websocket.accept", "subprotocol": option(scope, "choose")})
    await until_disconnect(receive)


async def reject(scope, receive, send):
    await receive()
    await send({"type": "websocket.close"})
    report(scope, await receive())


async def reject_with_response(scope, receive, send):
    assert "websocket.http.response" in scope["extensions"]
    await receive()
    # uvicorn's tests.response.Response(b"goodbye", status_code=400)
    await send({"type": START, "status": 400, "headers": [(b"content-length", b"7")]})
    await send({"type": BODY, "body": b"goodbye"})
    report(scope, await receive())


async def reject_multibody(scope, receive, send):
    await receive()
    await send({"type": START, "status": 400, "headers": [(b"Content-Length", b"20"), (b"Content-Type", b"text/plain")]})
    await send({"type": BODY, "body": b"x" * 10, "more_body": True})
    await send({"type": BODY, "body": b"y" * 10})
    report(scope, await receive())


async def reject_invalid_status(scope, receive, send):
    await receive()
    await send({"type": START, "status": 700, "headers": [(b"Content-Length", b"0"), (b"Content-Type", b"text/plain")]})


async def reject_body_nolength(scope, receive, send):
    await receive()
    await send({"type": START, "status": 403, "headers": []})
    await send({"type": BODY, "body": b"hardbody"})


NOT_FOUND_START = {"type": START, "status": 404, "headers": [(b"Content-Length", b"0"), (b"Content-Type", b"text/plain")]}


async def reject_invalid_msg(scope, receive, send):
    await receive()
    await send(NOT_FOUND_START)
    await send(NOT_FOUND_START)  # raises: the application ends with that exception


async def reject_missing_body(scope, receive, send):
    await receive()
    await send(NOT_FOUND_START)


async def multiple_start(scope, receive, send):
    await receive()
    await send(NOT_FOUND_START)
    try:
        await send(NOT_FOUND_START)
    except Exception as exc:
        report(scope, str(exc))


# --- hypercorn's tests/protocol/test_ws_stream.py ----------------------------------------


async def send_reject(scope, receive, send):
    await receive()
    await send({"type": START, "status": 200, "headers": []})
    await send({"type": BODY, "body": b"Body"})


async def app_error_connected(scope, receive, send):
    await receive()
    await send({"type": "websocket.accept"})


async def send_connection(scope, receive, send):
    await receive()
    await send({"type": "websocket.accept"})
    await send({"type": "websocket.send", "text": "hello"})
    await send({"type": "websocket.close"})
    await until_disconnect(receive)


#: ``state`` of hypercorn's test_send_invalid_message_given_state: what to send first.
STATES = {
    "handshake": [],
    "response": [{"type": START, "status": 403, "headers": []}],
    "connected": [{"type": "websocket.accept"}],
    "closed": [{"type": "websocket.accept"}, {"type": "websocket.close"}],
}


async def invalid_message_given_state(scope, receive, send):
    """Send ``message`` in ``state``; report whether ``send()`` raised."""
    await receive()
    for message in STATES[option(scope, "state")]:
        await send(message)
    message_type = option(scope, "message")
    try:
        await send({"type": message_type, "status": 403, "headers": [], "body": b"", "text": "x"})
    except Exception as exc:
        report(scope, {"raised": type(exc).__name__})
        raise
    report(scope, {"raised": None})
    await until_disconnect(receive)


async def invalid_http_message(scope, receive, send):
    """hypercorn's test_send_invalid_http_message: ``case`` says what is wrong."""
    await receive()
    case = option(scope, "case")
    status = "201 NO CONTENT" if case == "status" else 200
    headers = [("X-Foo", "foo")] if case == "headers" else []
    body = "Body" if case == "body" else b""
    await send({"type": START, "status": status, "headers": headers})
    await send({"type": BODY, "body": body})


async def closure(scope, receive, send):
    """Report every disconnect event: the first, and one more if it comes within 0.3 s."""
    await receive()
    await send({"type": "websocket.accept"})
    events = [await until_disconnect(receive)]
    try:
        events.append(await asyncio.wait_for(receive(), 0.3))
    except TimeoutError:
        pass
    report(scope, events)


async def send_after_disconnect(scope, receive, send):
    """hypercorn's test_closed_app_send_noop: once closed, ``send()`` does nothing."""
    await receive()
    await send({"type": "websocket.accept"})
    await until_disconnect(receive)
    try:
        await send({"type": "websocket.accept"})
        await send({"type": "websocket.send", "text": "late"})
    except Exception as exc:
        report(scope, {"raised": type(exc).__name__})
        raise
    report(scope, {"raised": None})


async def return_after_accept(scope, receive, send):
    """Accept and return without closing: the server must close (1011)."""
    await receive()
    await send({"type": "websocket.accept"})


async def raise_after_accept(scope, receive, send):
    await receive()
    await send({"type": "websocket.accept"})
    raise RuntimeError("failed after accept")


APPS = {
    name.replace("_", "-"): function
    for name, function in dict(globals()).items()
    if asyncio.iscoroutinefunction(function) and name not in {"until_disconnect", "application"}
}


async def application(scope, receive, send):
    if scope["type"] == "lifespan":
        return
    if scope["type"] == "http":
        await receive()
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})
        return
    return await APPS[scope["path"].strip("/")](scope, receive, send)
