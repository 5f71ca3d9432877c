"""The probe's input: URLs, header, cookie and subprotocol validation, usage errors (exit 2),
plus IPv6 literals and TLS against a scripted server."""

from __future__ import annotations

import datetime
import ipaddress
import socket
import ssl
from pathlib import Path

import pytest

from tests.support.servers import free_port
from wsreject.probe import UpgradeRequest, UsageError, parse_url
from wsreject.probe.frames import Opcode, apply_mask, encode_frame, parse_frame
from wsreject.probe.request import mask_value, parse_cookie, parse_header

from .commands import run_probe
from .scripted import ScriptedServer, accept_head

# --- URLs -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "tls", "host", "port", "host_header", "resource"),
    [
        ("ws://example.com", False, "example.com", 80, "example.com", "/"),
        ("ws://example.com:80/a", False, "example.com", 80, "example.com", "/a"),
        ("wss://example.com/ws/?token=x&y", True, "example.com", 443, "example.com", "/ws/?token=x&y"),
        ("http://127.0.0.1:8000/ws/private/", False, "127.0.0.1", 8000, "127.0.0.1:8000", "/ws/private/"),
        ("HTTPS://Example.COM:8443/x", True, "example.com", 8443, "example.com:8443", "/x"),
        ("ws://[::1]:8000/ws/", False, "::1", 8000, "[::1]:8000", "/ws/"),
        ("wss://[2001:db8::1]/", True, "2001:db8::1", 443, "[2001:db8::1]", "/"),
        ("ws://h/a%2Fb/?q=%20", False, "h", 80, "h", "/a%2Fb/?q=%20"),
        ("ws://h/café?é=1", False, "h", 80, "h", "/caf%C3%A9?%C3%A9=1"),
        ("ws://h/x?", False, "h", 80, "h", "/x?"),
        ("ws://bücher.example/", False, "xn--bcher-kva.example", 80, "xn--bcher-kva.example", "/"),
    ],
)
def test_parse_url(url, tls, host, port, host_header, resource) -> None:
    target = parse_url(url)
    assert (target.tls, target.host, target.port, target.host_header, target.resource) == (
        tls, host, port, host_header, resource,
    )  # fmt: skip


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("ftp://example.com/", "unsupported URL scheme 'ftp'"),
        ("example.com/ws/", "unsupported URL scheme ''"),
        ("ws:///path", "no host in URL"),
        ("ws://example.com:99999/", "invalid port"),
        ("ws://user:pw@example.com/", "credentials in the URL are not supported"),
        ("ws://example.com/#frag", "cannot have a fragment"),
    ],
)
def test_bad_urls(url, message) -> None:
    with pytest.raises(UsageError, match=message):
        parse_url(url)


# --- headers, cookies, masking ------------------------------------------------------------------


def test_parse_header() -> None:
    assert parse_header("Authorization:  Bearer abc ") == ("Authorization", "Bearer abc")
    assert parse_header("X-Empty:") == ("X-Empty", "")
    assert parse_header("X-Latin: café") == ("X-Latin", "café")


@pytest.mark.parametrize(
    ("option", "message"),
    [
        ("no colon", "expected 'Name: value'"),
        ("Bad Name: x", "header name 'Bad Name' is not a token"),
        ("X-A: b\r\nX-Injected: 1", "header X-A: the value contains CR or LF"),
        ("X-A: b\nc", "contains CR or LF"),
        ("X-A: b\x00c", "contains a control character"),
        ("X-A: b\x85c", "contains a control character"),
        ("Upgrade: h2c", "Upgrade: set by the probe"),
        ("sec-websocket-key: x", "set by the probe"),
        ("Sec-WebSocket-Protocol: chat", "use --subprotocol"),
        ("Content-Length: 5", "a handshake has no body"),
    ],
)
def test_bad_headers(option, message) -> None:
    with pytest.raises(UsageError, match=message):
        parse_header(option)


