"""``manage.py wsreject_explain``: the demo's bob is refused a room by the permission, alice is
admitted, each check is listed with its result; exit 0 / 1 / 2 from the real command line."""

from __future__ import annotations

import io
import os
import subprocess
import sys

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from tests.support.demo import DemoData, prepare_demo
from tests.support.servers import REPO_ROOT
from wsreject.management.commands.wsreject_explain import Command
from wsreject.models import AccessRule


def explain(*args: str) -> tuple[int, str]:
    """Run the command in process: (its exit status, its output)."""
    out = io.StringIO()
    command = Command()
    call_command(command, *args, stdout=out)
    return command.exit_code, out.getvalue()


def check_lines(output: str) -> dict[str, str]:
    """{check: result line} from the "Checks:" block."""
    block = output.split("Checks:\n", 1)[1].split("\nOutcome:", 1)[0]
    return {line.split("  ")[1].strip(): line for line in block.splitlines()}


@pytest.mark.django_db(transaction=True)
def test_bob_is_refused_a_room_by_the_permission(demo_tokens):
    status, output = explain("--user", "bob", "/ws/rooms/lobby/")
    assert status == 1
    assert "Endpoint:  /ws/rooms/<slug:name>/  (route 'rooms')" in output
    assert "Consumer:  project.chat.consumers.RoomConsumer" in output
    assert "Arguments: name='lobby'" in output
    checks = check_lines(output)
    assert list(checks) == ["Origin", "authentication", "access rules", "HasPermissions('chat.join_room',)"]
    assert "refused 403 Not allowed to join this room" in checks["HasPermissions('chat.join_room',)"]
    assert all("passed" in checks[name] for name in ("Origin", "authentication", "access rules"))
    assert output.rstrip().endswith(
        "Outcome:   denied 403 'Not allowed to join this room', refused by HasPermissions('chat.join_room',)"
    )


@pytest.mark.django_db(transaction=True)
def test_alice_is_admitted_with_the_object_checks_evaluated(demo_tokens):
    status, output = explain("--user", "alice", "/ws/rooms/lobby/")
    assert status == 0
    checks = check_lines(output)
    assert "passed" in checks["HasPermissions('chat.join_room',)"]
    assert "passed" in checks["object checks on <Room: lobby>"]
    assert "NeedsIO" not in output  # the attempt on the event loop, retried in a thread, is recorded once
    assert output.rstrip().endswith("Outcome:   admitted (101)")


@pytest.mark.django_db(transaction=True)
def test_the_refusing_check_is_named_for_each_layer(demo_tokens):
    status, output = explain("--user", "alice", "/ws/rooms/nowhere/")
    assert status == 1
    assert "denied 404 'Room not found', refused by RoomConsumer.get_permission_object()" in output

    status, output = explain("--user", "alice", "--origin", "https://evil.example", "/ws/echo/")
    assert status == 1
    assert "refused 403 Origin not allowed  (https://evil.example)" in output
    assert "refused by Origin" in output

    status, output = explain("--user", "bob", "/ws/no/such/path/")
    assert status == 1
    assert "Endpoint:  none: no route matches" in output
    assert "denied 404 'Not Found', refused by routing: no route matches this path" in output

    status, output = explain("--user", "dave", "/ws/private/")  # inactive: refused as his token is
    assert status == 1
    assert "denied 401 'Invalid credentials'" in output

    AccessRule.objects.create(endpoint="rooms", enabled=False, retry_after=30)
    status, output = explain("--user", "alice", "/ws/rooms/lobby/")
    assert status == 1
    assert "access rules" in check_lines(output)
    assert "refused 503" in check_lines(output)["access rules"]
    assert "refused by access rules" in output


@pytest.mark.django_db(transaction=True)
def test_a_throttle_is_peeked_not_spent(demo_tokens):
    for _ in range(5):
        status, output = explain("--user", "carol", "/ws/limited/")
        assert status == 0
    assert "passed  (peeked, not counted)" in check_lines(output)["Throttle(3/60s)"]


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--user", "nobody", "/ws/echo/"], "no user 'nobody'"),
        (["--user", "bob", "--header", "no colon", "/ws/echo/"], "bad header: expected 'Name: value'"),
        (["--user", "bob", "--header", "Bad Name: x", "/ws/echo/"], "bad header"),
        (["--user", "bob", "ws/echo/"], "the path must start with '/'"),
        (["--user", "bob", "--header", "X-Note: 10 \u20ac", "/ws/echo/"], "must be Latin-1"),
    ],
)
def test_errors_exit_2(demo_tokens, args, message):
    with pytest.raises(CommandError, match=message) as raised:
        explain(*args)
    assert raised.value.returncode == 2


@pytest.mark.django_db(transaction=True)
def test_headers_reach_the_checks_but_not_who_the_user_is(demo_tokens):
    status, output = explain("--user", "bob", "--header", "Origin: https://evil.example", "/ws/echo/")
    assert (status, "refused by Origin" in output) == (1, True)
    status, output = explain("--user", "bob", "--header", "Authorization: Bearer not-a-token", "/ws/private/")
    assert status == 0  # the user is given: a credential does not change who it is
    assert "'bob' (given, credentials not checked)" in check_lines(output)["authentication"]


@pytest.fixture(scope="module")
def demo(tmp_path_factory) -> DemoData:
    return prepare_demo(tmp_path_factory.mktemp("explain"))


def run_manage(demo: DemoData, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "manage.py", "wsreject_explain", *args],
        cwd=REPO_ROOT,
        env={**os.environ, **demo.env},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


@pytest.mark.parametrize(
    ("args", "code", "expected"),
    [
        (["--user", "alice", "/ws/rooms/lobby/"], 0, "Outcome:   admitted (101)"),
        (["--user", "bob", "/ws/rooms/lobby/"], 1, "denied 403 'Not allowed to join this room'"),
        (["--user", "nobody", "/ws/rooms/lobby/"], 2, "no user 'nobody'"),
        (["--user", "bob", "-H", "nonsense", "/ws/echo/"], 2, "bad header"),
        (["/ws/echo/"], 2, "--user"),
    ],
)
def test_exit_status_from_the_command_line(demo, args, code, expected):
    result = run_manage(demo, *args)
    assert result.returncode == code, result.stdout + result.stderr
    assert expected in result.stdout + result.stderr
