"""``wsreject.E030``: each configured authenticator checks what it needs (issue 18, item 2).

The README's ``DRFTokenAuthenticator`` without ``rest_framework.authtoken`` passed ``manage.py
check``, then answered every ``Authorization: Token`` handshake with a 500.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.core import checks

from wsreject.checks import check_authenticator_requirements

ROOT = Path(__file__).resolve().parents[2]
DRF_TOKENS = "wsreject.authentication.drf.DRFTokenAuthenticator"
SESSION = "wsreject.authentication.SessionAuthenticator"


def without(settings, app: str) -> None:
    settings.INSTALLED_APPS = [name for name in settings.INSTALLED_APPS if name != app]


def test_drf_tokens_without_authtoken_say_the_fix(settings):
    without(settings, "rest_framework.authtoken")
    settings.WSREJECT = {"AUTHENTICATORS": [DRF_TOKENS]}
    (error,) = check_authenticator_requirements()
    assert (error.id, error.level) == ("wsreject.E030", checks.ERROR)
    assert "DRFTokenAuthenticator" in error.msg and "'rest_framework.authtoken' is not in INSTALLED_APPS" in error.msg
    assert error.hint == "Add 'rest_framework.authtoken' to INSTALLED_APPS and run migrate."


def test_drf_tokens_with_authtoken_pass(settings):
    settings.WSREJECT = {"AUTHENTICATORS": [DRF_TOKENS, SESSION]}
    assert check_authenticator_requirements() == []


def test_the_generic_drf_authenticator_with_drfs_token_class_needs_authtoken_too(settings):
    without(settings, "rest_framework.authtoken")
    entry = ("wsreject.authentication.drf.DRFAuthenticator", {"authentication_class": "rest_framework.authentication.TokenAuthentication"})
    settings.WSREJECT = {"AUTHENTICATORS": [entry]}
    (error,) = check_authenticator_requirements()
    assert error.id == "wsreject.E030" and error.msg.startswith("WSREJECT['AUTHENTICATORS']: wsreject.authentication.drf.DRFAuthenticator: ")


def test_a_token_class_with_its_own_model_needs_no_authtoken(settings):
    without(settings, "rest_framework.authtoken")
    entry = ("wsreject.authentication.drf.DRFTokenAuthenticator", {"authentication_class": "tests.checks.drf_classes.OwnModelTokens"})
    settings.WSREJECT = {"AUTHENTICATORS": [entry]}
    assert check_authenticator_requirements() == []


def test_session_authenticator_without_sessions(settings):
    without(settings, "django.contrib.sessions")
    settings.WSREJECT = {"AUTHENTICATORS": [SESSION]}
    (error,) = check_authenticator_requirements()
    assert error.id == "wsreject.E030" and "'django.contrib.sessions' is not in INSTALLED_APPS" in error.msg
    assert "Add 'django.contrib.sessions' to INSTALLED_APPS" in error.hint


def test_session_authenticator_with_an_engine_that_does_not_import(settings):
    settings.SESSION_ENGINE = "no_such_module.sessions"
    settings.WSREJECT = {"AUTHENTICATORS": [SESSION]}
    (error,) = check_authenticator_requirements()
    assert "SESSION_ENGINE 'no_such_module.sessions' cannot be imported" in error.msg


def test_the_default_list_is_not_held_to_the_session_app(settings):
    """Without ``AUTHENTICATORS`` the session authenticator is simply off in a project without
    sessions (an API-only project), as Django's own session middleware would be."""
    without(settings, "django.contrib.sessions")
    settings.WSREJECT = {}
    assert check_authenticator_requirements() == []


def test_simplejwt_user_id_field_must_be_a_field(settings):
    settings.SIMPLE_JWT = {"USER_ID_FIELD": "uuid"}
    settings.WSREJECT = {"AUTHENTICATORS": ["wsreject.authentication.simplejwt.SimpleJWTAuthenticator"]}
    (error,) = check_authenticator_requirements()
    assert "SIMPLE_JWT['USER_ID_FIELD'] is 'uuid', which is not a field of auth.User" in error.msg
    settings.SIMPLE_JWT = {"USER_ID_FIELD": "username"}
    assert check_authenticator_requirements() == []


def test_simplejwt_token_classes_must_import(settings):
    settings.SIMPLE_JWT = {"AUTH_TOKEN_CLASSES": ("no_such_module.Token",)}
    settings.WSREJECT = {"AUTHENTICATORS": ["wsreject.authentication.simplejwt.SimpleJWTAuthenticator"]}
    (error,) = check_authenticator_requirements()
    assert "SIMPLE_JWT['AUTH_TOKEN_CLASSES'] cannot be imported" in error.msg


@pytest.mark.parametrize("entries", [None, "x", ["no.such.Authenticator"], ["wsreject.permissions.IsStaff"]], ids=repr)
def test_entries_that_cannot_be_loaded_are_left_to_e005(settings, entries):
    settings.WSREJECT = {"AUTHENTICATORS": entries}
    assert check_authenticator_requirements() == []


def test_the_check_is_registered(settings):
    without(settings, "rest_framework.authtoken")
    settings.WSREJECT = {"AUTHENTICATORS": [DRF_TOKENS]}
    assert "wsreject.E030" in [message.id for message in checks.run_checks()]


def test_manage_py_check_fails_with_the_fix():
    """The issue's case end to end: ``manage.py check`` on those settings exits non-zero and says the fix."""
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "tests.checks.settings_no_authtoken"}
    result = subprocess.run([sys.executable, "manage.py", "check"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)
    assert result.returncode != 0, result.stdout + result.stderr
    assert "wsreject.E030" in result.stderr
    assert "HINT: Add 'rest_framework.authtoken' to INSTALLED_APPS and run migrate." in result.stderr
