"""Small helpers for tests (fixtures live in conftest.py)."""


def bearer(token: str) -> list[tuple[bytes, bytes]]:
    """The Authorization header for ``token``, as ASGI header pairs."""
    return [(b"authorization", b"Bearer " + token.encode("ascii"))]


def header_dict(headers) -> dict[str, str]:
    """ASGI header pairs as {name: value} (last one wins), decoded as latin-1."""
    return {k.decode("latin-1"): v.decode("latin-1") for k, v in headers}
