"""The conformance runner's HTTP/2 transport: every case as an RFC 8441 extended CONNECT.

A target named ``<kind>-h2`` (``H2_TARGETS``) serves the app on server ``<kind>`` as usual
and plays each case over cleartext HTTP/2 with prior knowledge, through the probe's
``h2`` client (``wsreject.probe.h2.H2Stream``): ``:method CONNECT``, ``:protocol
websocket``, the case's headers with their names lower-cased. What HTTP/2 changes is
applied to the case's expectation here (:func:`over_h2`), nothing else:

* an accept is a ``200`` to the CONNECT (RFC 8441 §5), without ``Sec-WebSocket-Accept``;
  the first message and the exchanges are then read as on HTTP/1.1, RFC 6455 frames in
  the stream's DATA;
* a denial is the same status, headers and body; no reason phrase and no
  connection-specific header (RFC 9113 §8.2.2, §8.3.2); "closed" means the server ended
  the stream (END_STREAM), the connection itself may stay.

The rest — what a server does differently over HTTP/2 — is in ``SERVER_QUIRKS`` under the
target's name, keyed to the versions like every other kind.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping, Sequence
from dataclasses import replace

from tests.conformance.cases import Case, Expect
from tests.support.wsclient import Played, RawResponse
from wsreject.probe.client import MAX_MESSAGE, ProbeFailure
from wsreject.probe.frames import FrameError, Opcode, encode_frame, parse_frame
from wsreject.probe.h2 import CONNECTION_SPECIFIC, H2Stream
from wsreject.probe.request import UpgradeRequest, parse_url

H2_TARGETS = ("hypercorn-h2",)
H3_TARGETS = ("hypercorn-h3",)  # http3.py: the same rules over QUIC (RFC 9220)


def is_h2(target: str) -> bool:
    return target in H2_TARGETS


def is_extended_connect(target: str) -> bool:
    """Whether the target's handshakes are extended CONNECTs (HTTP/2 or HTTP/3)."""
    return target in H2_TARGETS or target in H3_TARGETS


def server_kind(target: str) -> str:
    """The server kind a target runs (``hypercorn-h2`` -> ``hypercorn``)."""
    return target.rsplit("-", 1)[0] if is_extended_connect(target) else target


def over_h2(expect: Expect) -> Expect:
    """``expect`` as HTTP/2 carries it: an accept is a 200, and no response has a
    connection-specific header. A 2xx denial stays as it is: over HTTP/2 a client takes it
    for an accept whose stream ended at once (``accepted`` below tells them apart)."""
    absent = tuple(dict.fromkeys((*expect.absent_headers, *sorted(CONNECTION_SPECIFIC))))
    if expect.accepted:
        absent = tuple(name for name in absent if name != "sec-websocket-accept") + ("sec-websocket-accept",)
        return replace(expect, status=200, absent_headers=absent)
    return replace(expect, absent_headers=absent)


def accepted(response: RawResponse) -> bool:
    """A 2xx whose stream the server did not end: the tunnel RFC 8441 opens."""
    return 200 <= response.status < 300 and response.closed_by_server is not True


def _head_response(stream: H2Stream) -> RawResponse:
    head = stream.head
    assert head is not None
    interim = [RawResponse(h.status, "", h.http_version, list(h.headers)) for h in stream.interim]
    return RawResponse(head.status, head.reason, head.http_version, list(head.headers), interim=interim)


def _recv_text(stream: H2Stream, deadline: float) -> str:
    """The next text message (pings answered by nobody: hypercorn sends none unprompted)."""
    while True:
        parsed = parse_frame(stream.buffer, MAX_MESSAGE)
        if parsed is None:
            if not stream.fill(deadline):
                raise ConnectionError("the server ended the stream")
            continue
        frame, used = parsed
        del stream.buffer[:used]
        if frame.opcode is Opcode.CLOSE:
            raise ConnectionError(f"close frame {frame.payload[:2].hex()} {frame.payload[2:]!r}")
        if frame.opcode is Opcode.TEXT and frame.fin:
            return frame.payload.decode("utf-8", errors="replace")
        if frame.opcode not in (Opcode.PING, Opcode.PONG):
            raise FrameError(f"expected a whole text frame, got {frame.opcode.name} fin={frame.fin}")


