"""The WebSocket endpoints of a routing, listed for people (the admin, ``migrate``, checks).

Decisions never use this listing: they are made on the route Channels' router
matched (:mod:`wsreject.routes`). :class:`Router` answers "where does this path
go?" by running the real routing on a probe scope, not by walking a copy of it.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from .handshake import ProbeHandshake, ProbeStop
from .routes import (
    MAX_DEPTH,
    RouteHit,
    Routing,
    application_of,
    consumer_class_of,
    inner_of,
    iter_opaque,
    leaf_denial_mode,
    router_of,
    websocket_application,
)
from .scope import HANDSHAKE_KEY
from .types import Scope

__all__ = ["Endpoint", "Routed", "Router", "inner_of", "iter_endpoints", "opaque_routers", "project_endpoints"]


@dataclass(frozen=True)
class Endpoint:
    """A WebSocket route of the routing, as written."""

    route: str  # "/ws/rooms/<slug:name>/"
    name: str | None
    application: Any  # what the route calls (as_asgi() app or middleware)
    consumer_class: type | None
    patterns: tuple[Any, ...]  # Django patterns from the outermost router inwards
    denial_mode: str | None  # of an enclosing DenialMiddleware or the consumer

    @property
    def consumer_name(self) -> str:
        return self.consumer_class.__name__ if self.consumer_class else ""

    def matches(self, path: str) -> bool:
        """Whether ``path`` (as a ``URLRouter`` sees it) matches this route's patterns (for the
        admin's "covers some" column; decisions ask the routing itself)."""
        for pattern in self.patterns:
            match = pattern.match(path.lstrip("/"))
            if not match:
                return False
            path = match[0]
        return True


def _stack_mode(app: Any, mode: str | None) -> str | None:
    """The innermost ``denial_mode`` of the wrappers from ``app`` down to its router."""
    for _ in range(MAX_DEPTH):
        if app is None or getattr(app, "routes", None) is not None:
            break
        declared = getattr(app, "denial_mode", None)
        if isinstance(declared, str) and not isinstance(app, type) and getattr(app, "consumer_class", None) is None:
            mode = declared
        app = inner_of(app)
    return mode


def _pattern_text(pattern: Any) -> str:
    return str(pattern).removeprefix("^").removesuffix("$").removesuffix(r"\Z")


def iter_endpoints(
    app: Any, route: str = "/", patterns: tuple[Any, ...] = (), mode: str | None = None, depth: int = 0
) -> Iterator[Endpoint]:
    """Every WebSocket endpoint reachable from ``app``, in routing order."""
    if depth > MAX_DEPTH:
        return
    app = websocket_application(app)
    mode = _stack_mode(app, mode)
    router = router_of(app)
    if router is None:
        return
    for entry in router.routes:
        pattern, callback = getattr(entry, "pattern", None), getattr(entry, "callback", None)
        if pattern is None or callback is None:
            continue
        callback = application_of(callback)
        text = route + _pattern_text(pattern)
        if router_of(callback) is not None:
            yield from iter_endpoints(callback, text, patterns + (pattern,), mode, depth + 1)
            continue
        yield Endpoint(
            route=text,
            name=getattr(entry, "name", None),
            application=callback,
            consumer_class=consumer_class_of(callback),
            patterns=patterns + (pattern,),
            denial_mode=leaf_denial_mode(callback) or mode,
        )


def opaque_routers(app: Any) -> Iterator[tuple[str, Any]]:
    """The parts of the routing that hide their routes: ``(route, callback)`` (see :mod:`wsreject.routes`)."""
    return iter_opaque(app)


@dataclass(frozen=True)
class Routed:
    """Where the routing sends a handshake: the endpoint, and the path as the routing consumed it."""

    endpoint: Endpoint
    path: str  # "/ws/rooms/lobby/" for "/ws//rooms/lobby/"
    hit: RouteHit


class Router:
    """Where ``app``'s routing sends a handshake, asked of the routing itself (a probe run).

    The probe starts at the outermost router and stops at the leaf recorder, so it
    must not wait on anything: Channels' routers and path-rewriting middleware never do.
    """

    def __init__(self, app: Any) -> None:
        self.app = websocket_application(app)
        self.router = router_of(self.app)
        self.routing = Routing(self.app)
        self.mode = _stack_mode(self.app, None)

    @property
    def endpoints(self) -> tuple[Endpoint, ...]:
        return tuple(iter_endpoints(self.app))

    def resolve(self, scope: Scope) -> Routed | None:
        """The endpoint this handshake reaches, or None when the routing has none for it."""
        if self.router is None:
            return None
        self.routing.ensure()
        handshake = ProbeHandshake(routing_only=True)
        probe = {"type": "websocket", "headers": [], **scope, HANDSHAKE_KEY: handshake}
        coroutine = self.router(probe, handshake.receive, handshake.send)
        try:
            coroutine.send(None)
        except ProbeStop as stop:
            hit = stop.hit
        except Exception:
            return None
        else:  # it waited on something: not a routing
            coroutine.close()
            return None
        if hit is None:
            return None
        endpoint = Endpoint(
            route=hit.template,
            name=hit.name,
            application=hit.application,
            consumer_class=hit.consumer_class,
            patterns=tuple(route.pattern for route in hit.routes),
            denial_mode=handshake.denial_mode or self.mode,
        )
        return Routed(endpoint, hit.path, hit)


def project_endpoints() -> tuple[Endpoint, ...]:
    """The endpoints of ``settings.ASGI_APPLICATION`` (for the admin, ``migrate`` and checks)."""
    from django.conf import settings
    from django.utils.module_loading import import_string

    path = getattr(settings, "ASGI_APPLICATION", None)
    return tuple(iter_endpoints(import_string(path))) if path else ()
