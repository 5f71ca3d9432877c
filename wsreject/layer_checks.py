"""System check ``wsreject.E032``: a channels-redis layer whose reads time out before its receive.

channels-redis receives with a blocking ``BZPOPMIN`` of ``brpop_timeout`` seconds (5). redis-py 8
gives every connection a ``socket_timeout`` of 5 s by default (earlier versions: none), so an idle
receive can time out on the client just as the server answers: the consumer's ``receive`` raises
``redis.TimeoutError`` and the server closes an idle, healthy WebSocket with 1011 — about one every
5 s per process. The fix is a socket timeout above the blocking one, per host.
"""

from __future__ import annotations

import inspect
from collections.abc import Iterator
from importlib.metadata import PackageNotFoundError, version
from typing import Any, cast
from urllib.parse import parse_qs, urlsplit

from django.conf import settings
from django.core.checks import CheckMessage, Error
from django.utils.module_loading import import_string

__all__ = ["FIX_HINT", "blocking_layers", "check_channel_layers", "default_socket_timeout", "host_socket_timeout"]

FIX_HINT = (
    'Give each host a socket timeout above it, e.g. "hosts": [{"address": REDIS_URL, "socket_timeout": 10}] '
    '(or "?socket_timeout=10" in the URL).'
)


def default_socket_timeout() -> float | None:
    """The ``socket_timeout`` the installed redis-py gives a connection that names none."""
    try:
        from redis.asyncio.connection import Connection
    except ImportError:
        return None
    for cls in Connection.__mro__:
        parameter = inspect.signature(vars(cls).get("__init__", object.__init__)).parameters.get("socket_timeout")
        if parameter is not None and parameter.default is not inspect.Parameter.empty:
            default = parameter.default
            return float(default) if isinstance(default, (int, float)) else None
    return None


def host_socket_timeout(host: dict[str, Any], default: float | None) -> float | None:
    """The read timeout channels-redis' pool gets for one decoded host (URL options win, as in redis-py)."""
    timeout = host.get("socket_timeout", default)
    address = host.get("address")
    if isinstance(address, str):
        values = parse_qs(urlsplit(address).query).get("socket_timeout")
        if values:
            try:
                timeout = float(values[-1])
            except ValueError:
                return None  # redis-py refuses the URL itself, more clearly than we could
    return float(timeout) if isinstance(timeout, (int, float)) and not isinstance(timeout, bool) else None


def blocking_layers() -> Iterator[tuple[str, dict[str, Any], float]]:
    """``(alias, config, blocking timeout)`` for each configured layer that receives by blocking reads."""
    try:
        from channels_redis.core import RedisChannelLayer
    except ImportError:
        return
    layers = getattr(settings, "CHANNEL_LAYERS", None)
    if not isinstance(layers, dict):
        return
    for alias, config in layers.items():
        if not isinstance(config, dict) or not isinstance(config.get("BACKEND"), str):
            continue
        try:
            backend: Any = import_string(config["BACKEND"])
        except ImportError:
            continue  # Channels reports a backend it cannot load
        if isinstance(backend, type) and issubclass(backend, RedisChannelLayer):
            yield alias, config, float(cast(Any, backend).brpop_timeout)


def check_channel_layers(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    """``wsreject.E032`` for each channels-redis host whose socket timeout is not above the blocking receive."""
    errors: list[CheckMessage] = []
    layers = list(blocking_layers())
    if not layers:
        return errors
    from channels_redis.utils import decode_hosts

    default = default_socket_timeout()
    try:
        redis_version = version("redis")
    except PackageNotFoundError:
        redis_version = "?"
    for alias, config, blocking in layers:
        layer_config = config.get("CONFIG") or {}
        try:
            hosts = decode_hosts(layer_config.get("hosts") if isinstance(layer_config, dict) else None)
        except (ValueError, TypeError):
            continue  # channels-redis refuses these hosts itself when the layer is built
        for index, host in enumerate(hosts):
            if not isinstance(host, dict):
                continue
            timeout = host_socket_timeout(host, default)
            if timeout is None or timeout > blocking:
                continue
            errors.append(
                Error(
                    f"CHANNEL_LAYERS[{alias!r}] host {index}: redis-py {redis_version} reads with a socket "
                    f"timeout of {timeout:g} s, not above channels-redis' blocking receive of {blocking:g} s, "
                    "so idle WebSockets are closed with 1011 (about one every "
                    f"{blocking:g} s per process).",
                    hint=FIX_HINT,
                    id="wsreject.E032",
                )
            )
    return errors
