"""wsreject: deny Django Channels WebSocket handshakes with real HTTP responses."""

from __future__ import annotations

from typing import Any

from .denial import DenialResponse, DenyHandshake, DenyWithResponse

__all__ = ["DenialResponse", "DenyHandshake", "DenyWithResponse", "decide"]
__version__ = "0.2.0"


def __getattr__(name: str) -> Any:
    """``wsreject.decide`` (:func:`wsreject.decision.decide`), imported on first use: it needs Django set up."""
    if name == "decide":
        from .decision import decide

        return decide
    raise AttributeError(f"module 'wsreject' has no attribute {name!r}")
