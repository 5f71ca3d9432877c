"""The admin form for access rules: patterns and statuses are checked with a clear message."""

from __future__ import annotations

from django import forms
from django.core.exceptions import ValidationError
from django.utils.translation import gettext_lazy as _

from .models import AccessRule
from .rules import parse_endpoint, project_endpoints


class AccessRuleForm(forms.ModelForm):
    class Meta:
        model = AccessRule
        fields = "__all__"
        widgets = {
            "endpoint": forms.TextInput(attrs={"size": 50, "placeholder": "/ws/rooms/*", "list": "wsreject-endpoints"}),
            "deny_status": forms.NumberInput(attrs={"min": 400, "max": 599}),
        }

    def clean_endpoint(self) -> str:
        value = self.cleaned_data["endpoint"]
        try:
            pattern = parse_endpoint(value)
        except ValueError as exc:
            raise ValidationError(str(exc), code="invalid_endpoint") from None
        if pattern.route_name is not None:
            names = sorted({endpoint.name for endpoint in project_endpoints() if endpoint.name})
            if pattern.route_name not in names:
                raise ValidationError(
                    _("No WebSocket route is named “%(name)s”. %(known)s"),
                    params={
                        "name": pattern.route_name,
                        "known": _("Named routes: %s.") % ", ".join(names)
                        if names
                        else _("The routing names none: use a path pattern such as “/ws/rooms/*”."),
                    },
                    code="unknown_route_name",
                )
        return value
