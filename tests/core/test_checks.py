"""System checks (wsreject/checks.py, wsreject/daphne/checks.py)."""

from __future__ import annotations

import io

import pytest
from django.core import checks
from django.core.management import call_command

from wsreject.checks import check_asgi_stack, check_settings
from wsreject.daphne.checks import check_daphne_order, daphne_order_warnings


def ids_of(messages):
    return sorted(message.id for message in messages)


SETTINGS_CASES = {
    "defaults": ({}, []),
    "demo": ({"DENIAL_MODE": "http", "FALLBACK": "close"}, []),
    "all-valid": (
        {
            "DENIAL_MODE": "close_code",
            "FALLBACK": "close_code",
            "ALLOWED_ORIGINS": ["*", "https://*.example.com", "http://localhost:3000", "https://app.example.com"],
            "ALLOW_MISSING_ORIGIN": False,
            "AUTHENTICATORS": ["tests.core.asgi_apps.FixedTokens", ("wsreject.authentication.drf.DRFAuthenticator", {"authentication_class": "rest_framework.authentication.BasicAuthentication"})],
            "DECISION_TIMEOUT": None,
            "EXCEPTION_HANDLER": "wsreject.denial.default_exception_handler",
            "LOG_RATE": None,
            "NUM_PROXIES": 2,
        },
        [],
    ),
    "E001-string": ("http", ["wsreject.E001"]),
    "E001-list": ([("DENIAL_MODE", "http")], ["wsreject.E001"]),
    "E001-None": (None, ["wsreject.E001"]),
    "W001-typo": ({"DENIAL_MOD": "http"}, ["wsreject.W001"]),
    "W001-two-typos": ({"FALLBAK": "close", "allowed_origins": []}, ["wsreject.W001", "wsreject.W001"]),
    "E002-close": ({"DENIAL_MODE": "close"}, ["wsreject.E002"]),
    "E002-upper": ({"DENIAL_MODE": "HTTP"}, ["wsreject.E002"]),
    "E003-http": ({"FALLBACK": "http"}, ["wsreject.E003"]),
    "E003-None": ({"FALLBACK": None}, ["wsreject.E003"]),
    "E004-string": ({"ALLOWED_ORIGINS": "https://app.example.com"}, ["wsreject.E004"]),
    "E004-set": ({"ALLOWED_ORIGINS": {"https://app.example.com"}}, ["wsreject.E004"]),
    "E004-no-scheme": ({"ALLOWED_ORIGINS": ["app.example.com"]}, ["wsreject.E004"]),
    "E004-path": ({"ALLOWED_ORIGINS": ["https://app.example.com/"+"chat"]}, ["wsreject.E004"]),
    "E004-bad-scheme": ({"ALLOWED_ORIGINS": ["ftp://app.example.com"]}, ["wsreject.E004"]),
    "E004-int-entry": ({"ALLOWED_ORIGINS": [443]}, ["wsreject.E004"]),
    "E004-one-per-bad-entry": ({"ALLOWED_ORIGINS": ["*", "nope", "https://ok.example", "also nope"]}, ["wsreject.E004", "wsreject.E004"]),
    "E005-missing-module": ({"AUTHENTICATORS": ["no_such_module.Authenticator"]}, ["wsreject.E005"]),
    "E005-missing-attribute": ({"AUTHENTICATORS": ["wsreject.authentication.NoSuchAuthenticator"]}, ["wsreject.E005"]),
    "E005-not-dotted": ({"AUTHENTICATORS": ["Authenticator"]}, ["wsreject.E005"]),
    "E005-None": ({"AUTHENTICATORS": None}, ["wsreject.E005"]),
    "E005-a-string": ({"AUTHENTICATORS": "wsreject.authentication.SessionAuthenticator"}, ["wsreject.E005"]),
    "E005-not-an-authenticator": ({"AUTHENTICATORS": ["wsreject.permissions.IsStaff"]}, ["wsreject.E005"]),
    "E005-bad-kwargs": ({"AUTHENTICATORS": [("wsreject.authentication.drf.DRFAuthenticator", {"nope": 1})]}, ["wsreject.E005"]),
    "E005-drf-class-directly": ({"AUTHENTICATORS": ["rest_framework.authentication.TokenAuthentication"]}, ["wsreject.E005"]),
    "E005-one-per-bad-entry": ({"AUTHENTICATORS": ["x.Y", "wsreject.authentication.SessionAuthenticator", "z.W"]}, ["wsreject.E005", "wsreject.E005"]),
    "E007-removed-key": ({"TOKEN_AUTHENTICATOR": "wsreject.tokens.authenticate"}, ["wsreject.E007"]),
    "E008-handler-missing": ({"EXCEPTION_HANDLER": "no.such.handler"}, ["wsreject.E008"]),
    "E008-handler-not-callable": ({"EXCEPTION_HANDLER": "wsreject.denial.INTERNAL_ERROR"}, ["wsreject.E008"]),
    "E009-log-rate": ({"LOG_RATE": -1}, ["wsreject.E009"]),
    "E015-num-proxies": ({"NUM_PROXIES": "1"}, ["wsreject.E015"]),
    "E006-zero": ({"DECISION_TIMEOUT": 0}, ["wsreject.E006"]),
    "E006-negative": ({"DECISION_TIMEOUT": -1}, ["wsreject.E006"]),
    "E006-string": ({"DECISION_TIMEOUT": "4"}, ["wsreject.E006"]),
    "E006-bool": ({"DECISION_TIMEOUT": True}, ["wsreject.E006"]),
    "E006-ok-int": ({"DECISION_TIMEOUT": 10}, []),
    "E006-ok-float": ({"DECISION_TIMEOUT": 0.25}, []),
    "several-at-once": (
        {"DENIAL_MODE": "x", "FALLBACK": "y", "EXTRA": 1, "DECISION_TIMEOUT": 0},
        ["wsreject.E002", "wsreject.E003", "wsreject.E006", "wsreject.W001"],
    ),
}


