"""``AccessRuleMiddleware``: the admin's access rules, enforced on the endpoint the routing reaches."""

from __future__ import annotations

import contextlib
from dataclasses import replace
from typing import Any

from django.apps import apps

from ..denial import DenyHandshake
from ..handshake import current_handshake
from ..scope import Scope
from ..transport import Receive, Send
from .endpoints import Router, project_endpoints
from .rules import CompiledRule, RuleSet, acurrent_rules, broken_denial, decide


class AccessRuleMiddleware:
    """Enforce :class:`~wsreject.models.AccessRule` rows before the routing runs.

    The handshake is first resolved as the ``URLRouter`` inside will resolve it
    (:class:`~wsreject.access.endpoints.Router`), so a rule covers every
    spelling of a path that reaches its endpoint (``/ws//rooms/lobby/`` is
    ``/ws/rooms/lobby/``). A path no route matches reaches no consumer and is
    left to the router's 404. A refusal is raised for the enclosing
    :class:`~wsreject.middleware.DenialMiddleware` to send, in the denial mode
    of the endpoint it protects (a nested ``DenialMiddleware(...,
    denial_mode="close_code")`` or the consumer's ``denial_mode``).

    Place it inside ``CredentialsMiddleware`` (it needs ``scope["user"]``) and
    inside ``DenialMiddleware``: :func:`~wsreject.middleware.DenialMiddlewareStack` does.
    """

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self._router: Router | None = None
        self._enabled: bool | None = None
        self._route_names: frozenset[str] | None = None
        self._unknown: tuple[str, list[CompiledRule]] = ("", [])

    @property
    def enabled(self) -> bool:
        """Rules live in wsreject's models: without the app installed there are none."""
        if self._enabled is None:
            self._enabled = apps.is_installed("wsreject")
        return self._enabled

    @property
    def router(self) -> Router:
        if self._router is None:
            self._router = Router(self.inner)
        return self._router

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> Any:
        if scope["type"] == "websocket" and self.enabled:
            ruleset = await acurrent_rules()
            if ruleset.rules:
                await self.check(scope, ruleset)
        return await self.inner(scope, receive, send)

    @property
    def route_names(self) -> frozenset[str]:
        """Every route name of the project's routing (and of this router)."""
        if self._route_names is None:
            names = {endpoint.name for endpoint in self.router.endpoints if endpoint.name}
            with contextlib.suppress(Exception):  # ASGI_APPLICATION's own import errors are reported elsewhere
                names |= {endpoint.name for endpoint in project_endpoints() if endpoint.name}
            self._route_names = frozenset(names)
        return self._route_names

    def unknown_route_rules(self, ruleset: RuleSet) -> list[CompiledRule]:
        """Rules naming a route that does not exist (a typo protects nothing: they refuse everything)."""
        if self._unknown[0] != ruleset.version or not ruleset.version:
            names = self.route_names
            unknown = [
                replace(compiled, problem=f"no WebSocket route is named {compiled.pattern.route_name!r}")
                for compiled in ruleset.rules
                if compiled.pattern is not None and compiled.pattern.route_name is not None
                and compiled.pattern.route_name not in names
            ]
            self._unknown = (ruleset.version, unknown)
        return self._unknown[1]

    async def check(self, scope: Scope, ruleset: RuleSet) -> None:
        """Raise the refusal the rules give for this handshake, if any."""
        routed = self.router.resolve(scope)
        if routed is None:
            return
        unknown = self.unknown_route_rules(ruleset)
        if unknown:
            denial: DenyHandshake | None = broken_denial(unknown[0])
        else:
            covering = ruleset.matching(routed.path, routed.endpoint.name)
            if not covering:
                return
            denial = await decide(scope, covering)
        if denial is not None:
            handshake = current_handshake(scope)
            if handshake is not None:
                handshake.endpoint = routed.endpoint
                if routed.endpoint.denial_mode:
                    handshake.denial_mode = routed.endpoint.denial_mode
            raise denial
