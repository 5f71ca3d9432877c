"""The WebSocket endpoints of the routing, and which one a handshake reaches.

Channels' ``URLRouter`` strips leading slashes at every level, so
``/ws//rooms/lobby/`` reaches the same consumer as ``/ws/rooms/lobby/``.
Decisions about an endpoint must therefore follow the routing, not the spelling
of the path: :class:`Router` walks the routing exactly as ``URLRouter`` does
(``root_path``, then at each level ``lstrip("/")`` and the first matching
route, trying the next one when a nested router finds nothing) and returns the
:class:`Endpoint` reached with its *routed path* — the path as the routing
consumed it (``/ws/rooms/lobby/`` for every spelling above).

Wrappers are looked through by their ``inner`` (Channels' and wsreject's
middleware), ``application`` (Channels' ``OriginValidator``) or ``app``
attribute.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from ..scope import Scope

WRAPPER_ATTRIBUTES = ("inner", "application", "app")
MAX_DEPTH = 50


@dataclass(frozen=True)
class Endpoint:
    """A WebSocket route as Channels' ``URLRouter`` resolves it."""

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
        """Whether the routing sends ``path`` (as a ``URLRouter`` sees it) here."""
        for pattern in self.patterns:
            match = pattern.match(path.lstrip("/"))
            if not match:
                return False
            path = match[0]
        return True


def inner_of(app: Any) -> Any:
    """What a wrapper delegates to, or None."""
    for attribute in WRAPPER_ATTRIBUTES:
        inner = getattr(app, attribute, None)
        if inner is not None and callable(inner):
            return inner
    return None


def _denial_mode(app: Any) -> str | None:
    mode = getattr(app, "denial_mode", None)
    return mode if isinstance(mode, str) and not isinstance(app, type) and not hasattr(app, "consumer_class") else None


def unwrap(app: Any) -> tuple[Any, str | None]:
    """Follow wrappers down to what has routes or a consumer class; the innermost stack mode."""
    mode = None
    for _ in range(MAX_DEPTH):
        mode = _denial_mode(app) or mode
        if hasattr(app, "routes") or hasattr(app, "consumer_class"):
            break
        inner = inner_of(app)
        if inner is None:
            break
        app = inner
    return app, mode


def websocket_application(app: Any) -> Any:
    """The WebSocket branch of a ``ProtocolTypeRouter`` (or ``app`` itself)."""
    mapping = getattr(app, "application_mapping", None)
    if isinstance(mapping, dict):
        return mapping.get("websocket")
    return app


def _pattern_text(pattern: Any) -> str:
    return str(pattern).removeprefix("^").removesuffix("$").removesuffix(r"\Z")


def iter_endpoints(
    app: Any, route: str = "/", patterns: tuple[Any, ...] = (), mode: str | None = None, depth: int = 0
) -> Iterator[Endpoint]:
    """Every WebSocket endpoint reachable from ``app``, in routing order."""
    if depth > MAX_DEPTH:
        return
    app = websocket_application(app)
    app, inner_mode = unwrap(app)
    mode = inner_mode or mode
    routes = getattr(app, "routes", None)
    if not isinstance(routes, (list, tuple)):
        return
    for entry in routes:
        pattern, callback = getattr(entry, "pattern", None), getattr(entry, "callback", None)
        if pattern is None or callback is None:
            continue
        text = route + _pattern_text(pattern)
        if getattr(callback, "_path_routing", False):
            yield from iter_endpoints(callback, text, patterns + (pattern,), mode, depth + 1)
            continue
        leaf, leaf_mode = unwrap(callback)
        consumer_class = getattr(leaf, "consumer_class", None)
        consumer_mode = getattr(consumer_class, "denial_mode", None)
        yield Endpoint(
            route=text,
            name=getattr(entry, "name", None),
            application=callback,
            consumer_class=consumer_class,
            patterns=patterns + (pattern,),
            denial_mode=consumer_mode if isinstance(consumer_mode, str) else (leaf_mode or mode),
        )


def opaque_routers(app: Any, depth: int = 0) -> Iterator[Any]:
    """Path-routing callbacks whose routes cannot be seen (a wrapper without ``inner``)."""
    if depth > MAX_DEPTH:
        return
    app, _ = unwrap(websocket_application(app))
    for entry in getattr(app, "routes", None) or ():
        callback = getattr(entry, "callback", None)
        if callback is not None and getattr(callback, "_path_routing", False):
            inner, _ = unwrap(callback)
            if not isinstance(getattr(inner, "routes", None), (list, tuple)):
                yield callback
            else:
                yield from opaque_routers(callback, depth + 1)


@dataclass(frozen=True)
class Routed:
    """Where the routing sends a handshake: the endpoint, and the path as the routing consumed it."""

    endpoint: Endpoint
    path: str  # "/ws/rooms/lobby/" for "/ws//rooms/lobby/"


class Router:
    """Resolve handshakes to endpoints as the ``URLRouter`` inside ``app`` will."""

    def __init__(self, app: Any) -> None:
        self.endpoints = tuple(iter_endpoints(app))

    def resolve(self, scope: Scope) -> Routed | None:
        """The endpoint this handshake reaches, or None when the routing has none for it."""
        path = scope.get("path_remaining")
        if path is None:
            path, root_path = scope.get("path", ""), scope.get("root_path", "")
            if root_path:
                if not path.startswith(root_path):
                    return None
                path = path[len(root_path) :]
        for endpoint in self.endpoints:
            consumed = self._consume(endpoint, path)
            if consumed is not None:
                return Routed(endpoint, "/" + consumed)
        return None

    @staticmethod
    def _consume(endpoint: Endpoint, path: str) -> str | None:
        consumed = ""
        for pattern in endpoint.patterns:
            path = path.lstrip("/")
            match = pattern.match(path)
            if not match:
                return None
            remaining = match[0]
            consumed += path[: len(path) - len(remaining)]
            path = remaining
        return consumed


def project_endpoints() -> tuple[Endpoint, ...]:
    """The endpoints of ``settings.ASGI_APPLICATION`` (for the admin, ``migrate`` and checks)."""
    from django.conf import settings
    from django.utils.module_loading import import_string

    path = getattr(settings, "ASGI_APPLICATION", None)
    return tuple(iter_endpoints(import_string(path))) if path else ()
