"""Django's admin autodiscovery imports ``<app>.admin``: the admin lives in :mod:`wsreject.access.admin`."""

from .access import admin as access_admin  # noqa: F401  (registers the ModelAdmins)

__all__: list[str] = []
