"""The caches behind a handshake, one layer under authentication and the decisions.

* :mod:`~wsreject.cache.versions` — versioned keys in Django's cache, the process's local copy,
  the staleness bound and the bumps that retire cached entries;
* :mod:`~wsreject.cache.reader` — the one versioned reader every cache goes through;
* :mod:`~wsreject.cache.users`, :mod:`~wsreject.cache.permsets` — users, credentials' owners,
  permission sets and groups, cached;
* :mod:`~wsreject.cache.invalidation` — the model signals that bump versions;
* :mod:`~wsreject.cache.bus` — the Redis pub/sub bus that pushes every bump to every process.

Nothing here imports authentication, the decision pipeline or the admin side.
"""

__all__: list[str] = []
