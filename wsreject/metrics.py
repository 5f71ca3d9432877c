"""Prometheus metrics of WebSocket handshakes (optional: ``pip install "wsreject[metrics]"``).

* ``wsreject_handshakes_total{endpoint, outcome, status}`` — every handshake decided:
  ``outcome`` is ``accepted`` (``status`` ``101``) or ``denied`` (the denial's status).
* ``wsreject_decision_seconds{endpoint, outcome}`` — from the handshake's arrival at
  :class:`MetricsMiddleware` to its accept or its denial.
* ``wsreject_open_connections{endpoint}`` — accepted connections not yet closed.
* ``wsreject_revocations_total{endpoint, reason}`` — open connections closed because their
  access was revoked (:mod:`wsreject.revocation`), ``reason`` one of :data:`REVOCATION_REASONS`.

``endpoint`` is the route's name, else its pattern (``/ws/rooms/<slug:name>/``),
never the raw path: a path the routing does not know counts as ``UNMATCHED``, so
random paths create no series. Every observation goes through
:func:`observe_handshake`; the label comes from :func:`endpoint_label`, the one
place that says where the endpoint is learned.

Denials are counted by the denial log's ``connection_denied`` receiver
(:mod:`wsreject.access.denial_log`), revocations by :func:`observe_revocation`, a
``connection_revoked`` receiver; accepts, latency and open connections by
:class:`MetricsMiddleware`, the outermost layer of the WebSocket stack. With
several worker processes set ``PROMETHEUS_MULTIPROC_DIR`` as ``prometheus_client``
documents: :func:`metrics_view` then aggregates every process's files.
Without ``prometheus_client`` installed all of this does nothing.
"""

from __future__ import annotations

import os
import time
from typing import TYPE_CHECKING, Any

from django.core.signals import setting_changed

from .authentication.base import TOKEN_EXPIRED
from .denial import DenyHandshake
from .endpoints import Router
from .handshake import Handshake, current_handshake
from .routes import websocket_application
from .signals import connection_revoked
from .types import Message, Receive, Scope, Send

if TYPE_CHECKING:
    from django.http import HttpRequest, HttpResponse

__all__ = [
    "ACCEPTED",
    "DENIED",
    "LATENCY_BUCKETS",
    "OBSERVATION_KEY",
    "REVOCATION_REASONS",
    "UNMATCHED",
    "MetricsMiddleware",
    "Observation",
    "connect_revocations",
    "endpoint_label",
    "metrics_view",
    "observe_handshake",
    "observe_revocation",
    "prometheus_client",
    "revocation_reason",
]

prometheus_client: Any
try:
    import prometheus_client
except ImportError:  # the optional extra is not installed
    prometheus_client = None

OBSERVATION_KEY = "wsreject.metrics"
UNMATCHED = "(unmatched)"
ACCEPTED, DENIED = "accepted", "denied"
#: Why an open connection was closed, from the denial a new handshake would now get (a fixed set):
#: ``credential_expired`` (401 "Token expired"), ``credential_revoked`` (any other 401: the user
#: deactivated or deleted, the token deleted, the session ended), ``not_allowed`` (403: a
#: permission or group removed, a rule restricting its groups), ``endpoint_disabled`` (503: an
#: access rule disabled, or a dependency down during the re-check) and ``other``.
REVOCATION_REASONS = ("credential_expired", "credential_revoked", "not_allowed", "endpoint_disabled", "other")
LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)

if prometheus_client is not None:
    HANDSHAKES = prometheus_client.Counter(
        "wsreject_handshakes", "WebSocket handshakes decided, by endpoint, outcome and status.",
        ["endpoint", "outcome", "status"],
    )  # fmt: skip
    DECISION_SECONDS = prometheus_client.Histogram(
        "wsreject_decision_seconds", "Seconds from a handshake's arrival to its accept or denial.",
        ["endpoint", "outcome"], buckets=LATENCY_BUCKETS,
    )  # fmt: skip
    OPEN_CONNECTIONS = prometheus_client.Gauge(
        "wsreject_open_connections", "Accepted WebSocket connections not yet closed, by endpoint.",
        ["endpoint"], multiprocess_mode="livesum",
    )  # fmt: skip
    REVOCATIONS = prometheus_client.Counter(
        "wsreject_revocations", "Open WebSocket connections closed because their access was revoked, by endpoint and reason.",
        ["endpoint", "reason"],
    )  # fmt: skip


