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