@pytest.mark.parametrize("value,expected", SETTINGS_CASES.values(), ids=SETTINGS_CASES.keys())
def test_check_settings(settings, value, expected):
    settings.WSREJECT = value
    assert ids_of(check_settings()) == expected


def test_check_settings_without_the_setting(settings):
    del settings.WSREJECT
    assert check_settings() == []


def test_levels(settings):
    settings.WSREJECT = {"DENIAL_MOD": "http", "FALLBACK": "nope"}
    levels = {message.id: message.level for message in check_settings()}
    assert levels == {"wsreject.W001": checks.WARNING, "wsreject.E003": checks.ERROR}


def test_settings_checks_are_registered(settings):
    settings.WSREJECT = {"DENIAL_MODE": "close"}
    assert "wsreject.E002" in [message.id for message in checks.run_checks()]


# --- the ASGI stack ---------------------------------------------------------------------------------

STACK_CASES = {
    "demo": ("project.asgi.application", []),
    "clean-test-stack": ("tests.core.asgi_apps.clean_application", []),
    "origin-outside-denial": ("tests.core.asgi_apps.origin_outside_denial", ["wsreject.E010"]),
    "no-denial-at-all": ("tests.core.asgi_apps.no_denial_at_all", ["wsreject.E010", "wsreject.E010"]),
    "permission-without-credentials": ("tests.core.asgi_apps.permission_without_credentials", ["wsreject.W011"]),
    "permission-with-channels-auth": ("tests.core.asgi_apps.permission_with_channels_auth", []),
    "unimportable": ("tests.core.no_such_module.application", []),
}


@pytest.mark.parametrize("asgi_application,expected", STACK_CASES.values(), ids=STACK_CASES.keys())
def test_check_asgi_stack(settings, asgi_application, expected):
    settings.ASGI_APPLICATION = asgi_application
    assert ids_of(check_asgi_stack()) == expected


def test_e010_names_the_middleware_and_the_application(settings):
    settings.ASGI_APPLICATION = "tests.core.asgi_apps.origin_outside_denial"
    (error,) = check_asgi_stack()
    assert "OriginMiddleware" in error.msg and "tests.core.asgi_apps.origin_outside_denial" in error.msg
    assert error.level == checks.ERROR


def test_no_asgi_application_no_stack_check(settings):
    del settings.ASGI_APPLICATION
    assert check_asgi_stack() == []


def test_stack_check_is_registered(settings):
    settings.ASGI_APPLICATION = "tests.core.asgi_apps.origin_outside_denial"
    assert "wsreject.E010" in [message.id for message in checks.run_checks()]


# --- app order for Daphne -------------------------------------------------------------------------


@pytest.mark.parametrize(
    "apps,expected",
    [
        (["wsreject", "daphne", "django.contrib.staticfiles"], []),
        (["daphne", "wsreject"], ["wsreject.W010"]),
        (["django.contrib.auth", "daphne", "channels", "wsreject"], ["wsreject.W010"]),
        (["daphne", "channels"], []),
        (["wsreject", "channels"], []),
    ],
    ids=["wsreject-first", "daphne-first", "daphne-earlier", "no-wsreject", "no-daphne"],
)
def test_daphne_order(apps, expected):
    assert ids_of(daphne_order_warnings(apps)) == expected


def test_daphne_order_of_the_demo_is_fine():
    assert check_daphne_order(None) == []


# --- the demo project as a whole ---------------------------------------------------------------------


def test_demo_project_is_clean(settings):
    # The demo runs with DJANGO_DEBUG=1 by default; pytest-django forces DEBUG=False, under which
    # the process-local cache warning (wsreject.W020) rightly fires for the LocMemCache default.
    settings.DEBUG = True
    out, err = io.StringIO(), io.StringIO()
    call_command("check", stdout=out, stderr=err)
    assert "System check identified no issues" in out.getvalue()
    assert "wsreject." not in out.getvalue() + err.getvalue()


def test_demo_project_without_debug_only_warns_about_its_local_cache(settings):
    settings.DEBUG = False
    ids = [m.id for m in checks.run_checks() if m.id and m.id.startswith("wsreject.")]
    assert ids == ["wsreject.W020"]
