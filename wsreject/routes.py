"""Learn the route Channels' ``URLRouter`` matched, as Channels calls it — never by walking a copy.

Channels' ``URLRouter`` calls ``route.callback(dict(scope, path_remaining=…,
url_route=…), …)`` for the route it matched. :func:`instrument` replaces the
``callback`` of every route object a routing can reach by a
:class:`RouteRecorder` around it, instance by instance and idempotently (one
route list mounted twice is wrapped once; Channels' classes are never
patched). Each recorder appends a :class:`Hop` (the route object and the scope
Channels built) to the handshake's record, which every copy of the scope shares;
the one at a leaf turns the record into a :class:`RouteHit` — the endpoint
reached, its name, its consumer and its converted ``url_route`` arguments — and
hands it to the handshake's ``on_route`` hook *before* the leaf application (the
consumer) is built. Router subclasses, regex flags, converters, ``root_path``
and path-rewriting middleware stay Channels' business.

A router reached through a wrapper that hides it (a path-routing callback
whose routes cannot be found) is an *opaque part*: handshakes that reach a leaf
behind it arrive without a leaf record, and are refused there (see
:meth:`wsreject.handshake.Handshake.receive`); ``wsreject.E013`` names it.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from django.urls.exceptions import Resolver404

from .scope import HANDSHAKE_KEY
from .types import Scope

__all__ = [
    "Hop",
    "RouteHit",
    "RouteRecorder",
    "Routing",
    "application_of",
    "consumer_class_of",
    "inner_of",
    "instrument",
    "iter_opaque",
    "leaf_denial_mode",
    "pattern_text",
    "routes_paths",
    "websocket_application",
]

WRAPPER_ATTRIBUTES = ("inner", "application", "app")
MAX_DEPTH = 50


def websocket_application(app: Any) -> Any:
    """The WebSocket branch of a ``ProtocolTypeRouter`` (or ``app`` itself)."""
    mapping = getattr(app, "application_mapping", None)
    if isinstance(mapping, dict):
        return mapping.get("websocket")
    return app


def _routes(app: Any) -> list[Any] | tuple[Any, ...] | None:
    routes = getattr(app, "routes", None)
    return routes if isinstance(routes, (list, tuple)) and not isinstance(app, type) else None


def inner_of(app: Any) -> Any:
    """What a wrapper delegates to, or None: its ``inner``, ``application`` or ``app``, else
    the one attribute of the instance that leads to a router (a project's wrapper that keeps
    its application under another name)."""
    if isinstance(app, RouteRecorder):
        return app.inner
    for attribute in WRAPPER_ATTRIBUTES:
        inner = getattr(app, attribute, None)
        if inner is not None and callable(inner) and not isinstance(app, type):
            return inner
    try:
        attributes = vars(app)
    except TypeError:
        return None
    found = [value for value in attributes.values() if callable(value) and _leads_to_router(value, 0)]
    return found[0] if len(found) == 1 else None


def _leads_to_router(app: Any, depth: int) -> bool:
    if depth > 5 or isinstance(app, type):
        return False
    if _routes(app) is not None:
        return True
    for attribute in WRAPPER_ATTRIBUTES:
        inner = getattr(app, attribute, None)
        if inner is not None and callable(inner):
            return _leads_to_router(inner, depth + 1)
    return False


def router_of(app: Any) -> Any:
    """The router ``app`` is or wraps (following wrappers), or None."""
    for _ in range(MAX_DEPTH):
        if app is None:
            return None
        if _routes(app) is not None:
            return app
        if getattr(app, "consumer_class", None) is not None:
            return None
        app = inner_of(app)
    return None


def routes_paths(app: Any) -> bool:
    """Whether ``app`` routes paths (a router, maybe wrapped): Channels asks a route's callback
    through ``_path_routing`` to decide whether its pattern must match to the end."""
    return bool(getattr(app, "_path_routing", False)) or router_of(app) is not None


def application_of(callback: Any) -> Any:
    """The application under a route's callback, past any :class:`RouteRecorder`."""
    while isinstance(callback, RouteRecorder):
        callback = callback.inner
    return callback


def consumer_class_of(app: Any) -> type | None:
    """The consumer class an application (``as_asgi()``, maybe wrapped) builds, or None."""
    for _ in range(MAX_DEPTH):
        if app is None:
            return None
        consumer_class = getattr(app, "consumer_class", None)
        if isinstance(consumer_class, type):
            return consumer_class
        app = inner_of(app)
    return None


