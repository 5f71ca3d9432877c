"""The demo's settings with ``ASGI_APPLICATION`` wrapped in Channels' origin validator."""

from project.settings import *  # noqa: F403

ASGI_APPLICATION = "tests.auth.outer_asgi.application"
