"""Bearer tokens for WebSocket clients; only a hash of each token is stored."""

from django.conf import settings
from django.db import models
from django.utils.translation import gettext_lazy as _


class AccessToken(models.Model):
    """A bearer token. The secret is shown once, when issued; the database keeps its SHA-256."""

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="wsreject_tokens"
    )
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
    """A path pattern or route name that :func:`wsreject.rules.parse_endpoint` accepts."""
    from django.core.exceptions import ValidationError

    from .rules import parse_endpoint

    try:
        parse_endpoint(value)
    except ValueError as exc:
        raise ValidationError(str(exc), code="invalid_endpoint") from None


def validate_deny_status(value: int) -> None:
    """A client or server error status that can stand alone as a handshake answer."""
    from http import HTTPStatus

    from django.core.exceptions import ValidationError

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
    See :mod:`wsreject.rules` for matching and precedence.
    """

    endpoint = models.CharField(
        _("endpoint"),
        max_length=200,
        unique=True,
        validators=[validate_endpoint],
        help_text=_(
            "A path pattern starting with “/”, in the syntax of path() in the routing "
            "(“/ws/rooms/&lt;slug:name&gt;/”); end it with “*” to match every path below "
            "(“/ws/rooms/*”). Or the name of a route (path(..., name=\"rooms\"))."
        ),
    )
    enabled = models.BooleanField(
        _("enabled"), default=True, help_text=_("Unchecked: every handshake is refused with 503.")
    )
    retry_after = models.PositiveIntegerField(
        _("retry after (seconds)"),
        default=120,
        help_text=_("Sent as Retry-After while the endpoint is disabled."),
    )
    disabled_detail = models.CharField(
        _("message while disabled"), max_length=200, default="Down for maintenance"
    )
    groups = models.ManyToManyField(
        "auth.Group",
        blank=True,
        related_name="wsreject_access_rules",
        verbose_name=_("allowed groups"),
        help_text=_("If any are chosen, only members of one of them may connect (and superusers)."),
    )
    permissions = models.ManyToManyField(
        "auth.Permission",
        blank=True,
        related_name="wsreject_access_rules",
        verbose_name=_("required permissions"),
        help_text=_("Permissions a user needs, all of them, on top of the consumer's own."),
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

    def __str__(self) -> str:
        return self.endpoint
