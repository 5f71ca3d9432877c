"""Daphne integration: serve ASGI WebSocket denial responses from Daphne.

* :mod:`wsreject.daphne.protocol` -- :class:`DenialWebSocketProtocol`, the WebSocket
  protocol subclass that writes ``websocket.http.response.*`` as HTTP responses;
* :mod:`wsreject.daphne.server` -- :class:`DenialServer`, the Daphne server using it;
* :mod:`wsreject.daphne.cli` -- ``python -m wsreject.daphne`` / ``wsreject-daphne``,
  the ``daphne`` command line with that server;
* ``manage.py runserver`` (``wsreject.management.commands.runserver``) when
  ``"wsreject"`` is listed before ``"daphne"`` in ``INSTALLED_APPS``.

Nothing here is imported eagerly: importing the server installs Twisted's asyncio
reactor, as importing Daphne's does.
"""

__all__: list[str] = []
