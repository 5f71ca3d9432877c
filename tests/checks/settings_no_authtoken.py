"""The demo's settings with the README's AUTHENTICATORS (DRF's tokens) but without
``rest_framework.authtoken`` in INSTALLED_APPS: the misconfiguration of issue 18, item 2."""

from project.settings import *  # noqa: F403
from project.settings import INSTALLED_APPS

INSTALLED_APPS = [app for app in INSTALLED_APPS if app != "rest_framework.authtoken"]
WSREJECT = {
    "AUTHENTICATORS": [
        "wsreject.authentication.tickets.TicketAuthenticator",
        "wsreject.authentication.drf.DRFTokenAuthenticator",
        "wsreject.authentication.SessionAuthenticator",
    ],
}
