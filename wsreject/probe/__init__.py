"""A dependency-free WebSocket handshake probe (``manage.py wsreject_probe``).

::

    from wsreject.probe import UpgradeRequest, parse_url, probe

    outcome = probe(UpgradeRequest(parse_url("ws://127.0.0.1:8000/ws/private/")))
    outcome.exit_code   # 0 accepted, 1 denied (HTTP or close-code mode)

Modules: :mod:`.request` (URL, user input, the upgrade request), :mod:`.http` (the
response head), :mod:`.frames` (RFC 6455 framing), :mod:`.client` (the socket
conversation), :mod:`.h2` (the same over HTTP/2, RFC 8441; needs the optional ``h2`` package),
:mod:`.report` (text and JSON).
"""

from .client import (
    Accepted,
    CloseCodeDenied,
    Denied,
    Message,
    Outcome,
    ProbeFailure,
    probe,
)
from .request import Target, UpgradeRequest, UsageError, parse_url

__all__ = [
    "Accepted",
    "CloseCodeDenied",
    "Denied",
    "Message",
    "Outcome",
    "ProbeFailure",
    "Target",
    "UpgradeRequest",
    "UsageError",
    "parse_url",
    "probe",
]
