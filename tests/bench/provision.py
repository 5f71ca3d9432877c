"""Everything a run needs before the first server starts: the demo's database (SQLite,
migrated and seeded with ``prepare_demo``), sessions for alice and bob, tokens for the
FastAPI reference, optionally a flushed Redis database — and the environment of each peer."""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.support.demo import prepare_demo
from tests.support.servers import REPO_ROOT

from .peers import Peer
from .scenarios import Credentials

REFERENCE_USERS = ("alice", "bob", "carol", "dave")


@dataclass
class Provision:
    creds: Credentials
    demo_env: dict[str, str]  # for every peer serving project.settings
    reference_env: dict[str, str]
    redis_url: str | None  # every Django peer on Redis (--redis)
    log_level: str
    peer_redis_url: str | None = None  # the Redis peers' (flushed) database

    def env_for(self, peer: Peer) -> dict[str, str]:
        env = {"WSREJECT_LOG_LEVEL": self.log_level}
        if peer.django:
            env.update(self.demo_env)
        if peer.redis:
            assert self.peer_redis_url, "a Redis peer needs a provisioned Redis database"
            env["REDIS_URL"] = self.peer_redis_url
        if peer.family == "fastapi":
            env.update(self.reference_env)
        return env


def run_inprocess(env: dict[str, str], *args: str, stdin: Any = None, timeout: float = 300) -> Any:
    """``python -m tests.bench.inprocess ARGS`` with ``env``; its JSON output."""
    result = subprocess.run(
        [sys.executable, "-m", "tests.bench.inprocess", *args],
        check=False,
        cwd=REPO_ROOT,
        env={**os.environ, **env},
        input=json.dumps(stdin) if stdin is not None else None,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    if result.returncode != 0:
        raise RuntimeError(f"tests.bench.inprocess {' '.join(args)} failed:\n{result.stderr}")
    return json.loads(result.stdout)


def flush_redis(url: str) -> None:
    import redis

    try:
        redis.Redis.from_url(url, socket_timeout=5).flushdb()
    except redis.RedisError as exc:
        raise SystemExit(f"--redis: cannot flush {url} ({exc}); is Redis running on 127.0.0.1:6379?") from exc


def provision(directory: Path, *, log_level: str, redis_db: int | None, peer_redis_db: int | None = None) -> Provision:
    """``redis_db``: every Django peer on Redis (``--redis``); ``peer_redis_db``: only the Redis peers."""
    redis_url = f"redis://127.0.0.1:6379/{redis_db}" if redis_db is not None else None
    peer_redis_url = f"redis://127.0.0.1:6379/{peer_redis_db}" if peer_redis_db is not None else None
    if peer_redis_url:
        flush_redis(peer_redis_url)
    extra = {
        "DJANGO_DEBUG": "0",
        "DJANGO_SECRET_KEY": "bench-" + secrets.token_urlsafe(32),
        "DJANGO_ALLOWED_HOSTS": "127.0.0.1,localhost",
        "REDIS_URL": redis_url or "",  # empty: the local-memory cache, whatever the caller's env says
        "WSREJECT_LOG_LEVEL": log_level,
    }
    if redis_url:
        flush_redis(redis_url)
    demo = prepare_demo(directory, extra)
    logged_in = run_inprocess(demo.env, "sessions", "alice", "bob")
    if logged_in["cookie"] != "sessionid":
        raise RuntimeError(f"the demo's session cookie is {logged_in['cookie']!r}, the scenarios send 'sessionid'")
    reference_tokens = {user: secrets.token_urlsafe(24) for user in REFERENCE_USERS}
    creds = Credentials(tokens=demo.tokens, sessions=logged_in["sessions"], reference_tokens=reference_tokens)
    return Provision(
        creds=creds,
        demo_env=dict(demo.env),
        reference_env={"WSREJECT_REF_TOKENS": json.dumps(reference_tokens)},
        redis_url=redis_url,
        log_level=log_level,
        peer_redis_url=peer_redis_url,
    )