def leaf_denial_mode(app: Any) -> str | None:
    """The denial mode a leaf declares: its consumer's ``denial_mode``, else that of the
    innermost ``DenialMiddleware`` between the route and the consumer."""
    mode = None
    for _ in range(MAX_DEPTH):
        if app is None:
            break
        consumer_class = getattr(app, "consumer_class", None)
        if isinstance(consumer_class, type):
            declared = getattr(consumer_class, "denial_mode", None)
            return declared if isinstance(declared, str) else mode
        declared = getattr(app, "denial_mode", None)
        if isinstance(declared, str) and not isinstance(app, type):
            mode = declared
        app = inner_of(app)
    return mode


Hop = tuple[Any, Scope]  # a route Channels matched, and the scope it built for what the route calls


def pattern_text(pattern: Any) -> str:
    """A route pattern as text: a regex's anchors dropped (``^``, ``$``, ``\\Z``)."""
    return str(pattern).removeprefix("^").removesuffix("$").removesuffix(r"\Z")


class RouteHit:
    """Where Channels routed a handshake: the routes matched (outermost first) and the arguments.

    ``key`` (the route objects, compared by identity) is the endpoint: two mounts of
    one route list are two endpoints. Rules compare ``key`` and the converted
    arguments, and names; ``path`` (what each router consumed, leading slashes
    dropped as Channels drops them) and ``template`` serve path patterns. Built on
    every handshake that reaches an endpoint, so the rest is computed on demand.
    """

    __slots__ = ("_base", "_hops", "application", "args", "kwargs")

    def __init__(self, hops: tuple[Hop, ...], base: str | None) -> None:
        self._hops = hops
        self._base = base  # path_remaining where the recording started, or None (the outermost router)
        url_route = hops[-1][1].get("url_route") or {}
        self.args: tuple[Any, ...] = tuple(url_route.get("args", ()))
        self.kwargs: dict[str, Any] = dict(url_route.get("kwargs", {}))
        self.application: Any = application_of(hops[-1][0].callback)  # the leaf's application

    @property
    def routes(self) -> tuple[Any, ...]:
        return tuple(route for route, _ in self._hops)

    @property
    def key(self) -> tuple[int, ...]:
        return tuple(id(route) for route, _ in self._hops)

    @property
    def path(self) -> str:
        """The path as the routers consumed it: ``"/ws/rooms/lobby/"`` for ``"/ws//rooms/lobby/"``."""
        pieces = []
        previous = self._base
        for _, scope in self._hops:
            if previous is None:
                root_path = scope.get("root_path", "") or ""
                previous = scope.get("path", "")[len(root_path) :]
            remaining = scope.get("path_remaining", "")
            pieces.append(_consumed(previous, remaining))
            previous = remaining
        return "/" + "".join(pieces)

    @property
    def name(self) -> str | None:
        """The matched route's ``name=`` (the leaf's, else the nearest mount's)."""
        for route, _ in reversed(self._hops):
            if getattr(route, "name", None):
                return str(route.name)
        return None

    @property
    def names(self) -> frozenset[str]:
        return frozenset(str(route.name) for route, _ in self._hops if getattr(route, "name", None))

    @property
    def template(self) -> str:
        """The route as written, ``"/ws/rooms/<slug:name>/"``."""
        return "/" + "".join(pattern_text(route.pattern) for route, _ in self._hops)

    @property
    def consumer_class(self) -> type | None:
        return consumer_class_of(self.application)

    @property
    def arguments(self) -> tuple[tuple[Any, ...], tuple[tuple[str, Any], ...]]:
        """The converted arguments, comparable: ``(args, sorted kwargs items)``."""
        return self.args, tuple(sorted(self.kwargs.items()))

    def same_endpoint(self, other: RouteHit) -> bool:
        """Same routes and same converted arguments (whatever the spelling)."""
        return self.key == other.key and self.arguments == other.arguments

    def __repr__(self) -> str:
        return f"<RouteHit {self.template} name={self.name!r} kwargs={self.kwargs!r}>"


def _consumed(before: str, after: str) -> str:
    before = before.lstrip("/")
    return before[: len(before) - len(after)] if len(after) <= len(before) else before


