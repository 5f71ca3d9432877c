"""Open connections held by a test, and a change made by a third process while they are watched."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.security.deployment import PendingShell
from tests.support.wsclient import Accepted, ws_connect


@dataclass
class Held:
    """One open connection and when (``time.time()``) the client saw it closed."""

    label: str
    connection: Accepted
    closed_at: float | None = None
    watcher: asyncio.Task[None] | None = field(default=None, repr=False)

    @property
    def code(self) -> int | None:
        return self.connection.close_code

    @property
    def reason(self) -> str | None:
        return self.connection.close_reason

    async def _watch(self) -> None:
        await self.connection.connection.wait_closed()
        self.closed_at = time.time()

    async def alive(self) -> bool:
        """Open, and answers a ping (the server's side of it is up)."""
        if self.closed_at is not None:
            return False
        try:
            pong = await self.connection.connection.ping()
            await asyncio.wait_for(pong, 2)
        except Exception:
            return False
        return self.closed_at is None


async def hold(label: str, server: Any, path: str, headers: list[tuple[str, str]], *, greeting: bool = True) -> Held:
    """Open ``path`` on ``server``, read the consumer's greeting, and watch for its close."""
    result = await ws_connect(server.url(path), headers=headers)
    assert isinstance(result, Accepted), f"{label}: {result!r}"
    if greeting:
        await result.recv()
    held = Held(label, result)
    held.watcher = asyncio.ensure_future(held._watch())
    return held


def bearer(token: str) -> list[tuple[str, str]]:
    return [("Authorization", f"Bearer {token}")]


async def change_and_watch(env: dict[str, str], code: str, directory: Path, closing: list[Held], *, within: float) -> float:
    """Run ``code`` in a third process (``manage.py shell``, started beforehand) and wait at most
    ``within`` seconds after it returns for every connection of ``closing`` to close. The code
    must end with ``result(time.time())`` once its change is committed; that time is returned."""
    shell = PendingShell(env, code, directory)
    try:
        await asyncio.to_thread(shell.wait_ready)
        committed: float = await asyncio.to_thread(shell.go)
    finally:
        shell.close()
    watchers = [held.watcher for held in closing if held.watcher is not None]
    if watchers:
        await asyncio.wait(watchers, timeout=max(0.1, committed + within - time.time()))
    return committed


async def close_all(held: list[Held]) -> None:
    for one in held:
        if one.closed_at is None:
            await one.connection.close()
        if one.watcher is not None:
            one.watcher.cancel()