class Observation:
    """One handshake as :class:`MetricsMiddleware` sees it; the same object in every scope copy.

    It is also the ``send``/``receive`` pair the middleware hands inward (no closures per
    handshake): ``send`` notes the accept, ``receive`` confirms it.
    """

    __slots__ = ("_receive", "_send", "endpoint", "handshake", "router", "scope", "start", "state")

    def __init__(self, start: float, scope: Scope, router: Any, receive: Receive, send: Send) -> None:
        self.start = start
        self.scope = scope  # as the middleware got it: where a routing probe starts
        self.router = router
        self.endpoint: str | None = None  # the label, once known
        self.handshake: Handshake | None = None  # set by the outermost DenialMiddleware inside
        self.state = "deciding"  # "accepting" (accept sent), "open", "denied", "closed"
        self._receive = receive
        self._send = send

    def label(self) -> str:
        """The label: the route Channels matched when the handshake reached one, else the
        routing asked on the path (a probe run). Learned once."""
        if self.endpoint is None:
            handshake = self.handshake
            if handshake is not None and handshake.route is not None:
                self.endpoint = str(handshake.route.name or handshake.route.template)
            else:
                self.endpoint = _routed_label(self.scope, self.router) or UNMATCHED
        return self.endpoint

    async def send(self, message: Message) -> None:
        if self.state == "deciding" and message["type"] == "websocket.accept":
            self.state = "accepting"
            handshake = self.handshake
            if self.endpoint is None and handshake is not None and handshake.route is not None:
                self.endpoint = str(handshake.route.name or handshake.route.template)  # while it is known
        await self._send(message)

    async def receive(self) -> Message:
        if self.state == "accepting":
            self.confirm_accept()
        return await self._receive()

    def confirm_accept(self) -> None:
        """The accept stands (no denial followed it): count it and the open connection."""
        if self.state == "accepting":
            self.state = "open"
            observe(self, ACCEPTED, 101)
            _open_connections(self.endpoint or self.label()).inc()

    def closed(self) -> None:
        self.confirm_accept()
        if self.state == "open":
            self.state = "closed"
            _open_connections(self.endpoint or self.label()).dec()


def _routed_label(scope: Scope, router: Any = None) -> str | None:
    """The route's name or pattern for the handshake, from what the scope carries (or None).

    The route Channels matched when the handshake already reached it, else ``router``
    (the project's routing by default) asked on the scope's path.
    """
    handshake = current_handshake(scope)
    if handshake is not None and handshake.route is not None:
        return str(handshake.route.name or handshake.route.template)
    outer = {key: value for key, value in scope.items() if key != "path_remaining"}  # from the top
    routed = (router or _project_router()).resolve(outer)
    if routed is None:
        return None
    return str(routed.endpoint.name or routed.endpoint.route)


_router: Any = None


def _asgi_application_changed(setting: str, **kwargs: Any) -> None:
    global _router
    if setting == "ASGI_APPLICATION":
        _router = None


setting_changed.connect(_asgi_application_changed, dispatch_uid="wsreject.metrics.router")


def _project_router() -> Any:
    """A :class:`~wsreject.endpoints.Router` over ``settings.ASGI_APPLICATION`` (built once)."""
    global _router
    if _router is None:
        from django.conf import settings
        from django.utils.module_loading import import_string

        path = getattr(settings, "ASGI_APPLICATION", None)
        _router = Router(websocket_application(import_string(path)) if path else None)
    return _router


def endpoint_label(scope: Scope, router: Any = None) -> str:
    """The ``endpoint`` label: the route's name or pattern, ``UNMATCHED`` when there is none.

    The route Channels matched when the handshake reached one (no extra work), else the
    routing asked on the path (a probe run), once per handshake.
    """
    observation = scope.get(OBSERVATION_KEY)
    if isinstance(observation, Observation) and observation.endpoint is not None:
        return observation.endpoint
    handshake = current_handshake(scope)
    if handshake is not None and handshake.route is not None:
        label = str(handshake.route.name or handshake.route.template)
        if isinstance(observation, Observation):
            observation.endpoint = label
        return label
    if isinstance(observation, Observation):
        return observation.label()
    return _routed_label(scope, router) or UNMATCHED


