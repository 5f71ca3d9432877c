"""Signals sent by wsreject."""

from django.dispatch import Signal

#: Sent once for every denied handshake, after the denial has been sent, with
#: keyword arguments ``scope``, ``response`` (a :class:`~wsreject.denial.DenialResponse`)
#: and ``denial_mode`` (how it left: ``"http"``, ``"close"`` or ``"close_code"``).
#: Receivers run on the event loop (or in a sync consumer's thread): keep them
#: fast and free of database queries. Errors in a receiver are logged, never
#: raised into the handshake.
connection_denied = Signal()
