"""Fixtures for the admin tests: a superuser logged in through the real login form."""

from __future__ import annotations

import pytest
from asgiref.sync import async_to_sync
from django.contrib.auth import get_user_model
from django.test import Client

from tests.helpers import bearer
from wsreject.testing import HandshakeCommunicator

ADMIN_PASSWORD = "admin-password-for-tests"


@pytest.fixture
def fast_hasher(settings):
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture
def admin_browser(demo_tokens, fast_hasher) -> Client:
    """A test client logged in as a superuser through ``/admin/login/``."""
    get_user_model().objects.create_superuser("root", "root@example.com", ADMIN_PASSWORD)
    client = Client()
    response = client.post("/admin/login/?next=/admin/", {"username": "root", "password": ADMIN_PASSWORD})
    assert response.status_code == 302, response.content[:500]
    return client


def connect(path: str, token: str | None = None):
    """One handshake against the demo, in process: ``Accepted`` or ``Denied`` (then closed)."""
    from project.asgi import application

    async def run():
        communicator = HandshakeCommunicator(application, path, headers=bearer(token) if token else [])
        result = await communicator.handshake()
        await communicator.disconnect() if result.accepted else await communicator.wait(1)
        return result

    return async_to_sync(run)()
