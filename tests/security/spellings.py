"""Spellings of the demo's routes, as clients send them and as servers put them in ``scope["path"]``.

Servers percent-decode the request target into ``scope["path"]`` (``raw_path``
keeps it): ``%2F`` and ``%2f`` become ``/``, ``%2E`` becomes ``.``, with no
dot-segment or slash normalisation. :data:`DELIVERED` is that mapping, measured on
uvicorn 0.54 (every ``--ws``) and Daphne 4.2.3 and asserted against them by
``test_paths_servers.py``; :data:`DELIVERED_DIFFERENTLY` holds the targets the two
parse differently. The in-process tests feed the delivered values to the stack.
"""

from __future__ import annotations

import itertools

#: request target -> scope["path"], the same on uvicorn and Daphne + wsreject.
DELIVERED: dict[str, str] = {
    "/ws/rooms/lobby/": "/ws/rooms/lobby/",
    "/ws//rooms/lobby/": "/ws//rooms/lobby/",
    "/ws///rooms/lobby/": "/ws///rooms/lobby/",
    "/ws%2Frooms/lobby/": "/ws/rooms/lobby/",
    "/ws%2frooms/lobby/": "/ws/rooms/lobby/",
    "/ws%2frooms%2flobby%2f": "/ws/rooms/lobby/",
    "/ws/%2Frooms/lobby/": "/ws//rooms/lobby/",
    "/ws/%72ooms/lob%62y/": "/ws/rooms/lobby/",
    "/ws/rooms/lobby%2F": "/ws/rooms/lobby/",
    "/ws/rooms/lobby/%2F": "/ws/rooms/lobby//",
    "/ws/rooms%2F/lobby/": "/ws/rooms//lobby/",
    "/ws/rooms/%2E/lobby/": "/ws/rooms/./lobby/",
    "/ws/%2E%2E/ws/rooms/lobby/": "/ws/../ws/rooms/lobby/",
    "/ws/./rooms/lobby/": "/ws/./rooms/lobby/",
    "/ws/rooms/lobby%00/": "/ws/rooms/lobby\x00/",
    "/ws/rooms/%ff/": "/ws/rooms/\ufffd/",
    "/ws/rooms/LOBBY/": "/ws/rooms/LOBBY/",
    "/WS/rooms/lobby/": "/WS/rooms/lobby/",
    "/ws/rooms/lobby/?x=/ws/echo/": "/ws/rooms/lobby/",
    "/ws/browser//rooms/lobby/": "/ws/browser//rooms/lobby/",
    "/ws%2Fbrowser%2Frooms%2Flobby%2F": "/ws/browser/rooms/lobby/",
}

#: request target -> {server: scope["path"]} where the servers disagree: Daphne (Twisted)
#: reads ``//ws/...`` as a network-path reference with authority ``ws``, and reduces an
#: absolute-form target to its path; uvicorn keeps both as sent.
DELIVERED_DIFFERENTLY: dict[str, dict[str, str]] = {
    "//ws/rooms/lobby/": {"uvicorn": "//ws/rooms/lobby/", "daphne": "/rooms/lobby/"},
    "//ws//rooms//lobby/": {"uvicorn": "//ws//rooms//lobby/", "daphne": "//rooms//lobby/"},
    "http://127.0.0.1/ws/rooms/lobby/": {"uvicorn": "http://127.0.0.1/ws/rooms/lobby/", "daphne": "/ws/rooms/lobby/"},
}


def slash_variants(segments: list[str], max_slashes: int = 3) -> list[str]:
    """Every path joining ``segments`` with 1..``max_slashes`` slashes at each boundary
    (leading, between, trailing) — what Channels' routing may or may not accept."""
    boundaries = len(segments) + 1
    variants = []
    for counts in itertools.product(range(1, max_slashes + 1), repeat=boundaries):
        parts = ["/" * counts[0]]
        for segment, count in zip(segments, counts[1:]):
            parts.append(segment + "/" * count)
        variants.append("".join(parts))
    return variants


def scope_paths() -> list[str]:
    """The scope paths the in-process tests try: delivered spellings, slash, case and
    trailing-slash variants of the room and other routes on both mounts."""
    paths = set(DELIVERED.values())
    for spelled in DELIVERED_DIFFERENTLY.values():
        paths.update(spelled.values())
    paths.update(slash_variants(["ws", "rooms", "lobby"]))
    paths.update(slash_variants(["ws", "browser", "rooms", "lobby"], 2))
    paths.update(slash_variants(["ws", "limited"]))
    paths.update(
        [
            "/ws/rooms/lobby",  # trailing slash missing
            "/ws/rooms/lobby//",
            "/ws/rooms/lobby/x/",
            "/ws/rooms/",
            "/ws/rooms//",
            "/ws/Rooms/lobby/",
            "/Ws/rooms/lobby/",
            "/ws/ROOMS/lobby/",
            "/ws/rooms/Lobby/",
            "/ws/rooms/nope/",
            "/ws/rooms/lobby/../lobby/",
            "/ws/rooms/lo%62by/",  # a literal %: no server delivers this undecoded, but the app must cope
            "/ws/rooms/lobby\n/",
            "/ws/rooms/lobby /",
            "/ws/rooms/lobby;x/",
            "/ws/rooms/ lobby/",
            "/ws/browser/rooms/lobby",
            "/ws/browser/Rooms/lobby/",
            "/ws/browser/rooms/LOBBY/",
            "/ws/browserrooms/lobby/",
            "/ws/browser/ws/rooms/lobby/",
            "/ws/ws/rooms/lobby/",
            "/rooms/lobby/",
            "/ws/echo/",
            "/ws/private/",
            "/ws/limited",
            "/ws/deny/403/",
            "/ws/deny/-1/",
            "/ws/deny/\u0663/",  # ARABIC-INDIC DIGIT THREE: not [0-9]
            "",
            "/",
            "//",
        ]
    )
    return sorted(paths)
