"""What an access rule names: a path pattern (maybe a prefix) or a route name.

``AccessRule.endpoint`` is either a *path pattern*, starting with ``/``, in the
syntax of ``path()`` (``/ws/rooms/<slug:name>/``) — a trailing ``*`` covers
every path below (``/ws/rooms/*``, ``/*``) — or a *route name*: the ``name=``
of a ``path()`` in the WebSocket routing (or of a mount above it).

Patterns are decided on the route Channels matched (:class:`~wsreject.routes.RouteHit`),
never on the request's spelling:

* a route name covers the endpoints whose routes carry that name;
* an exact path (no parameters) is itself routed through the real routing once,
  and covers the endpoint it reaches **with the same converted arguments**, so
  every spelling Channels maps there (converters, regex flags, optional groups)
  is covered;
* a pattern with parameters covers the endpoint written with that template, and
  any routed path it matches; a prefix covers the endpoints whose template, or
  routed path, starts with it. (Covering more is the safe direction: rules only
  take access away.)
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from django.urls.converters import get_converters
from django.urls.resolvers import RoutePattern

if TYPE_CHECKING:
    from .routes import RouteHit

__all__ = ["EndpointPattern", "parse_endpoint"]

_PARAMETER = re.compile(r"<(?:(?P<converter>[^>:]+):)?(?P<parameter>[^>]+)>")
_ROUTE_NAME = re.compile(r"^[\w.:-]+$")


@dataclass(frozen=True)
class EndpointPattern:
    """A parsed ``AccessRule.endpoint``: a route name, or a path pattern (maybe a prefix)."""

    text: str
    route_name: str | None = None
    prefix: bool = False
    pattern: RoutePattern | None = field(default=None, compare=False)

    @property
    def exact_path(self) -> bool:
        """A path without parameters or ``*``: decided by where the routing sends it."""
        return self.route_name is None and not self.prefix and _PARAMETER.search(self.text) is None

    def matches(self, routed_path: str, route_name: str | None) -> bool:
        """Whether a handshake routed to ``routed_path`` (named ``route_name``) is covered."""
        if self.route_name is not None:
            return self.route_name == route_name
        assert self.pattern is not None
        return self.pattern.match(routed_path.lstrip("/")) is not None

    def covers(self, hit: RouteHit, target: RouteHit | None = None) -> bool:
        """Whether a handshake Channels routed to ``hit`` is covered; ``target`` is where the
        routing sends this pattern's own path (exact paths only; None when nowhere)."""
        if self.route_name is not None:
            return self.route_name in hit.names
        if self.exact_path and target is not None and hit.same_endpoint(target):
            return True
        if self.prefix:
            if hit.template.startswith(self.text[:-1]):
                return True
        elif not self.exact_path and hit.template == self.text:
            return True
        assert self.pattern is not None
        return self.pattern.match(hit.path.lstrip("/")) is not None

    @property
    def specificity(self) -> tuple[int, int]:
        """Sort key: names and exact paths first, then prefixes, longest first."""
        return (1 if self.prefix else 0, -len(self.text))


def parse_endpoint(text: str) -> EndpointPattern:
    """Parse an ``AccessRule.endpoint``; ``ValueError`` with a message for the admin."""
    if not text:
        raise ValueError("Enter a path pattern such as “/ws/rooms/*” or a route name.")
    if not text.startswith("/"):
        if not _ROUTE_NAME.match(text):
            raise ValueError(
                f"“{text}” is neither a path pattern (those start with “/”, e.g. “/ws/rooms/*”) "
                "nor a route name (letters, digits, “_”, “-”, “.” and “:”)."
            )
        return EndpointPattern(text, route_name=text)
    prefix = text.endswith("*")
    route = text[:-1] if prefix else text
    if "*" in route:
        raise ValueError("“*” may only end a path pattern, as in “/ws/rooms/*”.")
    if any(ch.isspace() or ch in "?#" for ch in route):
        raise ValueError("A path pattern cannot contain spaces, “?” or “#”; query strings are not matched.")
    if "//" in route:
        raise ValueError("A path pattern cannot contain “//”: the routing never resolves an empty segment.")
    converters = get_converters()
    for match in _PARAMETER.finditer(route):
        converter, parameter = match.group("converter") or "str", match.group("parameter")
        if converter not in converters:
            known = ", ".join(sorted(converters))
            raise ValueError(f"Unknown converter “{converter}” in “{match[0]}”; use one of: {known}.")
        if not parameter.isidentifier():
            raise ValueError(f"“{parameter}” in “{match[0]}” is not a valid parameter name.")
    literal = _PARAMETER.sub("", route)
    if "<" in literal or ">" in literal:
        raise ValueError("Unmatched “<” or “>”: parameters look like <slug:name>.")
    return EndpointPattern(text, prefix=prefix, pattern=RoutePattern(route.lstrip("/"), is_endpoint=not prefix))
