"""A redis-py connection pool that counts the commands its connections send (a real Redis answers them)."""

from __future__ import annotations

import threading
from typing import Any

import redis


class CommandCount:
    def __init__(self) -> None:
        self.value = 0
        self.names: list[str] = []
        self._lock = threading.Lock()

    def add(self, name: str) -> None:
        with self._lock:
            self.value += 1
            self.names.append(name)


commands = CommandCount()


class CountingConnection(redis.Connection):
    def send_packed_command(self, command: Any, check_health: bool = True) -> None:
        commands.add(bytes(command[0] if isinstance(command, list) else command)[:60].decode("latin-1"))
        super().send_packed_command(command, check_health)


class CountingPool(redis.ConnectionPool):
    def __init__(self, **kwargs: Any) -> None:
        kwargs["connection_class"] = CountingConnection
        super().__init__(**kwargs)
