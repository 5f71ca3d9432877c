"""Deciding at the edge: the forward-auth endpoint nginx, Caddy, Traefik and Envoy ask.

A proxy in front describes the handshake it holds (``X-Original-URI`` from nginx,
``X-Forwarded-Uri``/``-Method``/``-Host``/``-Proto`` from Traefik and Caddy) and
passes the client's own headers; :mod:`wsreject.edge.views` turns that into a
WebSocket scope (:mod:`wsreject.edge.described`), runs
:func:`wsreject.decision.decide` on it, counting as a live handshake, and answers
2xx with identity headers, or the exact denial. :mod:`wsreject.edge.configs`
writes the nginx and Caddy configurations (``manage.py wsreject_edge_config``).
See ``docs/edge.md``.
"""

__all__: list[str] = []
