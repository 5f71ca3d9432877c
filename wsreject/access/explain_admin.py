"""The admin's "Explain a decision" page: pick a user and an endpoint's path, see the decision.

The same answer as ``manage.py wsreject_explain`` (:mod:`wsreject.explain`): the
endpoint reached, every check with its result — the checks written as code
(permission classes, object checks) evaluated, not just listed — and the
outcome. Nothing is counted (throttles peek) and no consumer runs. Linked from
"Who can connect"; viewing it needs the view permission on access rules.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import Any, TypeVar

from django import forms
from django.contrib import admin
from django.contrib.auth import get_user_model
from django.core.exceptions import PermissionDenied, ValidationError
from django.http import HttpRequest
from django.template.response import TemplateResponse
from django.urls import URLPattern, path
from django.utils.translation import gettext_lazy as _

from ..endpoints import project_endpoints
from ..explain import explain, header_bytes, outcome_text, result_text
from ..probe import UsageError
from ..probe.request import check_value, parse_header

__all__ = ["ExplainForm", "explain_urls", "explain_view"]

T = TypeVar("T")


class ExplainForm(forms.Form):
    username = forms.CharField(label=_("User"), max_length=150, help_text=_("The username to decide for."))
    path = forms.CharField(
        label=_("Path"),
        max_length=2000,
        widget=forms.TextInput(attrs={"list": "wsreject-endpoint-routes", "size": 60}),
        help_text=_("The WebSocket path, with the route's arguments filled in."),
    )
    origin = forms.CharField(label=_("Origin"), required=False, max_length=2000)
    headers = forms.CharField(
        label=_("Headers"), required=False, max_length=8000, widget=forms.Textarea(attrs={"rows": 3}),
        help_text=_("One 'Name: value' per line (other checks may read them; the user is given, not authenticated)."),
    )  # fmt: skip

    def clean_username(self) -> Any:
        User = get_user_model()
        try:
            return User._default_manager.get_by_natural_key(self.cleaned_data["username"])
        except User.DoesNotExist:
            raise ValidationError(_("No such user.")) from None

    def clean_path(self) -> str:
        value: str = self.cleaned_data["path"]
        if not value.startswith("/") or not value.isprintable():
            raise ValidationError(_("A path starts with '/' and has no control characters."))
        return value

    def clean_origin(self) -> str | None:
        value: str = self.cleaned_data["origin"]
        return self._checked(lambda: check_value("origin", value)) if value else None

    def clean_headers(self) -> list[tuple[str, str]]:
        lines = [line for line in self.cleaned_data["headers"].splitlines() if line.strip()]
        return self._checked(lambda: [parse_header(line) for line in lines])

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        try:
            header_bytes(data.get("headers") or [], data.get("origin"))
        except ValueError as exc:
            raise ValidationError(str(exc)) from None
        return data

    @staticmethod
    def _checked(parse: Callable[[], T]) -> T:
        try:
            return parse()
        except UsageError as exc:
            raise ValidationError(str(exc)) from None


def explain_view(model_admin: admin.ModelAdmin[Any], request: HttpRequest) -> TemplateResponse:
    """GET with ``username`` and ``path``: the decision explained (safe to repeat: nothing counts)."""
    if not model_admin.has_view_permission(request):
        raise PermissionDenied
    form = ExplainForm(request.GET if "username" in request.GET else None, initial={"path": request.GET.get("path", "")})
    context: dict[str, Any] = {}
    if form.is_bound and form.is_valid():
        data = form.cleaned_data
        explanation = explain(data["path"], data["username"], headers=data["headers"], origin=data["origin"])
        context = {
            "explanation": explanation,
            "steps": [
                {"check": step.check, "passed": step.passed, "result": result_text(step.refusal), "note": step.note}
                for step in explanation.steps
            ],
            "outcome": outcome_text(explanation),
        }
    return TemplateResponse(
        request,
        "admin/wsreject/explain.html",
        {
            **model_admin.admin_site.each_context(request),
            "opts": model_admin.opts,
            "title": _("Explain a decision"),
            "form": form,
            "endpoints": project_endpoints(),
            **context,
        },
    )


def explain_urls(model_admin: admin.ModelAdmin[Any]) -> list[URLPattern]:
    """The page's URL, for the access rules' admin to include."""
    view = model_admin.admin_site.admin_view(partial(explain_view, model_admin))
    return [path("explain/", view, name="wsreject_accessrule_explain")]