def test_bad_header_messages_never_repeat_the_value() -> None:
    with pytest.raises(UsageError) as raised:
        parse_header("Authorization: Bearer sup3rs3cret\r\n")
    assert "sup3rs3cret" not in str(raised.value)


@pytest.mark.parametrize("option", ["novalue", "a b=c", "a=b;c=d", "a=b\r\nX: y", "=v"])
def test_bad_cookies(option) -> None:
    with pytest.raises(UsageError):
        parse_cookie(option)


@pytest.mark.parametrize(
    ("name", "value", "shown"),
    [
        ("Authorization", "Bearer 0123456789abcdefXYZ", "Bearer 0123…"),
        ("authorization", "Bearer short", "Bearer …"),
        ("Authorization", "0123456789abcdefXYZ", "0123…"),
        ("Proxy-Authorization", "Basic dXNlcjpwYXNzd29yZDEyMzQ=", "Basic dXNl…"),
        ("Cookie", "sessionid=0123456789abcdefXYZ; theme=dark", "sessionid=0123…; theme=…"),
        ("X-Auth-Token", "0123456789abcdefXYZ", "0123…"),
        ("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ==", "dGhlIHNhbXBsZSBub25jZQ=="),
        ("Origin", "https://app.example.com", "https://app.example.com"),
    ],
)
def test_mask_value(name, value, shown) -> None:
    assert mask_value(name, value) == shown


def test_request_bytes() -> None:
    request = UpgradeRequest(
        parse_url("ws://[::1]:8000/ws/?a=1"),
        headers=[("X-Latin", "café"), ("X-Emoji", "☕")],
        subprotocols=["a", "b"],
        origin="null",
        key="dGhlIHNhbXBsZSBub25jZQ==",
    )
    assert request.encode() == (
        b"GET /ws/?a=1 HTTP/1.1\r\nHost: [::1]:8000\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n"
        b"Sec-WebSocket-Protocol: a, b\r\nOrigin: null\r\nX-Latin: caf\xe9\r\nX-Emoji: \xe2\x98\x95\r\n\r\n"
    )
    assert request.accept == "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="  # RFC 6455 §1.3's example


# --- frames -----------------------------------------------------------------------------------


@pytest.mark.parametrize("size", [0, 5, 125, 126, 65535, 65536])
def test_client_frames_are_masked_and_round_trip(size: int) -> None:
    payload = bytes(range(256)) * (size // 256) + bytes(range(size % 256))
    frame = encode_frame(Opcode.BINARY, payload, mask_key=b"\x01\x02\x03\x04")
    assert frame[1] & 0x80  # the mask bit
    header = {0: 2, 5: 2, 125: 2, 126: 4, 65535: 4, 65536: 10}[size]
    assert frame[header : header + 4] == b"\x01\x02\x03\x04"
    assert apply_mask(frame[header + 4 :], b"\x01\x02\x03\x04") == payload
    unmasked = frame[:1] + bytes([frame[1] & 0x7F]) + frame[2:header] + payload
    parsed = parse_frame(unmasked, 1 << 20)
    assert parsed is not None
    assert parsed[0].payload == payload and parsed[1] == len(unmasked)
    assert parse_frame(unmasked[:-1], 1 << 20) is None if size else True


# --- usage errors from the command line: exit 2, nothing sent ---------------------------------------


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ([], "the following arguments are required: url"),
        (["ftp://h/"], "unsupported URL scheme 'ftp'"),
        (["ws://h/", "-H", "X-A: b\r\nX-B: c"], "argument -H/--header: header X-A: the value contains CR or LF"),
        (["ws://h/", "--origin", "https://a\r\nX: y"], "argument --origin: origin: the value contains CR or LF"),
        (["ws://h/", "--subprotocol", "two words"], "subprotocol 'two words' is not a token"),
        (["ws://h/", "--cookie", "a=b; c=d"], "argument --cookie: cookie a: the value contains ';' or a space"),
        (["ws://h/", "--timeout", "0"], "argument --timeout: '0': seconds must be finite and positive"),
        (["ws://h/", "--timeout", "soon"], "not a number of seconds: 'soon'"),
        (["ws://h/", "--wait", "-1"], "argument --wait: '-1': seconds must be finite and at least 0"),
    ],
)
def test_usage_errors_exit_2(args, message) -> None:
    run = run_probe(*args)
    assert run.code == 2, run
    assert run.out == ""
    assert message in run.err