def hit_from(hops: list[Hop], base: str | None) -> RouteHit:
    """The :class:`RouteHit` for a leaf reached through ``hops`` (``base``: see :class:`RouteHit`)."""
    return RouteHit(tuple(hops), base)


class RouteRecorder:
    """A route's callback, recording the match on the handshake before calling the original.

    Channels checks ``_path_routing`` on a callback when the router is built; the
    recorder answers as what it wraps, and exposes it as ``inner``.
    """

    __slots__ = ("inner", "leaf", "route")

    def __init__(self, route: Any, inner: Any, *, leaf: bool) -> None:
        self.route = route
        self.inner = inner
        self.leaf = leaf

    @property
    def _path_routing(self) -> bool:
        return bool(getattr(self.inner, "_path_routing", False))

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> Any:
        handshake: Any = scope.get(HANDSHAKE_KEY)
        hops = getattr(handshake, "hops", None)
        if hops is None or scope.get("type") != "websocket":
            return await self.inner(scope, receive, send)
        mark = len(hops)
        hops.append((self.route, scope))
        try:
            if self.leaf:
                await handshake.reach(scope, hit_from(hops, handshake.route_base))
            return await self.inner(scope, receive, send)
        except Resolver404:
            del hops[mark:]  # the router will try its next route: this one led nowhere
            if self.leaf:
                handshake.route = None
            raise

    def __repr__(self) -> str:
        return f"RouteRecorder({self.inner!r})"


@dataclass
class Routing:
    """The routers below one application, instrumented; re-instrumented when they change."""

    application: Any
    routers: list[tuple[Any, Any, int]] = field(default_factory=list)  # (router, its routes list, length)
    opaque: list[tuple[str, Any]] = field(default_factory=list)  # (where, the callback hiding a router)
    names: frozenset[str] = frozenset()
    generation: int = 0
    has_router: bool = False

    def current(self) -> bool:
        """Whether every router seen still has the routes it had, each recorded."""
        if not self.generation:
            return False
        for router, routes, length in self.routers:
            if router.routes is not routes or len(routes) != length:
                return False
            for route in routes:
                if route.callback.__class__ is not RouteRecorder:
                    return False
        return True

    def ensure(self) -> Routing:
        """Instrument what is new since the last call (cheap when nothing is)."""
        if not self.current():
            self.instrument()
        return self

    def instrument(self, *, wrap: bool = True) -> None:
        """Wrap every reachable route's callback (``wrap=False``: only describe the routing)."""
        routers: list[tuple[Any, Any, int]] = []
        opaque: list[tuple[str, Any]] = []
        names: set[str] = set()
        root = router_of(websocket_application(self.application))
        if root is not None:
            self._walk(root, "/", routers, opaque, names, 0, set(), wrap)
        self.routers, self.opaque, self.names = routers, opaque, frozenset(names)
        self.has_router = root is not None
        self.generation += 1

    def _walk(
        self,
        router: Any,
        where: str,
        routers: list[Any],
        opaque: list[Any],
        names: set[str],
        depth: int,
        seen: set[int],
        wrap: bool,
    ) -> None:
        if depth > MAX_DEPTH or id(router) in seen:
            return
        seen.add(id(router))
        routes = router.routes
        routers.append((router, routes, len(routes)))
        for route in routes:
            callback = getattr(route, "callback", None)
            pattern = getattr(route, "pattern", None)
            if callback is None or pattern is None:
                continue
            if getattr(route, "name", None):
                names.add(str(route.name))
            original = application_of(callback)
            text = where + pattern_text(pattern)
            below = router_of(original)
            leaf = below is None and not getattr(original, "_path_routing", False)
            if wrap and not isinstance(callback, RouteRecorder):
                route.callback = RouteRecorder(route, original, leaf=leaf)
            elif isinstance(callback, RouteRecorder):
                callback.leaf = leaf
            if below is not None:
                self._walk(below, text, routers, opaque, names, depth + 1, seen, wrap)
            elif getattr(original, "_path_routing", False):
                opaque.append((text, original))


def instrument(application: Any) -> Routing:
    """Instrument ``application``'s routing (idempotent) and describe it."""
    routing = Routing(application)
    routing.instrument()
    return routing


def iter_opaque(application: Any) -> Iterator[tuple[str, Any]]:
    """The parts of ``application``'s routing that hide their routes: (route, callback)."""
    routing = Routing(application)
    routing.instrument(wrap=False)
    yield from routing.opaque
