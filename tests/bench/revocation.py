"""``python -m tests.bench.revocation``: the delay from a committed change to the close of the open
connections it revokes, with many connections open (default 1 000) on two uvicorn processes
sharing Redis (``WSREJECT_TEST_REDIS_URL``, flushed) and an SQLite demo database.

Two changes are made from a third process (``manage.py shell``), each measured from its commit to
the close every affected client sees: removing a user from a group (a tenth of the connections are
theirs: only those are decided again), then an access rule disabling their endpoint (every open
connection is decided again). Prints p50 / p99 / max per change, and checks that every other
connection still answers a ping. Load stays on 127.0.0.1.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import statistics
import tempfile
import time
from pathlib import Path

from tests.revocation.support import Held, bearer, change_and_watch, close_all, hold
from tests.security.deployment import django_shell
from tests.support.demo import prepare_demo
from tests.support.servers import running_server
from tests.support.services import REDIS_URL, redis_unreachable

ROOM, PRIVATE = "/ws/rooms/lobby/", "/ws/private/"


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(fraction * (len(ordered) - 1)))]


async def open_many(specs: list[tuple[str, object, str, str]], concurrency: int = 50) -> list[Held]:
    limit = asyncio.Semaphore(concurrency)

    async def one(spec: tuple[str, object, str, str]) -> Held:
        label, server, path, token = spec
        async with limit:
            return await hold(label, server, path, bearer(token))

    return list(await asyncio.gather(*(one(spec) for spec in specs)))


def summary(name: str, held: list[Held], committed: float, code: int) -> dict[str, float]:
    delays = [one.closed_at - committed for one in held if one.closed_at is not None and one.code == code]
    missing = len(held) - len(delays)
    result = {
        "closed": len(delays),
        "missing": missing,
        "p50": percentile(delays, 0.5) if delays else float("nan"),
        "p99": percentile(delays, 0.99) if delays else float("nan"),
        "max": max(delays) if delays else float("nan"),
        "mean": statistics.fmean(delays) if delays else float("nan"),
    }
    print(
        f"{name}: {len(delays)}/{len(held)} closed with {code}; commit to close "
        f"p50 {result['p50'] * 1000:.0f} ms, p99 {result['p99'] * 1000:.0f} ms, max {result['max'] * 1000:.0f} ms",
        flush=True,
    )
    return result


async def alive_count(held: list[Held]) -> int:
    results = await asyncio.gather(*(one.alive() for one in held))
    return sum(results)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--connections", type=int, default=1000)
    options = parser.parse_args()
    if (reason := redis_unreachable()) is not None:
        print(reason)
        return 2
    import redis

    redis.Redis.from_url(REDIS_URL).flushdb()
    total = options.connections
    affected = max(1, total // 10)
    with tempfile.TemporaryDirectory() as name, contextlib.ExitStack() as stack:
        directory = Path(name)
        data = prepare_demo(
            directory,
            {
                "REDIS_URL": REDIS_URL,
                "WSREJECT_LOG_LEVEL": "WARNING",
                "DJANGO_DEBUG": "0",
                "DJANGO_SECRET_KEY": "bench-revocation-secret-key-0123456789",
                "DJANGO_ALLOWED_HOSTS": "127.0.0.1,localhost",
            },
        )
        servers = [
            stack.enter_context(running_server("uvicorn-websockets", "project.asgi:application", env=data.env)) for _ in range(2)
        ]
        tokens = data.tokens

        def alice_rooms() -> list[tuple[str, object, str, str]]:
            return [(f"alice {i}", servers[i % 2], ROOM, tokens["alice"]) for i in range(affected)]

        async def run() -> int:
            others = await open_many([(f"bob {i}", servers[i % 2], PRIVATE, tokens["bob"]) for i in range(total - affected)])
            rooms = await open_many(alice_rooms())
            print(f"{len(others) + len(rooms)} connections open on two uvicorn processes", flush=True)
            committed = await change_and_watch(
                data.env,
                "import time\nfrom django.contrib.auth.models import User\n"
                "User.objects.get(username='alice').groups.clear()\nresult(time.time())\n",
                directory, rooms, within=10,
            )  # fmt: skip
            group = summary("group removed", rooms, committed, 4403)
            await close_all(rooms)
            django_shell(
                data.env,
                "from django.contrib.auth.models import Group, User\n"
                "User.objects.get(username='alice').groups.add(Group.objects.get(name='members'))\n",
            )
            rooms = await open_many(alice_rooms())
            committed = await change_and_watch(
                data.env,
                "import time\nfrom wsreject.models import AccessRule\n"
                "AccessRule.objects.create(endpoint='/ws/rooms/*', enabled=False)\nresult(time.time())\n",
                directory, rooms, within=10,
            )  # fmt: skip
            rule = summary("endpoint disabled (every connection decided again)", rooms, committed, 4503)
            alive = await alive_count(others)
            print(f"untouched connections still open: {alive}/{len(others)}", flush=True)
            await close_all(rooms + others)
            ok = alive == len(others) and not group["missing"] and not rule["missing"]
            return 0 if ok else 1

        started = time.monotonic()
        status = asyncio.run(run())
        print(f"done in {time.monotonic() - started:.1f} s", flush=True)
        return status


if __name__ == "__main__":
    raise SystemExit(main())
