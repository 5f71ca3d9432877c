"""``AccessRuleMiddleware``: the admin's access rules, decided on the route Channels matched."""

from __future__ import annotations

import contextlib
from dataclasses import replace
from typing import Any

from django.apps import apps

from .denial import DenyHandshake
from .endpoints import project_endpoints
from .handshake import Handshake, current_handshake, probe_route
from .routes import RouteHit, Routing, routes_paths
from .rules import CompiledRule, RuleSet, acurrent_rules, broken_denial, decide
from .scope import HANDSHAKE_KEY, VOUCHED_KEY
from .trace import active, record
from .types import Receive, Scope, Send

__all__ = ["AccessRuleMiddleware"]


class AccessRuleMiddleware:
    """Enforce :class:`~wsreject.models.AccessRule` rows on the route Channels' router matches.

    It instruments the routing it wraps (:mod:`wsreject.routes`; again when routes are
    added) and registers the rules as a decision of the handshake's leaf: when a
    router reaches an endpoint, the rules covering that endpoint and its converted
    arguments decide, before the consumer is built. A path no route matches
    reaches no leaf and is the router's own 404. A refusal is raised for the
    enclosing :class:`~wsreject.middleware.DenialMiddleware` to send, in the
    denial mode the handshake resolved at the leaf.

    Place it inside ``CredentialsMiddleware`` (it needs ``scope["user"]``) and
    inside ``DenialMiddleware``: :func:`~wsreject.middleware.DenialMiddlewareStack` does.
    """

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.routing = Routing(inner)
        self._enabled: bool | None = None
        self._names: tuple[int, frozenset[str]] = (-1, frozenset())
        self._unknown: tuple[str, int, list[CompiledRule]] = ("", -1, [])
        self._targets: tuple[str, int, dict[str, RouteHit | None]] = ("", -1, {})

    @property
    def _path_routing(self) -> bool:
        return routes_paths(self.inner)

    @property
    def enabled(self) -> bool:
        """Rules live in wsreject's models: without the app installed there are none."""
        if self._enabled is None:
            self._enabled = apps.is_installed("wsreject")
        return self._enabled

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> Any:
        if scope["type"] != "websocket":
            return await self.inner(scope, receive, send)
        routing = self.routing.ensure()
        handshake = current_handshake(scope)
        if handshake is None:  # no DenialMiddleware outside: record anyway, refusals are raised
            handshake = Handshake(receive, send)
            scope = dict(scope, **{HANDSHAKE_KEY: handshake})
            receive = handshake.receive
        if not handshake.expects_route:  # the outermost rules: they see the whole routing below
            if routing.has_router:
                handshake.route_base = scope.get("path_remaining")
                handshake.expects_route = True
            vouched = scope.get(VOUCHED_KEY, False)  # the edge applied them already (wsreject.edge.trust)
            if self.enabled and not getattr(handshake, "routing_only", False) and not vouched:
                handshake.route_checks.append(self.check_route)
        return await self.inner(scope, receive, send)

    @property
    def route_names(self) -> frozenset[str]:
        """Every route name of this routing and of the project's."""
        generation = self.routing.generation
        if self._names[0] != generation:
            names = set(self.routing.names)
            with contextlib.suppress(Exception):  # ASGI_APPLICATION's own import errors are reported elsewhere
                names |= {endpoint.name for endpoint in project_endpoints() if endpoint.name}
            self._names = (generation, frozenset(names))
        return self._names[1]

    def unknown_route_rules(self, ruleset: RuleSet) -> list[CompiledRule]:
        """Rules naming a route that does not exist (a typo protects nothing: they refuse
        everything) — unless a part of the routing hides its routes, which refuses anyway."""
        generation = self.routing.generation
        if self._unknown[0] != ruleset.version or self._unknown[1] != generation or not ruleset.version:
            names = self.route_names
            unknown = [
                compiled
                for compiled in ruleset.rules
                if compiled.pattern is not None
                and compiled.pattern.route_name is not None
                and compiled.pattern.route_name not in names
            ]
            if self.routing.opaque:
                unknown = []
            self._unknown = (ruleset.version, generation, unknown)
        return self._unknown[2]

    async def targets(self, ruleset: RuleSet) -> dict[str, RouteHit | None]:
        """Where the routing sends each exact path the rules name (learned once per version)."""
        generation = self.routing.generation
        if self._targets[0] == ruleset.version and self._targets[1] == generation and ruleset.version:
            return self._targets[2]
        found = {text: await probe_route(self.inner, text) for text in ruleset.exact_paths}
        self._targets = (ruleset.version, generation, found)
        return found

    async def check_route(self, scope: Scope, hit: RouteHit) -> None:
        """Raise the refusal the rules give for the route Channels matched, if any."""
        ruleset = await acurrent_rules()
        if not ruleset.rules:
            record("access rules", None, "no rules")
            return
        unknown = self.unknown_route_rules(ruleset)
        if unknown:
            problem = f"no WebSocket route is named {unknown[0].pattern.route_name!r}" if unknown[0].pattern else None
            record("access rules", refusal := broken_denial(replace(unknown[0], problem=problem)), problem or "")
            raise refusal
        covering = ruleset.covering(hit, await self.targets(ruleset) if ruleset.exact_paths else {})
        if not covering:
            record("access rules", None, "no rule covers this endpoint")
            return
        denial: DenyHandshake | None = await decide(scope, covering)
        if active():
            record("access rules", denial, "covered by " + ", ".join(f"#{c.rule.pk} {c.rule.endpoint!r}" for c in covering))
        if denial is not None:
            raise denial
