"""Users by primary key, cached under their version (see :mod:`wsreject.access.versions`)."""

from __future__ import annotations

import copy
from typing import Any

from django.contrib.auth import get_user_model

from .versions import stamped, user_version_key


def cached_user(pk: Any) -> Any:
    """The user with primary key ``pk`` (None if there is none), from the cache when current.

    Saving or deleting the user, changing their groups or permissions and
    revoking one of their tokens retire the entry. On the event loop only a
    process-local cache is read (:class:`~wsreject.offload.NeedsIO` on a miss).
    """
    if pk is None or isinstance(pk, bool) or not isinstance(pk, (int, str)):
        return None
    key = str(pk)
    model = get_user_model()
    try:
        model._meta.pk.to_python(key)
    except Exception:  # not a valid primary key for this model
        return None
    user = stamped(f"wsreject:user:{key}", [user_version_key(key)], lambda: model._default_manager.filter(pk=key).first())
    return copy.copy(user)  # each handshake its own instance: a consumer may change it
