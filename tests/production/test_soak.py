"""Soak in the production profile: accepted WebSockets stay open while idle.

The demo runs as deployed — PostgreSQL (a fresh database), Redis for the cache, the throttles and
the channel layer, ``DEBUG`` off — on two processes of one server kind. 200 connections (half to
the echo endpoint, half to a room joined with a bearer token, split across both processes) are held
for ``SOAK_SECONDS``: most stay idle the whole time; a few echo a message now and then, and a room
message now and then fans out through Redis to every member on both processes. None may close.

Without a channel-layer socket timeout above channels-redis' 5 s blocking receive (redis-py 8's
default is 5 s, check ``wsreject.E032``), about one idle connection per process closes with 1011
every 5 s: this test fails then.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import os
import uuid
from dataclasses import dataclass, field

import pytest

from tests.support.demo import DEMO_APP, prepare_demo
from tests.support.servers import Server, running_server
from tests.support.services import REDIS_URL, fresh_postgres_database, postgres_unreachable, redis_unreachable, require
from tests.support.wsclient import Accepted, ws_connect

pytestmark = [pytest.mark.server, pytest.mark.one_leg]

SOAK_SECONDS = float(os.environ.get("WSREJECT_SOAK_SECONDS", "32"))  # >= 30 s: six blocking receives of 5 s
CONNECTIONS = 200
ECHO_EVERY = 2.0  # one echo connection (rotating) sends a message this often
ROOM_EVERY = 8.0  # one room message, to every member, this often: members stay idle > 5 s in between
OPEN_CONCURRENCY = 20


@pytest.fixture(scope="module")
def production_env(tmp_path_factory):
    """The demo's production profile: a fresh PostgreSQL database and a flushed Redis database."""
    require(redis_unreachable())
    require(postgres_unreachable())
    import redis

    client = redis.Redis.from_url(REDIS_URL, socket_timeout=2)
    client.flushdb()
    with fresh_postgres_database("wsreject_soak") as database_url:
        demo = prepare_demo(
            tmp_path_factory.mktemp("soak"),
            {
                "DATABASE_URL": database_url,
                "REDIS_URL": REDIS_URL,
                "DJANGO_DEBUG": "0",
                "DJANGO_SECRET_KEY": "soak-" + uuid.uuid4().hex,
                "DJANGO_ALLOWED_HOSTS": "127.0.0.1,localhost",
                "WSREJECT_LOG_LEVEL": "WARNING",
            },
        )
        yield demo
    client.flushdb()


@dataclass
class Held:
    """One accepted connection and what it received while held."""

    kind: str
    server: Server
    accepted: Accepted
    messages: list[str] = field(default_factory=list)
    reader: asyncio.Task[None] | None = None

    async def read(self) -> None:
        with contextlib.suppress(Exception):  # the close is what the test looks at
            async for message in self.accepted.connection:
                self.messages.append(message if isinstance(message, str) else message.decode())

    def describe(self) -> str:
        return f"{self.kind} on :{self.server.port} closed {self.accepted.close_code} {self.accepted.close_reason!r}"


async def open_all(servers: tuple[Server, Server], room: str, token: str) -> list[Held]:
    limit = asyncio.Semaphore(OPEN_CONCURRENCY)
    plan = [(servers[i % 2], "echo" if (i // 2) % 2 else "room") for i in range(CONNECTIONS)]

    async def one(server: Server, kind: str) -> Held:
        async with limit:
            if kind == "echo":
                result = await ws_connect(server.url("/ws/echo/"), timeout=15)
            else:
                result = await ws_connect(
                    server.url(f"/ws/rooms/{room}/"), headers=[("Authorization", f"Bearer {token}")], timeout=15
                )
            assert isinstance(result, Accepted), f"{kind} on :{server.port}: {result.status_code} {result.body!r}"
            held = Held(kind, server, result)
            if kind == "room":
                assert json.loads(await result.recv(10)) == {"room": room, "user": "alice"}
            held.reader = asyncio.create_task(held.read())
            return held

    return list(await asyncio.gather(*(one(server, kind) for server, kind in plan)))


async def soak(servers: tuple[Server, Server], room: str, token: str) -> None:
    held = await open_all(servers, room, token)
    readers = {h.reader: h for h in held if h.reader is not None}
    echoes = itertools.cycle([h for h in held if h.kind == "echo"])
    rooms = itertools.cycle([h for h in held if h.kind == "room"])
    sent_echo: list[tuple[Held, str]] = []
    sent_room: list[str] = []

    async def traffic() -> None:
        loop = asyncio.get_running_loop()
        start = loop.time()
        for tick in itertools.count():
            if tick * ECHO_EVERY % ROOM_EVERY == 0:
                text = f"room-{tick}"
                await next(rooms).accepted.send(json.dumps({"text": text}))
                sent_room.append(text)
            target, text = next(echoes), f"echo-{tick}"
            await target.accepted.send(text)
            sent_echo.append((target, text))
            await asyncio.sleep(max(0.0, start + (tick + 1) * ECHO_EVERY - loop.time()))  # pacing, not waiting

    sender = asyncio.create_task(traffic())
    try:
        # The hold: returns early at the first connection that closes.
        closed, _ = await asyncio.wait(readers, timeout=SOAK_SECONDS, return_when=asyncio.FIRST_COMPLETED)
    finally:
        sender.cancel()
    closed_now = sorted(readers[task].describe() for task in readers if task.done())
    assert not closed, f"{len(closed_now)} of {CONNECTIONS} closed while held: {closed_now[:10]}"
    with contextlib.suppress(asyncio.CancelledError):
        await sender  # a failed send, with every connection open, fails the test here
    assert len(sent_room) >= SOAK_SECONDS // ROOM_EVERY and len(sent_echo) >= SOAK_SECONDS // ECHO_EVERY - 1

    # What was sent arrived: each echo to its sender, each room message to every member on both processes.
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 10

    def missing() -> list[str]:
        gaps = [f"{h.describe()}: no echo {text!r}" for h, text in sent_echo if text not in h.messages]
        for h in held:
            if h.kind == "room":
                texts = [json.loads(m)["text"] for m in h.messages if "text" in json.loads(m)]
                if texts != sent_room:
                    gaps.append(f"room member on :{h.server.port} got {texts}, not {sent_room}")
        return gaps

    while missing() and loop.time() < deadline:
        await asyncio.sleep(0.1)
    assert missing() == []

    await asyncio.gather(*(h.accepted.close() for h in held))
    assert {h.accepted.close_code for h in held} == {1000}


@pytest.mark.parametrize(("kind", "room"), [("uvicorn-websockets", "lobby"), ("daphne-wsreject", "dev")])
def test_idle_connections_stay_open_on_two_processes(production_env, kind, room):
    with contextlib.ExitStack() as stack:
        servers = (
            stack.enter_context(running_server(kind, DEMO_APP, env=production_env.env)),
            stack.enter_context(running_server(kind, DEMO_APP, env=production_env.env)),
        )
        asyncio.run(soak(servers, room, production_env.tokens["alice"]))
        for server in servers:
            log = server.log()
            assert "Timeout reading" not in log and "Traceback" not in log, log[-3000:]
