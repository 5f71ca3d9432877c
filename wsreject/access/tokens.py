"""Deprecated: moved to :mod:`wsreject.authentication.tokens` (this alias goes in the next release)."""

from __future__ import annotations

from ._moved import forward

__all__: list[str] = []

__getattr__ = forward("wsreject.access.tokens", "wsreject.authentication.tokens")
