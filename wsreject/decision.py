"""One decision — may this handshake open? — that can run again without a socket.

:func:`decide` runs the **real application** (the project's ``ASGI_APPLICATION``,
or the one given) on a probe scope: every layer decides as on a live handshake —
Origin, authentication, middleware permissions, the admin's access rules on the
route Channels' router matches — and the leaf recorder (:mod:`wsreject.routes`)
stops the run at the endpoint, before any consumer exists. The consumer's
declared checks (``AuthorizedConsumer``'s login, permissions, object checks,
``permission_classes``, and ``PermissionMiddleware`` between the route and the
consumer) are then evaluated on an unconnected instance: ``connect()`` never
runs, no channel layer is touched, nothing is sent.

Contract:

* ``await decide(scope)`` returns a :class:`Decision`: the endpoint reached
  (a :class:`~wsreject.routes.RouteHit`, None when refused before routing or
  when no route matches), the user, and ``denial`` — None when admitted, else
  the :class:`~wsreject.denial.DenyHandshake` a live handshake would get (a
  path no route matches is ``404``; an unexpected error is the handler's
  answer, a logged ``500``, or ``503`` for a dependency that is down).
* **No side effects** by default (``consume=False``): checks run in a
  :func:`~wsreject.permissions.dry_run`, where a throttle *peeks* — it answers
  ``429`` when the budget is already spent and never counts the attempt. So
  the answer is "what the next handshake would get". ``consume=True`` counts as
  a live handshake does. Authenticators are asked as on a live handshake (a
  single-use ticket presented in a probe scope is spent: probe with another
  credential).
* ``user=`` decides for that user without authenticating (explaining a decision).
* ``scope`` is an ASGI WebSocket scope; missing keys get defaults (``type``,
  ``root_path``, ``headers``, ``query_string``, the denial extension).

The middleware makes the same decision on live handshakes, layer by layer, with
the leaf's part running where Channels matched the route.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.utils.module_loading import import_string

from .consumers import AuthorizedConsumer
from .denial import DenialResponse, DenyHandshake, DenyWithResponse, denial_for_exception
from .handshake import ProbeHandshake, ProbeStop
from .http import DENIAL_EXTENSION
from .middleware import NO_ROUTE, PermissionMiddleware
from .offload import run_off_loop_if_needed
from .permissions import authorize, dry_run, register_peek
from .routes import MAX_DEPTH, RouteHit, Routing, inner_of, websocket_application
from .scope import HANDSHAKE_KEY
from .throttling import Throttle
from .types import Scope

__all__ = ["Decision", "decide", "peek_throttle"]


@dataclass(frozen=True)
class Decision:
    """The answer to one handshake: where it goes, who it is, and admitted or the denial."""

    endpoint: RouteHit | None
    user: Any
    denial: DenyHandshake | None

    @property
    def admitted(self) -> bool:
        return self.denial is None

    @property
    def status(self) -> int:
        """101 when admitted, else the denial's status."""
        return 101 if self.denial is None else self.denial.status_code

    def response(self) -> DenialResponse | None:
        return None if self.denial is None else self.denial.response()


def peek_throttle(throttle: Throttle, scope: Scope, consumer: Any) -> DenyHandshake | None:
    """A throttle's answer without counting: 429 when this window's budget is spent already."""
    return throttle.peek(scope, consumer)


register_peek(Throttle, peek_throttle)


async def consumer_checks(scope: Scope, hit: RouteHit) -> None:
    """The leaf's declared checks, without building a connection: ``PermissionMiddleware``
    between the route and the consumer, then ``AuthorizedConsumer.authorize()`` on an
    unconnected instance. Raises the denial."""
    app = hit.application
    for _ in range(MAX_DEPTH):
        if app is None:
            return
        if isinstance(app, PermissionMiddleware):
            await authorize(scope, app.permission, app.inner)
        consumer_class = getattr(app, "consumer_class", None)
        if isinstance(consumer_class, type):
            if issubclass(consumer_class, AuthorizedConsumer):
                consumer = consumer_class(**(getattr(app, "consumer_initkwargs", None) or {}))
                consumer.scope = scope
                await run_off_loop_if_needed(consumer.authorize)
            return
        app = inner_of(app)


_routings: dict[int, tuple[Any, Routing]] = {}


def routing_for(application: Any) -> Routing:
    """``application``'s instrumented routing (kept per application, refreshed when it changes)."""
    entry = _routings.get(id(application))
    if entry is None or entry[0] is not application:
        entry = (application, Routing(application))
        _routings[id(application)] = entry
    return entry[1].ensure()


def project_application() -> Any:
    return websocket_application(import_string(settings.ASGI_APPLICATION))


def probe_scope(scope: Scope) -> Scope:
    """``scope`` with the defaults of a WebSocket handshake filled in."""
    filled: Scope = {
        "type": "websocket",
        "path": "/",
        "raw_path": None,
        "root_path": "",
        "headers": [],
        "query_string": b"",
        "subprotocols": [],
        "extensions": {DENIAL_EXTENSION: {}},
    }
    filled.update(scope)
    return filled


async def decide(scope: Scope, *, application: Any = None, consume: bool = False, user: Any = None) -> Decision:
    """Decide ``scope`` as a live handshake would be, without a socket (see the module's contract).

    ``user``: decide for this user — ``CredentialsMiddleware`` puts it in the scope instead of
    authenticating (the handshake's credentials are not read), as ``wsreject_explain`` does.
    """
    app = project_application() if application is None else websocket_application(application)
    routing_for(app)
    handshake = ProbeHandshake(at_leaf=consumer_checks, user=user)
    probe = probe_scope(scope)
    if user is not None:
        probe["user"] = user  # also when no CredentialsMiddleware is in the stack
    probe[HANDSHAKE_KEY] = handshake
    denial: DenyHandshake | None = None
    reached: RouteHit | None = None
    try:
        if consume:
            await app(probe, handshake.receive, handshake.send)
        else:
            with dry_run():
                await app(probe, handshake.receive, handshake.send)
        denial = DenyHandshake(503)  # the application returned without reaching an endpoint
    except ProbeStop as stop:
        reached = stop.hit
        if reached is None:  # it asked for the socket before a recorded endpoint
            denial = DenyHandshake(503)
    except DenyHandshake as exc:
        denial = exc
    except ValueError as exc:
        if str(exc).startswith(NO_ROUTE) and handshake.route is None:
            denial = DenyHandshake(404)  # the outermost router's "no route", without RouteNotFoundMiddleware
        else:
            denial = DenyWithResponse(denial_for_exception(exc, probe, handshake.exception_handler))
    except Exception as exc:
        denial = DenyWithResponse(denial_for_exception(exc, probe, handshake.exception_handler))
    return Decision(endpoint=reached or handshake.route, user=handshake.user, denial=denial)