def observe_handshake(scope: Scope, outcome: str, status: int) -> None:
    """Count one decided handshake (and its latency when :class:`MetricsMiddleware` timed it)."""
    if prometheus_client is None:
        return
    observation = scope.get(OBSERVATION_KEY)
    if isinstance(observation, Observation):
        if observation.handshake is None:  # no DenialMiddleware said which one it is
            observation.handshake = current_handshake(scope)
        observe(observation, outcome, status)
        if outcome == DENIED:
            observation.state = "denied"
    else:
        _handshakes(endpoint_label(scope), outcome, status).inc()


def observe(observation: Observation, outcome: str, status: int) -> None:
    """The counter and the latency of one handshake timed by :class:`MetricsMiddleware`."""
    elapsed = time.perf_counter() - observation.start
    endpoint = observation.endpoint or observation.label()
    _handshakes(endpoint, outcome, status).inc()
    _decision_seconds(endpoint, outcome).observe(elapsed)


# The labelled children, kept here: ``labels()`` validates, joins and locks on every call. The
# label values are bounded (route names and patterns, UNMATCHED, the outcomes, the statuses).
_handshake_children: dict[tuple[str, str, int], Any] = {}
_latency_children: dict[tuple[str, str], Any] = {}
_open_children: dict[str, Any] = {}


def _handshakes(endpoint: str, outcome: str, status: int) -> Any:
    try:
        return _handshake_children[endpoint, outcome, status]
    except KeyError:
        child = _handshake_children[endpoint, outcome, status] = HANDSHAKES.labels(endpoint, outcome, str(status))
        return child


def _decision_seconds(endpoint: str, outcome: str) -> Any:
    try:
        return _latency_children[endpoint, outcome]
    except KeyError:
        child = _latency_children[endpoint, outcome] = DECISION_SECONDS.labels(endpoint, outcome)
        return child


def _open_connections(endpoint: str) -> Any:
    try:
        return _open_children[endpoint]
    except KeyError:
        child = _open_children[endpoint] = OPEN_CONNECTIONS.labels(endpoint)
        return child


def revocation_reason(denial: DenyHandshake) -> str:
    """The ``reason`` label of a revocation: one of :data:`REVOCATION_REASONS`."""
    status = denial.status_code
    if status == 401:
        return "credential_expired" if str(denial.detail) == TOKEN_EXPIRED else "credential_revoked"
    return {403: "not_allowed", 503: "endpoint_disabled"}.get(status, "other")


def observe_revocation(sender: Any, scope: Scope, denial: DenyHandshake, **kwargs: Any) -> None:
    """``connection_revoked`` receiver: count one open connection closed by revocation."""
    if prometheus_client is not None:
        REVOCATIONS.labels(endpoint_label(scope), revocation_reason(denial)).inc()


def connect_revocations() -> None:
    """Count revocations from now on; called by ``WSRejectConfig.ready()``."""
    connection_revoked.connect(observe_revocation, dispatch_uid="wsreject.metrics.revocations")


class MetricsMiddleware:
    """Outermost WebSocket layer: times each handshake, counts accepts and open connections.

    An accept counts once the application reads its next message (or returns)
    without the handshake having been denied: in close-code mode a denial is an
    accept, a frame and a close, and the denial log reports it right after.
    """

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.router = Router(inner)  # the endpoints of what it wraps

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> Any:
        if scope["type"] != "websocket" or prometheus_client is None:
            return await self.inner(scope, receive, send)
        observation = Observation(time.perf_counter(), scope, self.router, receive, send)
        try:
            return await self.inner({**scope, OBSERVATION_KEY: observation}, observation.receive, observation.send)
        finally:
            observation.closed()
            observation.handshake = None  # it holds this send/receive pair: no cycle outlives the call


def metrics_view(request: HttpRequest) -> HttpResponse:
    """The Prometheus text exposition: every process's values under ``PROMETHEUS_MULTIPROC_DIR``."""
    from django.http import HttpResponse

    if prometheus_client is None:
        return HttpResponse("prometheus_client is not installed\n", status=501, content_type="text/plain")
    from prometheus_client import multiprocess

    registry: Any = prometheus_client.REGISTRY
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        registry = prometheus_client.CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
    return HttpResponse(prometheus_client.generate_latest(registry), content_type=prometheus_client.CONTENT_TYPE_LATEST)
