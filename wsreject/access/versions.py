"""Deprecated: moved to :mod:`wsreject.cache.versions` (this alias goes in the next release)."""

from __future__ import annotations

from ._moved import forward

__all__: list[str] = []

__getattr__ = forward("wsreject.access.versions", "wsreject.cache.versions")
