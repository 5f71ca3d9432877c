"""Settings that name objects resolve themselves (``IMPORT_STRINGS``), and the paths that moved
keep working for one release with a DeprecationWarning."""

from __future__ import annotations

import importlib
import warnings

import pytest
from django.core.exceptions import ImproperlyConfigured
from django.utils.module_loading import import_string

from wsreject.authentication import SessionAuthenticator
from wsreject.authentication.tickets import TicketAuthenticator
from wsreject.authentication.tokens import AccessTokenAuthenticator, issue_token
from wsreject.cache.versions import bump_user
from wsreject.conf import IMPORT_STRINGS, wsreject_settings
from wsreject.denial import default_exception_handler


def test_import_string_settings_read_as_objects_built_once(settings):
    settings.WSREJECT = {"AUTHENTICATORS": ["wsreject.authentication.SessionAuthenticator"]}
    first = wsreject_settings.AUTHENTICATORS
    assert [type(a) for a in first] == [SessionAuthenticator]
    assert wsreject_settings.AUTHENTICATORS is first, "built once until WSREJECT changes"
    assert wsreject_settings.EXCEPTION_HANDLER is default_exception_handler
    assert set(IMPORT_STRINGS) == {"AUTHENTICATORS", "EXCEPTION_HANDLER"}
    assert wsreject_settings.raw("AUTHENTICATORS") == ["wsreject.authentication.SessionAuthenticator"]
    settings.WSREJECT = {"AUTHENTICATORS": []}
    assert wsreject_settings.AUTHENTICATORS == ()


@pytest.mark.parametrize(
    ("key", "value", "says"),
    [
        ("AUTHENTICATORS", ["no.such.Authenticator"], "No module named 'no'"),
        ("AUTHENTICATORS", "wsreject.authentication.SessionAuthenticator", "it must be a list"),
        ("EXCEPTION_HANDLER", "wsreject.denial.INTERNAL_ERROR", "is not callable"),
    ],
)
def test_a_setting_that_cannot_be_resolved_names_itself(settings, key, value, says):
    settings.WSREJECT = {key: value}
    with pytest.raises(ImproperlyConfigured) as raised:
        getattr(wsreject_settings, key)
    assert f"WSREJECT[{key!r}]" in str(raised.value)
    assert says in str(raised.value)


@pytest.mark.parametrize(
    ("old", "new"),
    [
        ("wsreject.access.tokens.AccessTokenAuthenticator", AccessTokenAuthenticator),
        ("wsreject.access.tokens.issue_token", issue_token),
        ("wsreject.access.tickets.TicketAuthenticator", TicketAuthenticator),
        ("wsreject.access.versions.bump_user", bump_user),
    ],
)
def test_moved_paths_forward_with_a_deprecation_warning(old, new):
    with pytest.warns(DeprecationWarning, match=r"moved to wsreject\.(authentication|cache)\."):
        assert import_string(old) is new


def test_old_authenticator_paths_in_settings_still_work(settings):
    settings.WSREJECT = {"AUTHENTICATORS": ["wsreject.access.tokens.AccessTokenAuthenticator"]}
    with pytest.warns(DeprecationWarning):
        assert [type(a) for a in wsreject_settings.AUTHENTICATORS] == [AccessTokenAuthenticator]


def test_a_moved_module_has_nothing_else():
    module = importlib.import_module("wsreject.access.tokens")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with pytest.raises(AttributeError, match="has no attribute 'nothing_here'"):
            module.nothing_here  # noqa: B018
