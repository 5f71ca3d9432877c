"""The fuzz tests' additions to ``seed_demo``'s data, made in the demo's own database.

In process it is called directly; for a real server, through the demo's ``manage.py shell``
(``python -c`` is not enough: the server's database is only configured by its settings)::

    python manage.py shell -c "from tests.fuzz.demo_setup import main; main()"

It creates group ``ops`` (alice), the access rules of :data:`tests.fuzz.model.RULES`, a
session for alice and carol, and returns every secret the model needs.
"""

from __future__ import annotations

import json
import os
import sys
from datetime import timedelta
from typing import Any

from .model import OPS_GROUP, RULES


def session_for(user: Any) -> str:
    from django.conf import settings
    from django.contrib.auth import BACKEND_SESSION_KEY, HASH_SESSION_KEY, SESSION_KEY
    from django.utils.module_loading import import_string

    store = import_string(f"{settings.SESSION_ENGINE}.SessionStore")()
    store[SESSION_KEY] = str(user.pk)
    store[BACKEND_SESSION_KEY] = "django.contrib.auth.backends.ModelBackend"
    store[HASH_SESSION_KEY] = user.get_session_auth_hash()
    store.create()
    return str(store.session_key)


def install(tokens: dict[str, str]) -> dict[str, Any]:
    """Add rules, the group, sessions; return the secrets (``tokens`` from ``seed_demo``)."""
    from django.conf import settings
    from django.contrib.auth import get_user_model
    from django.contrib.auth.models import Group
    from rest_framework.authtoken.models import Token
    from rest_framework_simplejwt.tokens import AccessToken

    from wsreject.models import AccessRule

    users = {user.username: user for user in get_user_model().objects.filter(username__in=("alice", "bob", "carol", "dave"))}
    ops, _ = Group.objects.get_or_create(name=OPS_GROUP)
    users["alice"].groups.add(ops)
    for spec in RULES:
        rule = AccessRule.objects.create(
            endpoint=spec.endpoint,
            enabled=spec.enabled,
            retry_after=spec.retry_after,
            disabled_detail=spec.disabled_detail,
            deny_status=spec.deny_status,
            deny_detail=spec.deny_detail,
        )
        if spec.ops_only:
            rule.groups.add(ops)
    jwt = {}
    for name, user in users.items():
        access = AccessToken.for_user(user)
        access.set_exp(lifetime=timedelta(hours=6))  # the demo's 5 minutes would expire mid-run
        jwt[name] = str(access)
    return {
        "tokens": tokens,
        "drf": {name: Token.objects.get(user=user).key for name, user in users.items()},
        "jwt": jwt,
        "sessions": {name: session_for(users[name]) for name in ("alice", "carol")},
        "session_cookie": settings.SESSION_COOKIE_NAME,
    }


def main() -> None:
    """``manage.py shell`` entry: tokens as JSON in ``WSREJECT_FUZZ_TOKENS``, secrets as JSON on stdout."""
    tokens = json.loads(os.environ["WSREJECT_FUZZ_TOKENS"])
    sys.stdout.write(json.dumps(install(tokens)))
