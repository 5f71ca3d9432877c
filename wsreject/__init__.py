"""wsreject: deny Django Channels WebSocket handshakes with real HTTP responses."""

from .denial import DenialResponse, DenyHandshake, DenyWithResponse

__all__ = ["DenialResponse", "DenyHandshake", "DenyWithResponse"]
__version__ = "0.2.0"
