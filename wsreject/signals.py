"""Signals sent by wsreject."""

from django.dispatch import Signal

__all__ = ["connection_denied", "connection_revoked"]

#: Sent once for every denied handshake, after the denial has been sent, with
#: keyword arguments ``scope``, ``response`` (a :class:`~wsreject.denial.DenialResponse`)
#: and ``denial_mode`` (how it left: ``"http"``, ``"close"`` or ``"close_code"``).
#: Receivers run on the event loop (or in a sync consumer's thread): keep them
#: fast and free of database queries. Errors in a receiver are logged, never
#: raised into the handshake.
connection_denied = Signal()

#: Sent once for every open connection wsreject closed because its access was revoked (a
#: re-check refused it, or its credential expired), after the close was sent, with keyword
#: arguments ``scope``, ``user`` (who it was, or None), ``denial`` (the
#: :class:`~wsreject.denial.DenyHandshake` a new handshake would get), ``code`` (4000 +
#: status) and ``reason``. Receivers run on the event loop; errors are logged, never raised.
connection_revoked = Signal()
