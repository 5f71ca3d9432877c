"""The shared index of processes with denials survives two processes flushing at once: each
writer reads the index back and writes again while its own name is missing."""

from __future__ import annotations

from typing import Any

from wsreject.access.denial_log import INDEX_KEY, register


class RacingCache:
    """A cache in which another process rewrites the index from a stale read right after our
    first write, as two processes flushing at the same moment do."""

    def __init__(self, stale: dict[str, float]) -> None:
        self.data: dict[str, Any] = {}
        self.stale = stale
        self.writes = 0

    def get(self, key: str, default: Any = None) -> Any:
        return self.data.get(key, default)

    def set(self, key: str, value: Any, timeout: float | None = None) -> None:
        self.data[key] = dict(value)
        self.writes += 1
        if key == INDEX_KEY and self.writes == 1:
            self.data[key] = dict(self.stale)  # the other process's write, from the empty index it read


def test_a_name_overwritten_by_a_concurrent_flush_is_written_again():
    cache = RacingCache(stale={"web-2": 1000.0})
    register(cache, "web-1", 1000.0)
    assert set(cache.data[INDEX_KEY]) == {"web-1", "web-2"}


def test_a_listed_process_does_not_rewrite_the_index():
    cache = RacingCache(stale={})
    cache.data[INDEX_KEY] = {"web-1": 999.0, "web-2": 999.5}
    register(cache, "web-1", 1000.0)
    assert cache.writes == 0
