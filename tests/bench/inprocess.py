"""In-process measurements against the demo's own database, run in a subprocess that has
the demo's environment (the harness itself never imports Django).

``sessions USER...``
    Log each user in (``Client.force_login``) and print ``{"cookie": name, "sessions": {user: key}}``.
``costs`` (a JSON list of cases on stdin)
    For each case, play the handshake with :class:`wsreject.testing.HandshakeCommunicator`
    against the app until its caches are warm, then count, over ``repeat`` more handshakes,
    the SQL statements executed (any thread) and the hops off the event loop through
    asgiref's ``SyncToAsync`` — the counters of ``tests/conftest.py``'s ``query_counter`` and
    ``thread_hop_counter``. A handshake is counted from ``websocket.connect`` to the answer
    (and the first message when one is expected); the teardown of an accepted connection
    (disconnect) is counted apart. Channels' test communicator replaces
    ``close_old_connections`` with ``no_op``: that hop is still a hop (a real server runs
    ``close_old_connections`` in it).
"""

from __future__ import annotations

import json
import os
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any


class Counter:
    def __init__(self) -> None:
        self.items: list[str] = []
        self._lock = threading.Lock()

    def add(self, item: str) -> None:
        with self._lock:
            self.items.append(item)


@contextmanager
def counting() -> Iterator[tuple[Counter, Counter]]:
    """(queries, hops) counted while the block runs, in every thread."""
    from asgiref.sync import SyncToAsync
    from django.db.backends.utils import CursorWrapper

    queries, hops = Counter(), Counter()
    execute, executemany, call = CursorWrapper.execute, CursorWrapper.executemany, SyncToAsync.__call__

    def counted_execute(self: Any, sql: str, params: Any = None) -> Any:
        queries.add(sql)
        return execute(self, sql, params)

    def counted_executemany(self: Any, sql: str, param_list: Any) -> Any:
        queries.add(sql)
        return executemany(self, sql, param_list)

    async def counted_call(self: Any, *args: Any, **kwargs: Any) -> Any:
        hops.add(getattr(self.func, "__qualname__", repr(self.func)))
        return await call(self, *args, **kwargs)

    CursorWrapper.execute, CursorWrapper.executemany = counted_execute, counted_executemany  # type: ignore[method-assign,assignment]
    SyncToAsync.__call__ = counted_call  # type: ignore[method-assign]
    try:
        yield queries, hops
    finally:
        CursorWrapper.execute, CursorWrapper.executemany = execute, executemany  # type: ignore[method-assign]
        SyncToAsync.__call__ = call  # type: ignore[method-assign]


def sessions(users: list[str]) -> dict[str, Any]:
    from django.conf import settings
    from django.contrib.auth import get_user_model
    from django.test import Client

    keys = {}
    for username in users:
        client = Client()
        client.force_login(get_user_model().objects.get(username=username))
        keys[username] = client.cookies[settings.SESSION_COOKIE_NAME].value
    return {"cookie": settings.SESSION_COOKIE_NAME, "sessions": keys}


async def _handshake(app: Any, case: dict[str, Any], counters: tuple[Counter, Counter] | None) -> dict[str, Any]:
    from wsreject.testing import Denied, HandshakeCommunicator

    headers = [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in case["headers"]]
    communicator = HandshakeCommunicator(app, case["path"], headers=headers)
    mark = [len(c.items) for c in counters] if counters else None
    result = await communicator.handshake(timeout=5)
    status = result.status_code if isinstance(result, Denied) else 101
    if result.accepted and case.get("first_message"):
        await communicator.receive_output(5)
    handshake = [c.items[m:] for c, m in zip(counters, mark)] if counters and mark else None
    mark = [len(c.items) for c in counters] if counters else None
    if result.accepted:
        await communicator.disconnect()
    else:
        # What a server does after a denial response: the client is gone.
        await communicator.send_input({"type": "websocket.disconnect", "code": 1006})
        await communicator.wait(5)
    teardown = [c.items[m:] for c, m in zip(counters, mark)] if counters and mark else None
    return {"status": status, "handshake": handshake, "teardown": teardown}


def wait_for_bus() -> None:
    """In the Redis profile, a warm handshake is one whose copies the invalidation bus keeps:
    wait until it has subscribed (as a server that has run a while has), and until every push
    published so far (the versions the warm-up created, say) has been heard."""
    import time

    from wsreject.cache import bus
    from wsreject.cache.versions import get_cache, local, uses_local_layer

    cache = get_cache()
    uses_local_layer(cache)  # starts the bus where the cache has one
    running = bus.bus_for(cache)
    if running is None:
        return
    if not running.wait_live(10):
        raise SystemExit("the invalidation bus did not subscribe within 10 s")
    marker = "wsreject:bench:marker"
    local.versions[marker] = ("marker", time.monotonic())
    bus.publish(cache, [marker])
    deadline = time.monotonic() + 10
    while marker in local.versions:
        if time.monotonic() > deadline:
            raise SystemExit("the invalidation bus did not deliver within 10 s")
        time.sleep(0.01)


def costs(cases: list[dict[str, Any]]) -> list[dict[str, Any]]:
    from asgiref.sync import async_to_sync
    from django.utils.module_loading import import_string

    results = []
    for case in cases:
        app = import_string(case["app"].replace(":", "."))
        for _ in range(int(case.get("warm", 3))):
            async_to_sync(_handshake)(app, case, None)
        wait_for_bus()
        played = []
        with counting() as counters:
            for _ in range(int(case.get("repeat", 3))):
                played.append(async_to_sync(_handshake)(app, case, counters))
        queries = [len(p["handshake"][0]) for p in played]
        hops = [len(p["handshake"][1]) for p in played]
        results.append({
            "peer": case["peer"], "scenario": case["scenario"],
            "statuses": sorted({p["status"] for p in played}),
            "queries": queries, "hops": hops,
            "query_sql": [q[:160] for q in played[-1]["handshake"][0]],
            "hop_names": played[-1]["handshake"][1],
            "hop_names_by_handshake": [p["handshake"][1] for p in played],
            "teardown_queries": len(played[-1]["teardown"][0]),
            "teardown_hops": played[-1]["teardown"][1],
        })  # fmt: skip
    return results


def main() -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "project.settings")
    import django

    django.setup()
    command, *args = sys.argv[1:]
    if command == "sessions":
        json.dump(sessions(args), sys.stdout)
    elif command == "costs":
        json.dump(costs(json.load(sys.stdin)), sys.stdout)
    else:
        raise SystemExit(f"unknown command {command!r}")


if __name__ == "__main__":
    main()
