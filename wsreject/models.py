"""Models of the access-management side: bearer tokens and access rules.

They live here, as ``wsreject.models``, where Django and the migrations look
for them; the code that uses them is in :mod:`wsreject.access`.
"""

from __future__ import annotations

from http import HTTPStatus
from typing import TYPE_CHECKING, Any

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import models
from django.utils.translation import gettext_lazy as _

from .patterns import parse_endpoint

if TYPE_CHECKING:
    from django.contrib.auth.models import Group, Permission

__all__ = [
    "MAX_RETRY_AFTER",
    "AccessRule",
    "AccessRuleGroup",
    "AccessRulePermission",
    "AccessToken",
    "validate_deny_status",
    "validate_endpoint",
]

#: Longest Retry-After an access rule may send (a day).
MAX_RETRY_AFTER = 86400


class AccessToken(models.Model):
    """A bearer token. The secret is shown once, when issued; the database keeps its SHA-256."""

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="wsreject_tokens")
    name = models.CharField(_("name"), max_length=100, blank=True)
    digest = models.CharField(_("SHA-256 of the token"), max_length=64, unique=True, editable=False)
    prefix = models.CharField(_("first characters"), max_length=8, editable=False)
    created = models.DateTimeField(_("created"), auto_now_add=True)
    expires = models.DateTimeField(_("expires"), null=True, blank=True)

    class Meta:
        verbose_name = _("WebSocket access token")
        verbose_name_plural = _("WebSocket access tokens")

    def __str__(self) -> str:
        return f"{self.prefix}… ({self.user})"


def validate_endpoint(value: str) -> None:
    """A path pattern or route name that :func:`wsreject.patterns.parse_endpoint` accepts."""
    try:
        parse_endpoint(value)
    except ValueError as exc:
        raise ValidationError(str(exc), code="invalid_endpoint") from None


def validate_deny_status(value: int) -> None:
    """A client or server error status that can stand alone as a handshake answer."""
    if value == 401:
        raise ValidationError(
            _("401 is sent automatically to clients without valid credentials; use 403 or 404."),
            params={"status": value},
            code="reserved_status",
        )
    if not 400 <= value <= 599:
        raise ValidationError(
            _("%(status)s is not an error status; use a status from 400 to 599, e.g. 403 or 404."),
            params={"status": value},
            code="not_an_error",
        )
    try:
        HTTPStatus(value)
    except ValueError:
        raise ValidationError(
            _("%(status)s is not a standard HTTP status; use e.g. 403, 404 or 503."),
            params={"status": value},
            code="unknown_status",
        ) from None


