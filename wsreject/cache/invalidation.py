"""The model signals that retire cached entries (see :mod:`wsreject.cache.versions`).

* a user saved (``is_active``, ``is_superuser`` ...) or deleted, their groups or
  permissions changed (from either side of the relation), one of their tokens
  issued or revoked → that user's version;
* what a group grants changed, a group or a permission saved or deleted → the
  permissions' version, and the rules' (rules name groups and permissions);
* an access rule, or its groups or permissions, changed → the rules' version.

Before a group or a permission is deleted, the rules naming it remember its
name: the rule then admits nobody, and the admin says which is missing.
``QuerySet.update()`` and raw SQL send no signals: call the ``bump_*``
functions after them.
"""

from __future__ import annotations

from typing import Any

from django.apps import apps
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group, Permission
from django.db.models.signals import m2m_changed, post_delete, post_save, pre_delete

from ..models import AccessRule, AccessRuleGroup, AccessRulePermission, AccessToken
from .users import forget_owner, session_owner_key
from .versions import bump_permissions, bump_rules, bump_user

__all__ = ["connect_receivers"]

_CHANGES = ("post_add", "post_remove", "post_clear")


def _user_saved(sender: Any, instance: Any, update_fields: Any = None, using: str | None = None, **kwargs: Any) -> None:
    if update_fields is not None and set(update_fields) <= {"last_login"}:
        return  # every login saves last_login: nothing that decides access
    bump_user(instance.pk, using)


def _user_deleted(sender: Any, instance: Any, using: str | None = None, **kwargs: Any) -> None:
    bump_user(instance.pk, using)


def _user_relation_changed(
    sender: Any, instance: Any, action: str, reverse: bool, pk_set: Any, using: str | None = None, **kwargs: Any
) -> None:
    """``user.groups`` / ``user.user_permissions`` changed, from either side."""
    if action not in _CHANGES:
        return
    if not reverse:
        bump_user(instance.pk, using)
    elif pk_set is None:  # group.user_set.clear(): the users are not known here
        bump_permissions(using)
    else:
        for pk in pk_set:
            bump_user(pk, using)


def _group_permissions_changed(sender: Any, action: str, using: str | None = None, **kwargs: Any) -> None:
    if action in _CHANGES:
        bump_permissions(using)


def _auth_object_changed(sender: Any, using: str | None = None, **kwargs: Any) -> None:
    """A group or a permission was saved or deleted: sets and rules may name it."""
    bump_permissions(using)
    bump_rules(using)


def _group_deleting(sender: Any, instance: Group, using: str | None = None, **kwargs: Any) -> None:
    AccessRuleGroup.objects.using(using).filter(group=instance).update(group_name=instance.name)


def _permission_deleting(sender: Any, instance: Permission, using: str | None = None, **kwargs: Any) -> None:
    label = f"{instance.content_type.app_label}.{instance.codename}"
    AccessRulePermission.objects.using(using).filter(permission=instance).update(permission_label=label)


def _rule_changed(sender: Any, using: str | None = None, action: str | None = None, **kwargs: Any) -> None:
    if action is None or action in _CHANGES:
        bump_rules(using)


def _token_changed(sender: Any, instance: AccessToken, using: str | None = None, **kwargs: Any) -> None:
    bump_user(instance.user_id, using)


def _session_deleted(sender: Any, instance: Any, **kwargs: Any) -> None:
    """Logout, an expired session cleared: its cached owner goes at once (see SessionAuthenticator)."""
    forget_owner(session_owner_key(instance.session_key))


def connect_receivers() -> None:
    """Connect the receivers; called by ``WSRejectConfig.ready()``."""
    user_model = get_user_model()
    uid = "wsreject.cache.invalidation."
    post_save.connect(_user_saved, sender=user_model, dispatch_uid=uid + "user_saved")
    post_delete.connect(_user_deleted, sender=user_model, dispatch_uid=uid + "user_deleted")
    for relation in ("groups", "user_permissions"):
        descriptor = getattr(user_model, relation, None)
        if descriptor is not None and hasattr(descriptor, "through"):
            m2m_changed.connect(_user_relation_changed, sender=descriptor.through, dispatch_uid=uid + relation)
    m2m_changed.connect(_group_permissions_changed, sender=Group.permissions.through, dispatch_uid=uid + "group_perms")
    for model in (Group, Permission):
        post_save.connect(_auth_object_changed, sender=model, dispatch_uid=f"{uid}{model.__name__}.saved")
        post_delete.connect(_auth_object_changed, sender=model, dispatch_uid=f"{uid}{model.__name__}.deleted")
    pre_delete.connect(_group_deleting, sender=Group, dispatch_uid=uid + "group_deleting")
    pre_delete.connect(_permission_deleting, sender=Permission, dispatch_uid=uid + "permission_deleting")
    for rule_model in (AccessRule, AccessRuleGroup, AccessRulePermission):
        post_save.connect(_rule_changed, sender=rule_model, dispatch_uid=f"{uid}{rule_model.__name__}.saved")
        post_delete.connect(_rule_changed, sender=rule_model, dispatch_uid=f"{uid}{rule_model.__name__}.deleted")
    for through in (AccessRule.groups.through, AccessRule.permissions.through):
        m2m_changed.connect(_rule_changed, sender=through, dispatch_uid=f"{uid}{through.__name__}.m2m")
    if apps.is_installed("django.contrib.sessions"):
        from django.contrib.sessions.models import Session

        post_delete.connect(_session_deleted, sender=Session, dispatch_uid=uid + "session_deleted")
    post_save.connect(_token_changed, sender=AccessToken, dispatch_uid=uid + "token_saved")
    post_delete.connect(_token_changed, sender=AccessToken, dispatch_uid=uid + "token_deleted")
