"""System check: ``manage.py runserver`` must be wsreject's, not Daphne's."""

from __future__ import annotations

from typing import Any

from django.core import checks

__all__ = ["check_daphne_order", "daphne_order_warnings"]


def daphne_order_warnings(app_names: list[str]) -> list[checks.Warning]:
    """``wsreject.W010`` when ``daphne`` is installed before ``wsreject``."""
    if "wsreject" not in app_names or "daphne" not in app_names:
        return []
    if app_names.index("daphne") > app_names.index("wsreject"):
        return []
    return [
        checks.Warning(
            "'daphne' is listed before 'wsreject' in INSTALLED_APPS, so 'manage.py "
            "runserver' is Daphne's own and answers denied WebSocket handshakes with a "
            "bare 403.",
            hint=(
                "Move 'wsreject' above 'daphne' in INSTALLED_APPS (keep 'daphne' above "
                "'django.contrib.staticfiles'): Django uses the runserver command of the "
                "first app that provides one."
            ),
            id="wsreject.W010",
        )
    ]


def check_daphne_order(app_configs: Any, **kwargs: Any) -> list[checks.Warning]:
    """Django check function. ``app_configs`` is ignored: the order that matters is
    that of the whole ``INSTALLED_APPS``."""
    from django.apps import apps

    return daphne_order_warnings([config.name for config in apps.get_app_configs()])
