"""Tiny Django-free ASGI applications for the Daphne integration tests.

``application`` routes WebSocket handshakes by path to one small scenario each, so a
single server process serves the whole test module. Plain HTTP gets a 200 ``ok``.
"""

import asyncio
import inspect

START = "websocket.http.response.start"
BODY = "websocket.http.response.body"
JSON = [(b"content-type", b"application/json")]


def start(status, headers=()):
    return {"type": START, "status": status, "headers": list(headers)}


def body(data=b"", more=False):
    return {"type": BODY, "body": data, "more_body": more}


async def deny(send):
    await send(start(401, [*JSON, (b"www-authenticate", b'Bearer realm="chat"')]))
    await send(body(b'{"detail":"Not authenticated"}'))


async def deny_multi_chunk(send):
    await send(start(403, [(b"content-type", b"text/plain"), (b"x-denied-by", b"test")]))
    for chunk in (b"you ", b"shall ", b"not ", b"pass"):
        await send(body(chunk, more=True))
    await send(body())


async def deny_app_content_length(send):
    # A wrong content-length and a connection header from the app: both replaced.
    await send(start(429, [(b"Content-Length", b"999"), (b"connection", b"keep-alive"), (b"retry-after", b"7")]))
    await send(body(b"slow down"))


async def deny_no_server_header_override(send):
    await send(start(404, [(b"server", b"custom")]))
    await send(body(b"gone"))


async def deny_unknown_status(send):
    await send(start(499))
    await send(body(b"?"))


async def deny_204(send):
    await send(start(204, [(b"x-empty", b"yes")]))
    await send(body(b"must not be sent"))


async def deny_205(send):
    await send(start(205))
    await send(body(b"must not be sent"))


async def deny_304(send):
    await send(start(304, [(b"etag", b'"abc"')]))
    await send(body(b"must not be sent"))


async def deny_start_only_then_return(send):
    await send(start(403))


async def deny_start_then_raise(send):
    await send(start(403))
    await send(body(b"partial", more=True))
    raise RuntimeError("failed half-way through a denial")


async def invalid_status_999(send):
    await send(start(999))


async def invalid_status_str(send):
    await send(start("403"))


async def invalid_status_bool(send):
    await send(start(True))


async def informational_101(send):
    await send(start(101, [(b"upgrade", b"websocket")]))
    await send(body())


async def informational_100(send):
    await send(start(100))
    await send(body())


async def accept_header_upgrade(send):
    await send({"type": "websocket.accept", "headers": [(b"Upgrade", b"h2c")]})


async def accept_header_crlf(send):
    await send({"type": "websocket.accept", "headers": [(b"x-evil", b"a\r\nset-cookie: pwned=1")]})


async def accept_header_sec_websocket_accept(send):
    await send({"type": "websocket.accept", "headers": [(b"sec-websocket-accept", b"forged")]})


async def header_with_crlf(send):
    await send(start(403, [(b"x-evil", b"a\r\nset-cookie: pwned=1")]))


async def header_with_nul(send):
    await send(start(403, [(b"x-evil", b"a\x00b")]))


async def header_name_with_lf(send):
    await send(start(403, [(b"x-name\n", b"value")]))


async def header_not_bytes(send):
    await send(start(403, [("x-text", "value")]))


async def header_not_pair(send):
    await send(start(403, [(b"x-one",)]))


async def second_start(send):
    await send(start(403))
    await send(start(401))


async def accept_after_start(send):
    await send(start(403))
    await send({"type": "websocket.accept"})


async def send_after_start(send):
    await send(start(403))
    await send({"type": "websocket.send", "text": "hello"})


async def close_after_start(send):
    await send(start(403))
    await send({"type": "websocket.close"})


async def body_before_start(send):
    await send(body(b"orphan"))


async def oversize_body(send):
    await send(start(403))
    chunk = b"x" * (256 * 1024)
    for _ in range(5):  # 1.25 MiB > the 1 MiB cap
        await send(body(chunk, more=True))
    await send(body())


async def raise_before_anything(send):
    raise RuntimeError("failed before deciding")


async def return_before_anything(send):
    return


async def send_before_accept(send):
    await send({"type": "websocket.send", "text": "too early"})


async def accept_unoffered_subprotocol(send):
    await send({"type": "websocket.accept", "subprotocol": "not-offered"})


async def close_before_accept(send):
    await send({"type": "websocket.close"})


async def slow(send):
    await asyncio.sleep(30)


async def extensions(send, scope):
    """Accept and report the scope's extensions, to check what is advertised."""
    await send({"type": "websocket.accept"})
    await send({"type": "websocket.send", "text": repr(sorted(scope.get("extensions") or {}))})


async def echo(scope, receive, send):
    """Accept, echo text; "close:<code>:<reason>" closes with that code and reason."""
    await send({"type": "websocket.accept", "subprotocol": (scope["subprotocols"] or [None])[0]})
    while True:
        message = await receive()
        if message["type"] == "websocket.disconnect":
            return
        text = message.get("text") or ""
        if text.startswith("close:"):
            _, code, reason = text.split(":", 2)
            await send({"type": "websocket.close", "code": int(code), "reason": reason})
        else:
            await send({"type": "websocket.send", "text": text})


# Every scenario above taking only ``send``, by path: deny_multi_chunk -> /deny-multi-chunk
SCENARIOS = {
    name.replace("_", "-"): function
    for name, function in dict(globals()).items()
    if inspect.iscoroutinefunction(function) and name not in {"echo", "extensions"}
}


async def application(scope, receive, send):
    if scope["type"] == "lifespan":
        return
    if scope["type"] == "http":
        await receive()
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})
        return
    assert (await receive())["type"] == "websocket.connect"
    name = scope["path"].strip("/")
    if name == "echo":
        await echo(scope, receive, send)
    elif name == "extensions":
        await extensions(send, scope)
    else:
        await SCENARIOS[name](send)
