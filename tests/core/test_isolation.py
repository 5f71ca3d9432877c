"""A user's test module with no wsreject fixture is isolated (issue 18, item 1).

The module below is what a new user writes: no ``caches.clear()``, no reset. Its first test
closes the echo endpoint with an access rule; the second must not see that rule. Flushing the test
database deletes the rule without a signal, so wsreject's per-process copies (the versions, the
compiled rules) would keep it: the pytest plugin (entry point ``pytest11``) resets them before each
test, and the ``post_migrate`` that Django's flush sends resets them too (for Django's own runner,
and here with the plugin disabled).
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import pytest

from tests.support.servers import REPO_ROOT

USER_MODULE = textwrap.dedent(
    '''
    import pytest

    from project.asgi import application
    from wsreject.models import AccessRule
    from wsreject.testing import HandshakeCommunicator

    pytestmark = pytest.mark.django_db(transaction=True)


    async def handshake():
        return await HandshakeCommunicator(application, "/ws/echo/").handshake()


    async def test_1_a_rule_closes_the_endpoint():
        assert (await handshake()).accepted  # the rules are read, and kept, before the change
        await AccessRule.objects.acreate(endpoint="/ws/echo/", enabled=False, disabled_detail="Closed")
        result = await handshake()
        assert (result.status_code, result.json()) == (503, {"detail": "Closed"})


    async def test_2_the_next_test_has_no_rule():
        assert await AccessRule.objects.acount() == 0
        assert (await handshake()).accepted


    async def test_3_and_again():
        await test_1_a_rule_closes_the_endpoint()
    '''
)


@pytest.mark.parametrize("plugin", [True, False], ids=["pytest-plugin", "flush-signal-only"])
def test_a_user_module_without_fixtures_is_isolated(tmp_path, plugin):
    (tmp_path / "test_user.py").write_text(USER_MODULE, encoding="utf-8")
    (tmp_path / "pytest.ini").write_text(
        f"[pytest]\nDJANGO_SETTINGS_MODULE = project.settings\npythonpath = {REPO_ROOT}\nasyncio_mode = auto\nasyncio_default_fixture_loop_scope = function\n", encoding="utf-8"
    )
    env = {key: value for key, value in os.environ.items() if key not in ("DATABASE_URL", "REDIS_URL")}
    command = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-c", "pytest.ini", "--rootdir", ".", "test_user.py"]
    if not plugin:
        command[3:3] = ["-p", "no:wsreject"]
    result = subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    assert output.strip().splitlines()[-1].startswith("3 passed"), output


def test_the_plugin_is_registered():
    from importlib.metadata import entry_points

    assert [e.value for e in entry_points(group="pytest11") if e.name == "wsreject"] == ["wsreject.pytest_plugin"]
