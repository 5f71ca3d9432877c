"""Forget wsreject's per-process state, so that one test's data cannot decide the next one's handshakes.

wsreject keeps copies in each process (the versions and entries of :mod:`wsreject.cache.versions`,
the compiled access rules, the log's rate window, the recent denials). They follow the database
through model signals, but a test database is emptied without any: a ``TRUNCATE`` (the flush after
a transactional test) or a rollback. So the state is reset

* when the test database is flushed (``post_migrate``, which Django's ``flush`` sends: the
  teardown of every ``TransactionTestCase`` and of pytest-django's ``transactional_db``);
* before every test under pytest (:mod:`wsreject.pytest_plugin`, loaded by the ``pytest11`` entry
  point: no fixture to write);
* when ``CACHES`` or ``WSREJECT`` change (``override_settings``).

Django's ``caches[alias].clear()`` sends no signal, and is no longer needed for wsreject's sake.
"""

from __future__ import annotations

import contextlib
from typing import Any

__all__ = ["connect_isolation", "reset_process_state"]


def reset_process_state() -> None:
    """Forget every per-process copy wsreject keeps and retire what it cached in Django's caches.

    Cached entries are retired by new versions (every version key this process has used, the
    permissions' and the rules'), not by clearing the cache: a project's own entries stay. The
    throttle counters go when ``THROTTLE_CACHE`` is a process-local cache of their own (neither
    ``CACHE`` nor ``"default"``).
    """
    from . import rules
    from .access.denial_log import denial_log
    from .cache import bus
    from .cache.versions import (
        PERMS_VERSION_KEY,
        RULES_VERSION_KEY,
        get_cache,
        is_process_local,
        local,
        new_version,
        version_timeout,
    )
    from .conf import wsreject_settings
    from .reporting import limiter

    version_keys = {key for key in list(local.versions) if key.startswith("wsreject:v:")} | {PERMS_VERSION_KEY, RULES_VERSION_KEY}
    local.clear()
    rules.forget_compiled()
    limiter.reset()
    denial_log.clear()
    with contextlib.suppress(Exception):  # a cache that is down has nothing to retire
        cache = get_cache()
        cache.set_many({key: new_version() for key in version_keys}, timeout=version_timeout())
        bus.publish(cache, sorted(version_keys))
    with contextlib.suppress(Exception):  # settings a system check reports, a cache that is down
        throttle_alias = wsreject_settings.THROTTLE_CACHE
        if throttle_alias not in (wsreject_settings.CACHE, "default"):
            throttles = get_cache(throttle_alias)
            if is_process_local(throttles):
                throttles.clear()


def _database_flushed(sender: Any, **kwargs: Any) -> None:
    reset_process_state()


def connect_isolation() -> None:
    """Connect the reset to ``post_migrate``; called by ``WSRejectConfig.ready()``."""
    from django.db.models.signals import post_migrate

    post_migrate.connect(_database_flushed, dispatch_uid="wsreject.isolation.flushed")