def test_a_bad_header_stops_before_connecting() -> None:
    with ScriptedServer(lambda conn, request: None) as server:
        run = run_probe(server.url("/"), "-H", "X-A: 1\nX-B: 2")
        assert run.code == 2, run
    assert server.connections == 0


# --- IPv6 and TLS ---------------------------------------------------------------------------------


def _ipv6_available() -> bool:
    try:
        with socket.socket(socket.AF_INET6) as sock:
            sock.bind(("::1", 0))
    except OSError:
        return False
    return True


@pytest.mark.skipif(not _ipv6_available(), reason="no IPv6 loopback on this machine")
def test_ipv6_literal() -> None:
    with ScriptedServer(lambda conn, request: conn.sendall(accept_head(request)), family=socket.AF_INET6) as server:
        run = run_probe(server.url("/ws/echo/"), "--wait", "0")
        received = server.received()
    assert run.code == 0, run
    assert received.header("host") == [f"[::1]:{server.port}"]


@pytest.fixture(scope="module")
def certificate(tmp_path_factory) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1 (cert file, key file)."""
    x509 = pytest.importorskip("cryptography.x509")
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "wsreject probe test")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
        .sign(key, hashes.SHA256())
    )
    directory = tmp_path_factory.mktemp("tls")
    cert_file, key_file = directory / "cert.pem", directory / "key.pem"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    return cert_file, key_file


def _tls_context(certificate: tuple[Path, Path]) -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(*certificate)
    return context


def test_wss_with_an_untrusted_certificate_fails(certificate) -> None:
    with ScriptedServer(lambda conn, request: None, tls=_tls_context(certificate)) as server:
        run = run_probe(server.url("/ws/", scheme="wss"))
        server.received()
    assert run.code == 2, run
    assert run.err == (
        f"wsreject_probe: TLS with 127.0.0.1:{server.port}: certificate verification failed: "
        "self-signed certificate (--insecure skips it)\n"
    )


@pytest.mark.parametrize("scheme", ["wss", "https"])
def test_wss_insecure(certificate, scheme: str) -> None:
    with ScriptedServer(lambda conn, request: conn.sendall(accept_head(request)), tls=_tls_context(certificate)) as server:
        run = run_probe(server.url("/ws/", scheme=scheme), "--insecure", "--wait", "0")
        received = server.received()
    assert run.code == 0, run
    assert received.request_line == "GET /ws/ HTTP/1.1"


def test_wss_trusted_via_ssl_cert_file(certificate, monkeypatch) -> None:
    """The stdlib default context: a certificate it trusts (SSL_CERT_FILE) verifies."""
    monkeypatch.setenv("SSL_CERT_FILE", str(certificate[0]))
    with ScriptedServer(lambda conn, request: conn.sendall(accept_head(request)), tls=_tls_context(certificate)) as server:
        run = run_probe(server.url("/ws/", scheme="wss"), "--wait", "0")
        server.received()
    assert run.code == 0, run


def test_tls_to_a_plain_server_fails() -> None:
    with ScriptedServer(lambda conn, request: None) as server:
        run = run_probe(server.url("/", scheme="wss"), "--timeout", "0.3")
    assert run.code == 2, run
    assert run.err == f"wsreject_probe: timed out after 0.3 s in the TLS handshake with 127.0.0.1:{server.port}\n"


def test_unresolvable_host() -> None:
    run = run_probe("ws://no-such-host.invalid/", "--timeout", "2")
    assert run.code == 2, run
    assert run.err.startswith("wsreject_probe: cannot resolve 'no-such-host.invalid'")


def test_refused_ipv4_port_free() -> None:
    port = free_port()
    assert run_probe(f"http://127.0.0.1:{port}/").code == 2
