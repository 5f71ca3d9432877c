"""Demo settings for the runserver tests: the raw test apps, an in-memory database and
the app order taken from ``WSREJECT_TEST_DAPHNE_FIRST`` ("1": daphne before wsreject)."""

import os

from project.settings import *  # noqa: F403

ASGI_APPLICATION = "tests.daphne.apps.application"
DATABASES = {"default": {"ENGINE": "django.db.backends.sqlite3", "NAME": ":memory:"}}

if os.environ.get("WSREJECT_TEST_DAPHNE_FIRST") == "1":
    INSTALLED_APPS = ["daphne", *(app for app in INSTALLED_APPS if app != "daphne")]  # noqa: F405
