"""``wsreject.W031`` (``check --deploy``): Origins effectively unchecked (issue 18, item 5).

``ALLOWED_HOSTS = ["*"]`` with ``DEBUG = False`` made wsreject accept any Origin (it checks Origin
against ALLOWED_HOSTS unless ``ALLOWED_ORIGINS`` is set), and ``check --deploy`` said nothing.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.core import checks

from wsreject.checks import check_deploy_origins

ROOT = Path(__file__).resolve().parents[2]

CASES = {
    "any-host-no-debug": ({"DEBUG": False, "ALLOWED_HOSTS": ["*"]}, {}, ["wsreject.W031"]),
    "any-host-among-others": ({"DEBUG": False, "ALLOWED_HOSTS": ["app.example.com", "*"]}, {}, ["wsreject.W031"]),
    "explicit-origins": ({"DEBUG": False, "ALLOWED_HOSTS": ["*"]}, {"ALLOWED_ORIGINS": ["https://app.example.com"]}, []),
    "explicit-any-origin-is-a-choice": ({"DEBUG": False, "ALLOWED_HOSTS": ["*"]}, {"ALLOWED_ORIGINS": ["*"]}, []),
    "debug-on": ({"DEBUG": True, "ALLOWED_HOSTS": ["*"]}, {}, []),
    "listed-hosts": ({"DEBUG": False, "ALLOWED_HOSTS": ["app.example.com", ".example.org"]}, {}, []),
    "invalid-origins-left-to-e004": ({"DEBUG": False, "ALLOWED_HOSTS": ["*"]}, {"ALLOWED_ORIGINS": "https://x"}, []),
}


@pytest.mark.parametrize(("django", "wsreject", "expected"), CASES.values(), ids=CASES.keys())
def test_deploy_warning(settings, django, wsreject, expected):
    for name, value in django.items():
        setattr(settings, name, value)
    settings.WSREJECT = wsreject
    assert [message.id for message in check_deploy_origins()] == expected


def test_the_warning_says_the_fix(settings):
    settings.DEBUG, settings.ALLOWED_HOSTS, settings.WSREJECT = False, ["*"], {}
    (warning,) = check_deploy_origins()
    assert warning.level == checks.WARNING
    assert "every Origin is accepted" in warning.msg
    assert "Set WSREJECT['ALLOWED_ORIGINS']" in warning.hint


def test_registered_for_deploy_only(settings):
    settings.DEBUG, settings.ALLOWED_HOSTS, settings.WSREJECT = False, ["*"], {}
    assert "wsreject.W031" not in [message.id for message in checks.run_checks()]
    assert "wsreject.W031" in [message.id for message in checks.run_checks(include_deployment_checks=True)]


def test_manage_py_check_deploy_names_it():
    env = {**os.environ, "DJANGO_DEBUG": "0", "DJANGO_ALLOWED_HOSTS": "*", "DJANGO_SECRET_KEY": "x" * 64}
    env.pop("DJANGO_SETTINGS_MODULE", None)  # the demo's settings, configured by the environment above
    result = subprocess.run(
        [sys.executable, "manage.py", "check", "--deploy"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60
    )
    assert "wsreject.W031" in result.stdout + result.stderr, result.stdout + result.stderr
    plain = subprocess.run([sys.executable, "manage.py", "check"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)
    assert "wsreject.W031" not in plain.stdout + plain.stderr
