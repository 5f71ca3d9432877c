"""The differential test's real-server sample: generated routings on Daphne + wsreject and uvicorn.

For a few seeded routings (:mod:`tests.routing.sample_app`), spellings are sent as raw
handshakes; each must reach the leaf plain Channels reaches in process (101 and the
leaf's own frame) or get 404 where Channels has no route. Then a disabled rule,
added to the server's database by another process, on one reached endpoint's exact
path must refuse that endpoint's spellings (503) and leave every other answer as it was.
"""

from __future__ import annotations

import random
import time
from collections.abc import Iterator
from typing import Any

import pytest
from asgiref.sync import async_to_sync

from tests.security.conftest import demo_template  # noqa: F401 - the session's demo database template
from tests.security.deployment import demo_copy, django_shell
from tests.security.rawhttp import exchange, upgrade_request
from tests.support.servers import running_server

from .generate import build, canonical, random_spec, spell
from .test_differential import plain_truth

pytestmark = [pytest.mark.server, pytest.mark.one_leg]

KINDS = ("daphne-wsreject", "uvicorn-websockets-sansio")
# Between them: a path rewrite, a hidden-attribute wrapper, close-code mode, Channels' middleware.
SEEDS = (34, 50, 69)
#: How long a rule added by another process may take to be seen: MAX_STALENESS (5 s) and a margin.
STALENESS_BOUND = 15.0


def wire_safe(path: str) -> bool:
    """Sent as written by every server: ASCII, and not a leading "//" (absolute-form look-alike)."""
    return path.isascii() and not path.startswith("//")


def spellings(seed: int) -> tuple[Any, dict[str, Any]]:
    spec = random_spec(random.Random(seed))
    rng = random.Random(seed * 7)
    plain = build(spec, wsreject=False)
    paths = {spell(spec, chain, rng) for chain, _ in spec.leaves() for _ in range(3)}
    paths |= {"/nowhere/", "/api/nowhere/"}
    return spec, {path: async_to_sync(plain_truth)(plain, path) for path in sorted(paths) if wire_safe(path)}


def answer(server: Any, path: str) -> tuple[int | None, Any]:
    """``(status, first frame)``; a close-code denial (101, then 4000 + status) counts as its status."""
    reply = exchange(server.address, upgrade_request(path))
    if reply.status == 101 and (reply.close_code or 0) >= 4000:
        return reply.close_code - 4000, reply.first_text()
    return reply.status, (reply.first_text() if reply.status == 101 else None)


@pytest.fixture(scope="module", params=KINDS)
def kind(request) -> Iterator[str]:
    yield request.param


@pytest.mark.parametrize("seed", SEEDS)
def test_a_real_server_reaches_the_leaf_channels_reaches_and_rules_cover_it(kind, seed, demo_template, tmp_path):  # noqa: F811
    spec, truths = spellings(seed)
    reached = {path: truth for path, truth in truths.items() if truth is not None}
    assert reached, f"seed {seed}: no spelling reaches a leaf"
    with (
        demo_copy(demo_template, tmp_path) as deployment,
        running_server(
            kind, "tests.routing.sample_app:application", env={**deployment.env, "WSREJECT_ROUTING_SAMPLE_SEED": str(seed)}
        ) as server,
    ):
        before = {path: answer(server, path) for path in truths}
        for path, truth in truths.items():
            # No route: 404, over HTTP or (under a close-code stack the path went into) as close code 4404.
            got = before[path][0] if truth is None else before[path]
            expected = 404 if truth is None else (101, {"leaf": truth[0]})
            assert got == expected, f"{kind} seed {seed} {path!r}: {before[path]}, Channels {truth}"
        target_path, target = next(iter(reached.items()))
        django_shell(
            deployment.env,
            f"from wsreject.models import AccessRule\nAccessRule.objects.create(endpoint={canonical(target_path)!r}, enabled=False, retry_after=9)",
        )
        # Another process's change reaches this one within MAX_STALENESS (local-memory cache):
        # wait for the rule to be seen on the target, then every answer must be as expected.
        deadline = time.monotonic() + STALENESS_BOUND
        while answer(server, target_path)[0] != 503 and time.monotonic() < deadline:
            time.sleep(0.2)
        for path, truth in truths.items():
            got = answer(server, path)
            if truth == target:
                assert got[0] == 503, f"{kind} seed {seed}: rule {canonical(target_path)!r} must refuse {path!r}"
            else:
                assert got == before[path], f"{kind} seed {seed}: rule {canonical(target_path)!r} changed {path!r}"
