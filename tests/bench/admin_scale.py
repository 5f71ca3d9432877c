"""The admin's "Who can connect" pages with a handful of users and with 100 000, on SQLite and PostgreSQL.

``python -m tests.bench.admin_scale`` (also run by ``python -m tests.bench --admin-scale``):
for each database, a fresh one is migrated and seeded with the demo's users, the pages are
rendered (median of several renders, through Django's test client as a logged-in
superuser), then ``--users`` users are added (half of them in the group that grants
``chat.join_room``) and the same pages are rendered again. The target (issue 21) is the
large case within 3x the small one. Results go to ``docs/bench/admin_scale.{json,md}``.

Each database is measured in its own process (Django is configured once per process).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from tests.support.servers import REPO_ROOT
from tests.support.services import POSTGRES_URL, postgres_unreachable

OUT = REPO_ROOT / "docs" / "bench"
TARGET_RATIO = 3.0
PAGES = {
    "who can connect": "/admin/wsreject/accessrule/endpoints/",
    "search 'user4242'": "/admin/wsreject/accessrule/endpoints/?q=user4242",
    "rooms, page 2": "/admin/wsreject/accessrule/endpoints/{rooms}/?page=2",
}


def _render_times(client: Any, url: str, renders: int) -> float:
    """Median milliseconds of ``renders`` renders of ``url`` (after one warm-up render)."""
    assert client.get(url).status_code == 200
    times = []
    for _ in range(renders):
        start = time.perf_counter()
        response = client.get(url)
        times.append((time.perf_counter() - start) * 1000)
        assert response.status_code == 200, response.status_code
    return statistics.median(times)


def _add_users(count: int) -> None:
    """``count`` users (no usable password), every other one in the group "members"."""
    from django.contrib.auth import get_user_model
    from django.contrib.auth.models import Group

    user_model = get_user_model()
    members = Group.objects.get(name="members")
    link = user_model.groups.through
    batch = 5000
    for start in range(0, count, batch):
        users = [
            user_model(username=f"user{number}", password="!", is_active=number % 97 != 0)
            for number in range(start, min(start + batch, count))
        ]
        created = user_model.objects.bulk_create(users)
        if any(user.pk is None for user in created):  # backends that return no ids (older SQLite)
            names = [user.username for user in users]
            created = list(user_model.objects.filter(username__in=names))
        link.objects.bulk_create(
            [link(user_id=user.pk, group_id=members.pk) for user in created if int(user.username[4:]) % 2 == 0]
        )


def _checked_count(client: Any, url: str) -> int:
    """The rooms row's count on the page, checked against one filtered pass over the user table
    (the count's other form): a fast wrong answer would not be a result."""
    from wsreject.access.holders import users_passing

    rows = {row.endpoint.route: row for row in client.get(url).context["rows"]}
    shown = rows["/ws/rooms/<slug:name>/"].user_count
    reference = users_passing(["chat.join_room"], [], correlated=False).count()
    assert shown == reference, (shown, reference)
    return int(shown)


def measure_one(database_url: str, users: int, renders: int) -> dict[str, Any]:
    """In this process: migrate, seed, render small, add ``users``, render large."""
    os.environ["DATABASE_URL"] = database_url
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "project.settings")
    os.environ["WSREJECT_LOG_LEVEL"] = "WARNING"
    import django

    django.setup()
    from django.contrib.auth import get_user_model
    from django.core.management import call_command
    from django.test import Client
    from django.test.utils import setup_test_environment

    from wsreject.endpoints import project_endpoints

    setup_test_environment()  # the test client's ALLOWED_HOSTS and template rendering hooks
    call_command("migrate", verbosity=0)
    call_command("seed_demo", stdout=open(os.devnull, "w"))  # noqa: SIM115
    admin = get_user_model().objects.create_superuser("bench-admin", "bench@example.com", None)
    client = Client()
    client.force_login(admin)
    rooms = [endpoint.route for endpoint in project_endpoints()].index("/ws/rooms/<slug:name>/")
    urls = {name: url.format(rooms=rooms) for name, url in PAGES.items()}
    small_users = get_user_model().objects.count()
    small = {name: _render_times(client, url, renders) for name, url in urls.items() if "page=2" not in url}
    start = time.perf_counter()
    _add_users(users)
    seeded = time.perf_counter() - start
    large = {name: _render_times(client, url, renders) for name, url in urls.items()}
    return {
        "small_users": small_users,
        "large_users": get_user_model().objects.count(),
        "rooms_users": _checked_count(client, urls["who can connect"]),
        "seed_seconds": round(seeded, 1),
        "small_ms": small,
        "large_ms": large,
    }