def _attempt(
    request: UpgradeRequest, want: Expect, timeout: float, close_timeout: float
) -> tuple[RawResponse | None, list[str], list[str]]:
    """One CONNECT: (the response or None, the texts read after an accept, problems seen
    while reading them)."""
    try:
        stream = H2Stream.open(request, timeout=timeout)
    except ProbeFailure:
        return None, [], []
    try:
        response = _head_response(stream)
        received: list[str] = []
        problems: list[str] = []
        if 200 <= response.status < 300 and want.accepted:
            deadline = time.monotonic() + timeout
            try:
                if want.first_message is not None:
                    received.append(_recv_text(stream, deadline))
                    if received[-1] != want.first_message:
                        problems.append(f"first message: expected {want.first_message!r}, got {received[-1]!r}")
                for outgoing, reply in want.exchanges:
                    stream.send(encode_frame(Opcode.TEXT, outgoing.encode("utf-8")))
                    received.append(_recv_text(stream, deadline))
                    if received[-1] != reply:
                        problems.append(f"reply to {outgoing!r}: expected {reply!r}, got {received[-1]!r}")
            except (TimeoutError, ConnectionError, FrameError, OSError, ProbeFailure) as exc:
                problems.append(f"after the 200: {exc!r}")
            response.closed_by_server = None
        else:
            body, ended = stream.read_body(time.monotonic() + close_timeout)
            response.body = body
            response.closed_by_server = ended
            response.reset = stream.reset_code is not None
        return response, received, problems
    finally:
        stream.close()


def check_played_connect(case: Case, played: Played, expect: Expect) -> list[str]:
    """``wsclient.check_played`` for a case played over HTTP/2 or HTTP/3: every mismatch of
    ``played`` when its last attempt must look like ``expect`` (pure, for the upgrade replay)."""
    label = f"attempt {case.repeat}" if case.repeat > 1 else "last"
    return [*played.before_problems, *(f"{label}: {p}" for p in over_h2(expect).check_raw(played.last_raw)), *played.accepted_problems]


def play_case_h2(
    case: Case, host: str, port: int, tokens: Mapping[str, str], expect: Expect, *, timeout: float, close_timeout: float
) -> Played:
    """``case`` over HTTP/2, every attempt (``case.repeat``) an extended CONNECT of its own;
    ``Played.raw`` has one response per attempt, ``problems`` every mismatch with
    ``case.before`` and ``expect`` as HTTP/2 carries them (:func:`over_h2`)."""
    resolved = case.resolve(tokens)
    request = UpgradeRequest(
        parse_url(f"ws://{host}:{port}{resolved.path}"), headers=resolved.all_headers(), subprotocols=resolved.subprotocols
    )
    played = Played()
    for attempt in range(1, case.repeat + 1):
        want = expect if attempt == case.repeat else case.before
        assert want is not None, f"{case.id}: repeat > 1 needs `before`"
        raw, received, reading = _attempt(request, want, timeout, close_timeout)
        played.raw.append(raw)
        if raw is not None and accepted(raw):
            played.messages.append(list(received))
        label = f"attempt {attempt}" if case.repeat > 1 else "h2"
        problems = [f"{label}: {p}" for p in over_h2(want).check_raw(raw)] + [f"{label}: {p}" for p in reading]
        if attempt < case.repeat:
            played.before_problems += problems
        else:
            played.accepted_problems = [f"{label}: {p}" for p in reading]
        played.problems += problems
    return played


async def play_cases_h2(
    cases: Sequence[Case],
    host: str,
    port: int,
    tokens: Mapping[str, str],
    expectations: Mapping[str, Expect],
    *,
    concurrency: int,
    timeout: float,
    close_timeout: float,
) -> dict[str, Played]:
    """Every case over HTTP/2, ``concurrency`` at a time (each in a thread: the client is blocking)."""
    semaphore = asyncio.Semaphore(concurrency)

    async def one(case: Case) -> tuple[str, Played]:
        async with semaphore:
            played = await asyncio.to_thread(
                play_case_h2, case, host, port, tokens, expectations[case.id], timeout=timeout, close_timeout=close_timeout
            )
            return case.id, played

    return dict(await asyncio.gather(*(one(case) for case in cases)))


def attempt_summaries(played: Played) -> list[str]:
    """One line per attempt, as ``Observation.attempts`` has them."""
    lines = []
    for raw in played.raw:
        if raw is None:
            lines.append("no-response")
        else:
            lines.append(f"{raw.status} {'accepted' if accepted(raw) else 'denied'} ({raw.http_version})")
    return lines