class AccessRule(models.Model):
    """Who may open WebSockets on an endpoint, changed at runtime in the admin.

    A rule only ever takes access away: the consumer's own checks still apply.
    A rule restricted to groups or permissions keeps naming them after they are
    deleted, and then admits nobody until an admin edits it (fail closed). See
    :mod:`wsreject.rules` for matching and precedence.
    """

    endpoint = models.CharField(
        _("endpoint"),
        max_length=200,
        unique=True,
        validators=[validate_endpoint],
        help_text=_(
            "A path pattern starting with “/”, in the syntax of path() in the routing "
            "(“/ws/rooms/&lt;slug:name&gt;/”); end it with “*” to match every path below "
            '(“/ws/rooms/*”). Or the name of a route (path(..., name="rooms")).'
        ),
    )
    enabled = models.BooleanField(_("enabled"), default=True, help_text=_("Unchecked: every handshake is refused with 503."))
    retry_after = models.PositiveIntegerField(
        _("retry after (seconds)"),
        default=120,
        help_text=_("Sent as Retry-After while the endpoint is disabled."),
    )
    disabled_detail = models.CharField(_("message while disabled"), max_length=200, default="Down for maintenance")
    groups: models.ManyToManyField[Group, AccessRuleGroup] = models.ManyToManyField(
        "auth.Group",
        through="AccessRuleGroup",
        blank=True,
        related_name="wsreject_access_rules",
        verbose_name=_("allowed groups"),
    )
    permissions: models.ManyToManyField[Permission, AccessRulePermission] = models.ManyToManyField(
        "auth.Permission",
        through="AccessRulePermission",
        blank=True,
        related_name="wsreject_access_rules",
        verbose_name=_("required permissions"),
    )
    deny_status = models.PositiveSmallIntegerField(
        _("status when refused"),
        default=403,
        validators=[validate_deny_status],
        help_text=_("For a signed-in user outside the groups or without a permission; 404 hides the endpoint."),
    )
    deny_detail = models.CharField(_("message when refused"), max_length=200, default="Forbidden")
    updated = models.DateTimeField(_("updated"), auto_now=True)

    class Meta:
        verbose_name = _("WebSocket access rule")
        verbose_name_plural = _("WebSocket access rules")
        ordering = ["endpoint"]
        constraints = [
            models.CheckConstraint(
                condition=models.Q(deny_status__gte=400, deny_status__lte=599) & ~models.Q(deny_status=401),
                name="wsreject_accessrule_deny_status_is_an_error",
            ),
            models.CheckConstraint(condition=~models.Q(endpoint=""), name="wsreject_accessrule_endpoint_not_empty"),
            models.CheckConstraint(
                condition=models.Q(retry_after__gte=0, retry_after__lte=MAX_RETRY_AFTER),
                name="wsreject_accessrule_retry_after_in_range",
            ),
        ]

    def __str__(self) -> str:
        return self.endpoint

    def save(self, *args: Any, **kwargs: Any) -> None:
        """Validate the fields first: an invalid rule must never be stored (whoever saves it)."""
        self.clean_fields(exclude=["updated"])
        if self.retry_after > MAX_RETRY_AFTER:
            raise ValidationError({"retry_after": _("At most %(max)s seconds.") % {"max": MAX_RETRY_AFTER}})
        super().save(*args, **kwargs)

    def missing_requirements(self) -> list[str]:
        """Groups and permissions this rule names that no longer exist (it admits nobody then)."""
        groups = [f"group “{link.group_name}”" for link in self.group_links.all() if link.group_id is None]
        perms = [f"permission “{link.permission_label}”" for link in self.permission_links.all() if link.permission_id is None]
        return groups + perms


class AccessRuleGroup(models.Model):
    """A group an access rule admits. Deleting the group keeps the row (``group`` empty, its
    name kept), so the rule admits nobody rather than everybody."""

    rule = models.ForeignKey(AccessRule, on_delete=models.CASCADE, related_name="group_links")
    group = models.ForeignKey("auth.Group", on_delete=models.SET_NULL, null=True, related_name="+")
    group_name = models.CharField(_("group name when deleted"), max_length=150, blank=True)

    class Meta:
        verbose_name = _("allowed group")
        constraints = [models.UniqueConstraint(fields=["rule", "group"], name="wsreject_accessrulegroup_unique")]

    def __str__(self) -> str:
        return self.group.name if self.group is not None else f"deleted group “{self.group_name}”"


class AccessRulePermission(models.Model):
    """A permission an access rule requires. Deleting the permission keeps the row
    (``permission`` empty, its label kept), so the rule admits nobody."""

    rule = models.ForeignKey(AccessRule, on_delete=models.CASCADE, related_name="permission_links")
    permission = models.ForeignKey("auth.Permission", on_delete=models.SET_NULL, null=True, related_name="+")
    permission_label = models.CharField(_("permission when deleted"), max_length=255, blank=True)

    class Meta:
        verbose_name = _("required permission")
        constraints = [models.UniqueConstraint(fields=["rule", "permission"], name="wsreject_accessrulepermission_unique")]

    def __str__(self) -> str:
        return str(self.permission) if self.permission is not None else f"deleted permission “{self.permission_label}”"
