"""The in-process cost cases (queries and thread hops per warm handshake), per profile.

Besides the load scenarios, a throttled handshake: the demo's ``/ws/limited/``
(``Throttle("3/60s")``) once its budget is spent, a 429. It is measured in process only: under
load its budget refills every minute and the three handshakes that then open are WebSockets
wrk cannot complete. On local memory the throttle counts on the event loop; on Redis
(the ``wsreject-redis`` column) its one script is awaited there with redis-py's asyncio client.
"""

from __future__ import annotations

from typing import Any

from .peers import PEERS_BY_KEY
from .scenarios import SCENARIOS_BY_KEY, Credentials, Request, Scenario, request_for

THROTTLED = Scenario("throttled", "throttled, budget spent → 429", False)
#: The peers whose in-process costs are counted: (peer, whether it needs the Redis profile).
COST_PEERS = (("wsreject", False), ("channels", False), ("wsreject-redis", True))


def label(scenario: str) -> str:
    return THROTTLED.label if scenario == THROTTLED.key else SCENARIOS_BY_KEY[scenario].label


def _request(family: str, scenario: str, creds: Credentials) -> Request | None:
    if scenario == THROTTLED.key:
        return Request("/ws/limited/", status=429) if family == "wsreject" else None
    return request_for(family, scenario, creds)


def cases(peer_key: str, scenarios: list[str], creds: Credentials, repeat: int) -> list[dict[str, Any]]:
    """The cases of one peer: every scenario it can express, and the throttled handshake. The
    throttle's three handshakes per minute are spent by the warm-up (3 handshakes)."""
    peer = PEERS_BY_KEY[peer_key]
    found = []
    for scenario in [*scenarios, THROTTLED.key]:
        request = _request(peer.family, scenario, creds)
        if request is None:
            continue
        found.append({
            "peer": peer_key, "scenario": scenario, "app": peer.app, "path": request.path,
            "headers": [list(h) for h in request.headers], "first_message": request.first_message,
            "repeat": repeat, "warm": 3,
        })  # fmt: skip
    return found
