"""Channels' ``AllowedHostsOriginValidator`` around the wsreject stack (``tests.auth.outer_asgi``):
check ``wsreject.W012`` says why it should go, and everything that reads the routing —
endpoint discovery, ``migrate``'s declared permissions, the admin's "Who can connect" page,
access rules — still sees through it."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from channels.security.websocket import OriginValidator

from tests.support.servers import REPO_ROOT
from wsreject.checks import check_asgi_stack

from . import outer_asgi

OUTER = "tests.auth.outer_asgi.application"


@pytest.fixture
def outer(settings):
    settings.ASGI_APPLICATION = OUTER


def test_the_stack_really_is_inside_a_validator():
    websocket = outer_asgi.application.application_mapping["websocket"]
    assert isinstance(websocket, OriginValidator)


def test_w012_is_reported(outer):
    warnings = [message for message in check_asgi_stack() if message.id == "wsreject.W012"]
    assert len(warnings) == 1
    assert "AllowedHostsOriginValidator" in warnings[0].msg and OUTER in warnings[0].msg
    assert "OriginMiddleware" in warnings[0].hint
    assert [m.id for m in check_asgi_stack() if m.id != "wsreject.W012"] == []


def test_w012_is_not_reported_for_the_demo():
    assert [message.id for message in check_asgi_stack()] == []


def test_manage_py_check_reports_w012():
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "tests.auth.outer_settings", "PYTHONPATH": str(REPO_ROOT)}
    result = subprocess.run(
        [sys.executable, "manage.py", "check"], cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=120
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, output  # a warning, not an error
    assert "(wsreject.W012) Channels' OriginValidator (or AllowedHostsOriginValidator) wraps the wsreject stack" in output
    assert "System check identified 1 issue" in output, output