def _postgres_database(name: str, create: bool) -> None:
    import psycopg

    with psycopg.connect(f"{POSTGRES_URL}/test", autocommit=True, connect_timeout=5) as connection:
        connection.execute(f'DROP DATABASE IF EXISTS "{name}"')
        if create:
            connection.execute(f'CREATE DATABASE "{name}"')


def run(databases: list[str], users: int, renders: int) -> dict[str, Any]:
    """Measure each database in a child process; return the results keyed by database."""
    results: dict[str, Any] = {
        "users": users, "renders": renders, "target_ratio": TARGET_RATIO, "databases": {},
        "cores": os.cpu_count(), "loadavg_before": [round(load, 2) for load in os.getloadavg()],
    }  # fmt: skip
    for database in databases:
        with tempfile.TemporaryDirectory(prefix="wsreject-admin-bench-") as tmp:
            pg_name = f"wsreject_admin_bench_{os.getpid()}"
            if database == "sqlite":
                url = f"sqlite:///{Path(tmp) / 'bench.sqlite3'}"
            else:
                reason = postgres_unreachable()
                if reason:
                    results["databases"][database] = {"skipped": reason}
                    continue
                _postgres_database(pg_name, create=True)
                url = f"{POSTGRES_URL}/{pg_name}"
            try:
                output = subprocess.run(
                    [sys.executable, "-m", "tests.bench.admin_scale", "--one", url, "--users", str(users), "--renders", str(renders)],
                    cwd=REPO_ROOT, capture_output=True, text=True, timeout=1800, check=True,
                ).stdout  # fmt: skip
            finally:
                if database == "postgres":
                    _postgres_database(pg_name, create=False)
            results["databases"][database] = json.loads(output.strip().splitlines()[-1])
    results["loadavg_after"] = [round(load, 2) for load in os.getloadavg()]
    return results


def markdown(results: dict[str, Any]) -> str:
    lines = [
        "# \"Who can connect\" at scale",
        "",
        f"Median of {results['renders']} renders (Django test client, logged-in superuser), with the demo's seed "
        f"(a handful of users) and with {results['users']:,} more users, half of them in the group granting "
        f"`chat.join_room`. Target: the large case within {results['target_ratio']:g}x the small one. "
        "Generated by `python -m tests.bench.admin_scale`.",
        "",
        f"Machine: {results['cores']} cores, load average (1, 5, 15 min) {results['loadavg_before']} before and "
        f"{results['loadavg_after']} after: on a shared machine both cases slow down, not always alike.",
        "",
        "| database | page | small (ms) | large (ms) | ratio | within target |",
        "|---|---|---:|---:|---:|---|",
    ]
    for database, result in results["databases"].items():
        if "skipped" in result:
            lines.append(f"| {database} | skipped: {result['skipped']} | | | | |")
            continue
        for page, large in result["large_ms"].items():
            small = result["small_ms"].get(page, result["small_ms"]["who can connect"])
            ratio = large / small
            within = "yes" if ratio <= results["target_ratio"] else "**no**"
            lines.append(f"| {database} | {page} | {small:.1f} | {large:.1f} | {ratio:.2f} | {within} |")
    lines += ["", "(\"rooms, page 2\" has no small case — the seed fits one page — so it is compared with the small overview.)", ""]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.bench.admin_scale", description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=100_000, help="users added for the large case (100000)")
    parser.add_argument("--renders", type=int, default=7, help="renders per page and case; the median counts (7)")
    parser.add_argument("--databases", default="sqlite,postgres", help="sqlite,postgres")
    parser.add_argument("--out", type=Path, default=OUT, help="directory for admin_scale.json and .md")
    parser.add_argument("--one", help=argparse.SUPPRESS)  # child process: measure this DATABASE_URL
    args = parser.parse_args(argv)
    if not (1 <= args.users <= 1_000_000 and 1 <= args.renders <= 50):
        parser.error("keep it bounded: 1 <= users <= 1000000, 1 <= renders <= 50")
    if args.one:
        print(json.dumps(measure_one(args.one, args.users, args.renders)))
        return 0
    databases = [d.strip() for d in args.databases.split(",") if d.strip()]
    if unknown := set(databases) - {"sqlite", "postgres"}:
        parser.error(f"unknown databases: {', '.join(sorted(unknown))}")
    results = run(databases, args.users, args.renders)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "admin_scale.json").write_text(json.dumps(results, indent=2) + "\n")
    (args.out / "admin_scale.md").write_text(markdown(results))
    print(markdown(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
