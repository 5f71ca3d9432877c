"""Generated routings and request spellings for the differential test (issue 16, item 5).

A :class:`Spec` is a tree of routes. It is built twice: as **plain Channels**
(``URLRouter``s, Channels' middleware, project wrappers) and as the same tree
under wsreject (``DenialMiddlewareStack`` at the top, wsreject's stacks nested
where the spec says, project wrappers unchanged). Leaves are tiny ASGI
applications that say which leaf they are and what ``url_route`` they got.

Patterns cover what real routings write: ``path()`` literals and converters
(``int`` maps ``007`` and ``7`` to one argument), ``re_path`` with a
case-insensitive flag, optional groups, alternations and named groups.
Spellings add leading slashes at router boundaries (Channels strips them),
change case where the flag allows it, take either branch of an alternation or
optional group, and are sometimes mutated into paths no route matches.
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass, field
from typing import Any

from channels.auth import AuthMiddlewareStack
from channels.middleware import BaseMiddleware
from channels.routing import URLRouter
from django.urls import path, re_path
from hypothesis import strategies as st

from wsreject.middleware import DenialMiddleware, DenialMiddlewareStack

# --- patterns ------------------------------------------------------------------------------------

LITERALS = ("ws", "rooms", "chat", "api", "v2", "live", "feed", "a", "b")
SLUG = "abcdefghijklmnopqrstuvwxyz0123456789-_"


@dataclass(frozen=True)
class Pattern:
    """One route's pattern: how to write it and how to spell a path it matches."""

    kind: str  # literal | int | slug | str | ci | optional | alternation | group
    word: str
    other: str = ""  # alternation's second branch
    param: str = ""  # argument name

    @property
    def uses_re(self) -> bool:
        return self.kind in ("ci", "optional", "alternation", "group")

    def route(self, leaf: bool) -> str:
        """The text given to path() / re_path()."""
        end = "$" if leaf else ""
        if self.kind == "literal":
            return f"{self.word}/"
        if self.kind in ("int", "slug", "str"):
            return f"<{self.kind}:{self.param}>/"
        if self.kind == "ci":
            return f"(?i)^{self.word}/{end}"
        if self.kind == "optional":
            return f"^(?:v1/)?{self.word}/{end}"
        if self.kind == "alternation":
            return f"^(?:{self.word}|{self.other})/{end}"
        return f"^(?P<{self.param}>[0-9]+)/{end}"

    def spell(self, rng: random.Random) -> tuple[str, dict[str, Any]]:
        """A spelling this pattern matches, and the converted arguments it gives."""
        if self.kind == "literal":
            return f"{self.word}/", {}
        if self.kind == "int":
            value = rng.randrange(0, 50)
            return f"{'0' * rng.randrange(0, 3)}{value}/", {self.param: value}
        if self.kind == "slug":
            text = "".join(rng.choice(SLUG) for _ in range(rng.randrange(1, 6)))
            return f"{text}/", {self.param: text}
        if self.kind == "str":
            text = rng.choice(("lobby", "x", "caf\u00e9", "A.B", "1"))
            return f"{text}/", {self.param: text}
        if self.kind == "ci":
            return "".join(ch.upper() if rng.random() < 0.5 else ch for ch in self.word) + "/", {}
        if self.kind == "optional":
            return ("v1/" if rng.random() < 0.5 else "") + f"{self.word}/", {}
        if self.kind == "alternation":
            return f"{rng.choice((self.word, self.other))}/", {}
        text = "0" * rng.randrange(0, 2) + str(rng.randrange(0, 30))
        return f"{text}/", {self.param: text}


# --- the tree ------------------------------------------------------------------------------------

WRAPPERS = ("none", "auth", "inner", "other_attribute", "denial_stack", "denial_close_code")


@dataclass
class Node:
    """A route: a leaf (``children`` empty) or a mount of a nested ``URLRouter``."""

    pattern: Pattern
    name: str | None = None
    wrapper: str = "none"  # around a nested router (mounts only)
    children: list[Node] = field(default_factory=list)
    leaf_id: int = -1


@dataclass
class Spec:
    routes: list[Node]
    rewrite: bool  # a project middleware inside the stack strips "/api" from scope["path"]

    def leaves(self) -> list[tuple[list[Node], Node]]:
        found: list[tuple[list[Node], Node]] = []

        def walk(nodes: list[Node], chain: list[Node]) -> None:
            for node in nodes:
                if node.children:
                    walk(node.children, chain + [node])
                else:
                    found.append((chain + [node], node))

        walk(self.routes, [])
        return found


@st.composite
def patterns(draw: Any, param: str) -> Pattern:
    kind = draw(st.sampled_from(("literal", "literal", "int", "slug", "str", "ci", "optional", "alternation", "group")))
    word = draw(st.sampled_from(LITERALS))
    other = draw(st.sampled_from([w for w in LITERALS if w != word]))
    return Pattern(kind, word, other, param)


