"""Create the permissions that WebSocket consumers require, so the admin can grant them.

Django creates the permissions of ``Model.Meta.permissions``; a consumer may
also require one that no model declares (``permission_required =
"chat.moderate"``). After ``migrate``, every permission named by a consumer in
the routing (``permission_required``, ``object_permission_required`` and
``HasPermissions`` among its ``permission_classes``) that does not exist yet is
created for its installed app, named after the consumer's
``permission_names = {"chat.moderate": "Can moderate rooms"}`` or else after
the codename ("Can moderate"). It is attached to the app's first model by name
or, for an app without models, to a content type ``<app_label>.websocket``
(which ``remove_stale_contenttypes`` would list: keep it). A permission whose
app is not installed is reported by check ``wsreject.W021`` instead.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator
from typing import Any

from django.apps import AppConfig
from django.apps import apps as global_apps
from django.apps.registry import Apps
from django.contrib.contenttypes.management import create_contenttypes
from django.db import DEFAULT_DB_ALIAS

from ..endpoints import Endpoint, project_endpoints
from ..permissions import HasPermissions

__all__ = [
    "NAME_MAX_LENGTH",
    "consumer_permissions",
    "create_declared_permissions",
    "declared_permissions",
    "default_name",
    "perm_names",
]

logger = logging.getLogger("wsreject")

NAME_MAX_LENGTH = 255


def perm_names(value: Any) -> tuple[str, ...]:
    if not value:
        return ()
    return (value,) if isinstance(value, str) else tuple(value)


def _class_permissions(permission: Any) -> Iterator[str]:
    """Permission names inside a permission class or a composite of them."""
    if isinstance(permission, HasPermissions):
        yield from permission.perms
    for operand in getattr(permission, "operands", ()) or (getattr(permission, "operand", None),):
        if operand is not None:
            yield from _class_permissions(operand)


def consumer_permissions(consumer_class: Any) -> Iterator[str]:
    """Every permission name a consumer class requires, as declared on the class."""
    yield from perm_names(getattr(consumer_class, "permission_required", None))
    yield from perm_names(getattr(consumer_class, "object_permission_required", None))
    for permission in getattr(consumer_class, "permission_classes", None) or ():
        yield from _class_permissions(permission)


def default_name(perm: str) -> str:
    return ("Can " + perm.partition(".")[2].replace("_", " "))[:NAME_MAX_LENGTH]


def declared_permissions(endpoints: Iterable[Endpoint] | None = None) -> dict[str, str]:
    """``{"app_label.codename": readable name}`` for every permission the routing requires."""
    if endpoints is None:
        endpoints = project_endpoints()
    declared: dict[str, str] = {}
    for endpoint in endpoints:
        consumer_class = endpoint.consumer_class
        names = getattr(consumer_class, "permission_names", None) or {}
        for perm in consumer_permissions(consumer_class):
            if "." in perm and (perm not in declared or perm in names):
                declared[perm] = str(names.get(perm) or default_name(perm))[:NAME_MAX_LENGTH]
    return declared


def _model_codenames(app_config: AppConfig) -> set[str]:
    """Codenames Django itself creates for the app's models (defaults and Meta.permissions)."""
    codenames: set[str] = set()
    for model in app_config.get_models():
        opts = model._meta
        codenames.update(f"{action}_{opts.model_name}" for action in opts.default_permissions)
        codenames.update(codename for codename, _ in opts.permissions)
    return codenames


def create_declared_permissions(
    app_config: AppConfig | None = None,
    verbosity: int = 1,
    using: str = DEFAULT_DB_ALIAS,
    apps: Apps = global_apps,
    **kwargs: Any,
) -> None:
    """``post_migrate`` receiver: create the declared permissions that are missing."""
    if not all(global_apps.is_installed(app) for app in ("django.contrib.auth", "django.contrib.contenttypes")):
        return
    try:
        permission_model = apps.get_model("auth", "Permission")
        content_type_model = apps.get_model("contenttypes", "ContentType")
    except LookupError:  # auth or contenttypes not migrated (yet)
        return
    try:
        declared = declared_permissions()
    except Exception:  # the ASGI application's own import errors are reported elsewhere
        logger.warning("Declared WebSocket permissions not created: ASGI_APPLICATION does not import", exc_info=True)
        return
    for perm, name in sorted(declared.items()):
        app_label, _, codename = perm.partition(".")
        try:
            target = global_apps.get_app_config(app_label)
        except LookupError:
            continue  # not installed: check wsreject.W021
        if codename in _model_codenames(target):
            continue  # Django's create_permissions owns it
        if permission_model.objects.using(using).filter(content_type__app_label=app_label, codename=codename).exists():
            continue
        models = sorted(target.get_models(), key=lambda model: model._meta.model_name or "")
        if models:
            create_contenttypes(target, verbosity=0, using=using, apps=global_apps)
            model_name = models[0]._meta.model_name
        else:
            model_name = "websocket"
        content_type, _ = content_type_model.objects.using(using).get_or_create(app_label=app_label, model=model_name)
        permission_model.objects.using(using).create(content_type=content_type, codename=codename, name=name)
        if verbosity >= 2:
            logger.info("Adding permission %r (%s) required by a WebSocket consumer", perm, name)
