"""pytest plugin (entry point ``pytest11``): every test starts with none of wsreject's per-process state.

Autouse, so a project's tests need no wsreject-specific fixture; see :mod:`wsreject.isolation`.
Does nothing until Django is set up (a project without Django settings is not touched).
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

__all__: list[str] = []


@pytest.fixture(autouse=True)
def _wsreject_isolation() -> Iterator[None]:
    from django.apps import apps

    if apps.ready:
        from wsreject.isolation import reset_process_state

        reset_process_state()
    yield