@st.composite
def specs(draw: Any) -> Spec:
    counter = [0, 0]

    def nodes(depth: int) -> list[Node]:
        result = []
        for _ in range(draw(st.integers(1, 3))):
            counter[1] += 1
            pattern = draw(patterns(f"p{counter[1]}"))
            mount = depth < 3 and draw(st.integers(0, 2)) == 0
            if mount:
                wrapper = draw(st.sampled_from(WRAPPERS))
                result.append(Node(pattern, wrapper=wrapper, children=nodes(depth + 1)))
            else:
                name = draw(st.sampled_from([None, f"leaf{counter[0]}"]))
                result.append(Node(pattern, name=name, leaf_id=counter[0]))
                counter[0] += 1
        return result

    return Spec(nodes(0), draw(st.booleans()))


def random_spec(rng: random.Random) -> Spec:
    """A spec drawn with ``rng`` (the same shapes as :func:`specs`): for server processes, which
    must build the routing a test computed its expectations from."""
    counter = [0, 0]

    def nodes(depth: int) -> list[Node]:
        result = []
        for _ in range(rng.randint(1, 3)):
            counter[1] += 1
            word = rng.choice(LITERALS)
            kind = rng.choice(("literal", "literal", "int", "slug", "str", "ci", "optional", "alternation", "group"))
            pattern = Pattern(kind, word, rng.choice([w for w in LITERALS if w != word]), f"p{counter[1]}")
            if depth < 3 and rng.randrange(3) == 0:
                result.append(Node(pattern, wrapper=rng.choice(WRAPPERS), children=nodes(depth + 1)))
            else:
                result.append(Node(pattern, name=rng.choice([None, f"leaf{counter[0]}"]), leaf_id=counter[0]))
                counter[0] += 1
        return result

    return Spec(nodes(0), rng.random() < 0.5)


# --- building it -----------------------------------------------------------------------------------


def leaf_app(leaf_id: int) -> Any:
    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        route = scope.get("url_route", {})
        seen = scope.get("test.seen")
        if seen is not None:
            seen.append((leaf_id, tuple(route.get("args", ())), tuple(sorted(route.get("kwargs", {}).items()))))
        if scope.get("test.accept", True):
            message = await receive()
            if message["type"] == "websocket.connect":
                await send({"type": "websocket.accept"})
                await send({"type": "websocket.send", "text": json.dumps({"leaf": leaf_id})})

    app.leaf_id = leaf_id  # type: ignore[attr-defined]
    return app


class InnerWrapper(BaseMiddleware):
    """A project middleware in Channels' style (``inner``)."""


class OtherAttributeWrapper:
    """A project wrapper that keeps its application under another name, and says it routes paths."""

    _path_routing = True

    def __init__(self, app: Any) -> None:
        self.wrapped = app

    async def __call__(self, scope: Any, receive: Any, send: Any) -> Any:
        return await self.wrapped(scope, receive, send)


class RewritePath(BaseMiddleware):
    """Behind a proxy mounted at ``/api``: strips it from ``scope["path"]`` before routing."""

    async def __call__(self, scope: Any, receive: Any, send: Any) -> Any:
        current = scope.get("path", "")
        if current.startswith("/api/"):
            scope = dict(scope, path=current[len("/api") :])
        return await self.inner(scope, receive, send)


def wrap(wrapper: str, router: Any, wsreject: bool) -> Any:
    if wrapper == "auth":
        return AuthMiddlewareStack(router)
    if wrapper == "inner":
        return InnerWrapper(router)
    if wrapper == "other_attribute":
        return OtherAttributeWrapper(router)
    if wrapper == "denial_stack":  # plain Channels: the bare router
        return DenialMiddlewareStack(router) if wsreject else router
    if wrapper == "denial_close_code":
        return DenialMiddleware(router, denial_mode="close_code") if wsreject else router
    return router


def build_routes(nodes: list[Node], wsreject: bool) -> list[Any]:
    routes = []
    for node in nodes:
        leaf = not node.children
        target = (
            leaf_app(node.leaf_id) if leaf else wrap(node.wrapper, URLRouter(build_routes(node.children, wsreject)), wsreject)
        )
        maker = re_path if node.pattern.uses_re else path
        routes.append(maker(node.pattern.route(leaf), target, name=node.name))
    return routes


def build(spec: Spec, wsreject: bool) -> Any:
    """The routing as an ASGI application: plain Channels, or under DenialMiddlewareStack."""
    app: Any = URLRouter(build_routes(spec.routes, wsreject))
    if spec.rewrite:
        app = RewritePath(app)
    return DenialMiddlewareStack(app) if wsreject else app


def spell(spec: Spec, chain: list[Node], rng: random.Random) -> str:
    """A request path reaching the leaf at the end of ``chain`` (unless another route shadows it)."""
    text = "/api" if spec.rewrite and rng.random() < 0.7 else ""
    for node in chain:
        piece, _ = node.pattern.spell(rng)
        text += "/" * rng.choice((1, 1, 1, 2, 3)) + piece
    return text


def mutate(text: str, rng: random.Random) -> str:
    """A nearby path, often one no route matches."""
    choice = rng.randrange(5)
    if choice == 0:
        return text.rstrip("/")
    if choice == 1:
        return text + "extra/"
    if choice == 2:
        return text.replace("/", "//", 1)[:-1] + "x/"
    if choice == 3:
        return "/nowhere" + text
    return text.upper()


def canonical(text: str) -> str:
    """``text`` without the empty segments a router strips (a rule's path cannot contain ``//``)."""
    parts = [part for part in text.split("/") if part]
    return "/" + "/".join(parts) + "/" if parts else "/"
