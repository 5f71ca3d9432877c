"""The access-management side of wsreject: what admins change at runtime, and the caches behind it.

* :mod:`~wsreject.access.versions` — versioned keys in Django's cache, the
  staleness bound, and the bumps that retire cached entries;
* :mod:`~wsreject.access.users`, :mod:`~wsreject.access.permsets` — users and
  their permission sets and groups, cached;
* :mod:`~wsreject.access.invalidation` — the model signals that bump versions;
* :mod:`~wsreject.access.patterns`, :mod:`~wsreject.access.endpoints` — rule
  patterns, and the routing's endpoints as Channels resolves them;
* :mod:`~wsreject.access.rules`, :mod:`~wsreject.access.enforcement` — access
  rules and the middleware that enforces them on the routed endpoint;
* :mod:`~wsreject.access.tokens`, :mod:`~wsreject.access.tickets` — wsreject's
  bearer tokens and single-use browser tickets, with their authenticators;
* :mod:`~wsreject.access.admin`, :mod:`~wsreject.access.forms`,
  :mod:`~wsreject.access.views`, :mod:`~wsreject.access.declared_perms`,
  :mod:`~wsreject.access.denial_log`, :mod:`~wsreject.access.checks`.

The handshake core (``wsreject.denial``, ``transport``, ``middleware``,
``authentication``, ``permissions``, ``consumers`` ...) never needs this package
to be read: it calls in for cached permission sets and the access rules only.
"""
