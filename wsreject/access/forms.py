"""The admin form for access rules: patterns and statuses checked with a clear message, and
groups and permissions that were deleted kept until the admin says to forget them."""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib.admin.widgets import FilteredSelectMultiple
from django.contrib.auth.models import Group, Permission
from django.core.exceptions import ValidationError
from django.utils.translation import gettext_lazy as _

from ..endpoints import project_endpoints
from ..models import AccessRule, AccessRuleGroup, AccessRulePermission
from ..patterns import parse_endpoint

__all__ = ["AccessRuleForm"]


class AccessRuleForm(forms.ModelForm):  # type: ignore[type-arg]
    allowed_groups = forms.ModelMultipleChoiceField(
        Group.objects.all(),
        required=False,
        widget=FilteredSelectMultiple(_("groups"), is_stacked=False),
        label=_("allowed groups"),
        help_text=_("If any are chosen, only members of one of them may connect (and superusers)."),
    )
    required_permissions = forms.ModelMultipleChoiceField(
        Permission.objects.select_related("content_type"),
        required=False,
        widget=FilteredSelectMultiple(_("permissions"), is_stacked=False),
        label=_("required permissions"),
        help_text=_("Permissions a user needs, all of them, on top of the consumer's own."),
    )
    forget_missing = forms.BooleanField(
        required=False,
        label=_("Forget deleted groups and permissions"),
        help_text=_(
            "A rule that names a group or permission that was deleted admits nobody. "
            "Tick this to drop those names (the rule then applies to what is left)."
        ),
    )

    class Meta:
        model = AccessRule
        fields = ["endpoint", "enabled", "retry_after", "disabled_detail", "deny_status", "deny_detail"]
        widgets = {
            "endpoint": forms.TextInput(attrs={"size": 50, "placeholder": "/ws/rooms/*", "list": "wsreject-endpoints"}),
            "deny_status": forms.NumberInput(attrs={"min": 400, "max": 599}),
        }

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        rule = self.instance
        if rule.pk is not None:
            self.fields["allowed_groups"].initial = list(rule.groups.all())
            self.fields["required_permissions"].initial = list(rule.permissions.all())
            missing = rule.missing_requirements()
            if missing:
                self.fields["forget_missing"].help_text = _(
                    "No longer exist: %(missing)s. This rule admits nobody until they are forgotten."
                ) % {"missing": ", ".join(missing)}
                return
        self.fields["forget_missing"].disabled = True

    def clean_endpoint(self) -> str:
        value: str = self.cleaned_data["endpoint"]
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

    def _save_m2m(self) -> None:
        super()._save_m2m()  # type: ignore[misc]
        rule = self.instance
        rule.groups.set(self.cleaned_data["allowed_groups"])
        rule.permissions.set(self.cleaned_data["required_permissions"])
        if self.cleaned_data.get("forget_missing"):
            AccessRuleGroup.objects.filter(rule=rule, group=None).delete()
            AccessRulePermission.objects.filter(rule=rule, permission=None).delete()
