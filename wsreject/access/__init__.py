"""The admin-managed side of wsreject: what admins see and change at runtime.

* :mod:`~wsreject.access.admin`, :mod:`~wsreject.access.forms` — the admin pages for access
  rules and tokens; :mod:`~wsreject.access.holders`, :mod:`~wsreject.access.explain_admin`,
  :mod:`~wsreject.access.denial_chart` — who can connect, why a user is refused, recent denials;
* :mod:`~wsreject.access.denial_log` — the recent denials kept for the admin;
* :mod:`~wsreject.access.declared_perms`, :mod:`~wsreject.access.checks` — permissions the
  consumers declare, and the system checks of this side;
* :mod:`~wsreject.access.views`, :mod:`~wsreject.access.drf` — the HTTP views that issue tickets.

This is the top layer under the edge and the management commands: the handshake core never
imports it (``tests/layout``). The caches live in :mod:`wsreject.cache`, the authenticators in
:mod:`wsreject.authentication`, the access rules in :mod:`wsreject.rules` and
:mod:`wsreject.enforcement`. ``wsreject.access.tokens``, ``.tickets`` and ``.versions`` remain
for one release as deprecated aliases.
"""

__all__: list[str] = []
