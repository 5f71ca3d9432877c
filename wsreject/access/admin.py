"""Admin for WebSocket access: access rules, who can connect per endpoint, recent denials, tokens.

Grant and revoke the permissions consumers require in the standard user and
group pages; close an endpoint or restrict it to groups with an access rule.
Either takes effect at the next handshake, in every process sharing the cache.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from django.contrib import admin, messages
from django.contrib.auth import get_user_model
from django.contrib.auth.backends import ModelBackend
from django.contrib.auth.models import Group
from django.core.exceptions import PermissionDenied
from django.db.models import Q, QuerySet
from django.http import HttpRequest, HttpResponse
from django.template.response import TemplateResponse
from django.urls import URLPattern, path
from django.utils import timezone
from django.utils.functional import Promise
from django.utils.translation import gettext_lazy as _
from django.utils.translation import ngettext

from ..models import AccessRule, AccessToken
from .declared_perms import perm_names
from .denial_log import recent_denials
from .endpoints import Endpoint, project_endpoints
from .explain_admin import explain_urls
from .forms import AccessRuleForm
from .patterns import parse_endpoint
from .rules import Rule, load_rules
from .tokens import is_legacy, new_secret
from .versions import bump_rules

MAX_USERS_LISTED = 50

StrOrPromise = str | Promise

# ModelAdmin is generic for the type checker only (django-stubs), not at run time.
if TYPE_CHECKING:
    RuleAdminBase = admin.ModelAdmin[AccessRule]
    TokenAdminBase = admin.ModelAdmin[AccessToken]
else:
    RuleAdminBase = TokenAdminBase = admin.ModelAdmin


@admin.register(AccessRule)
class AccessRuleAdmin(RuleAdminBase):
    form = AccessRuleForm
    list_display = ("endpoint", "enabled", "allowed_groups", "required_permissions", "refusal", "updated")
    list_filter = ("enabled",)
    search_fields = ("endpoint",)
    actions = ["disable_endpoints", "enable_endpoints"]
    change_list_template = "admin/wsreject/accessrule/change_list.html"
    change_form_template = "admin/wsreject/accessrule/change_form.html"
    fieldsets = (
        (None, {"fields": ("endpoint", "enabled")}),
        (_("While disabled"), {"fields": ("retry_after", "disabled_detail")}),
        (
            _("Who may connect"),
            {"fields": ("allowed_groups", "required_permissions", "forget_missing", "deny_status", "deny_detail")},
        ),
    )

    def get_queryset(self, request: HttpRequest) -> QuerySet[AccessRule]:
        return super().get_queryset(request).prefetch_related("group_links__group", "permission_links__permission__content_type")

    @admin.display(description=_("allowed groups"))
    def allowed_groups(self, rule: AccessRule) -> str:
        names = [link.group.name if link.group else f"⚠ deleted: {link.group_name}" for link in rule.group_links.all()]
        return ", ".join(sorted(names)) or "—"

    @admin.display(description=_("required permissions"))
    def required_permissions(self, rule: AccessRule) -> str:
        labels = [
            f"{link.permission.content_type.app_label}.{link.permission.codename}"
            if link.permission
            else f"⚠ deleted: {link.permission_label}"
            for link in rule.permission_links.all()
        ]
        return ", ".join(sorted(labels)) or "—"

    @admin.display(description=_("refusal"))
    def refusal(self, rule: AccessRule) -> str:
        problem = stored_problem(rule)
        if problem is not None:
            return _("every handshake refused (503): this rule is invalid: %(problem)s") % {"problem": problem}
        if any(link.group_id is None for link in rule.group_links.all()) or any(
            link.permission_id is None for link in rule.permission_links.all()
        ):
            return _("everyone refused: %(missing)s no longer exists") % {"missing": ", ".join(rule.missing_requirements())}
        if not rule.enabled:
            return f"503 {rule.disabled_detail} (Retry-After: {rule.retry_after})"
        return f"{rule.deny_status} {rule.deny_detail}"

    def _set_enabled(self, request: HttpRequest, queryset: QuerySet[AccessRule], enabled: bool) -> None:
        count = queryset.update(enabled=enabled, updated=timezone.now())
        bump_rules(queryset.db)  # update() sends no signals
        message = ngettext("%d endpoint %s.", "%d endpoints %s.", count)
        self.message_user(request, message % (count, _("enabled") if enabled else _("disabled")), messages.SUCCESS)

    @admin.action(description=_("Disable selected endpoints (503)"), permissions=["change"])
    def disable_endpoints(self, request: HttpRequest, queryset: QuerySet[AccessRule]) -> None:
        self._set_enabled(request, queryset, False)

    @admin.action(description=_("Enable selected endpoints"), permissions=["change"])
    def enable_endpoints(self, request: HttpRequest, queryset: QuerySet[AccessRule]) -> None:
        self._set_enabled(request, queryset, True)

    def get_urls(self) -> list[URLPattern]:
        view = self.admin_site.admin_view
        return [
            path("endpoints/", view(self.endpoints_view), name="wsreject_accessrule_endpoints"),
            path("denials/", view(self.denials_view), name="wsreject_accessrule_denials"),
            *explain_urls(self),
            *super().get_urls(),
        ]

    def _page(self, request: HttpRequest, template: str, title: StrOrPromise, **context: Any) -> TemplateResponse:
        if not self.has_view_permission(request):
            raise PermissionDenied
        return TemplateResponse(
            request,
            template,
            {**self.admin_site.each_context(request), "opts": self.opts, "title": title, **context},
        )

    def endpoints_view(self, request: HttpRequest) -> TemplateResponse:
        """Per endpoint: what it requires and which users and groups can connect."""
        rules = load_rules()
        rows = [who_can_connect(endpoint, rules) for endpoint in project_endpoints()]
        return self._page(request, "admin/wsreject/endpoints.html", _("Who can connect"), rows=rows)

    def denials_view(self, request: HttpRequest) -> TemplateResponse:
        """The recent denials of every process sharing the cache (read-only)."""
        return self._page(request, "admin/wsreject/denials.html", _("Recent WebSocket denials"), log=recent_denials())

    def changeform_view(
        self,
        request: HttpRequest,
        object_id: str | None = None,
        form_url: str = "",
        extra_context: dict[str, Any] | None = None,
    ) -> HttpResponse:
        extra_context = {**(extra_context or {}), "known_endpoints": project_endpoints()}
        return super().changeform_view(request, object_id, form_url, extra_context)


# --- who can connect ----------------------------------------------------------------------------


@dataclass
class Access:
    """What the admin shows for one endpoint."""

    endpoint: Endpoint
    requirements: list[StrOrPromise] = field(default_factory=list)
    rules: list[tuple[Rule, str]] = field(default_factory=list)  # (rule, "all" | "some")
    closed_by: list[Rule] = field(default_factory=list)
    everyone: bool = False  # anonymous clients too
    nobody: list[str] = field(default_factory=list)  # why nobody can connect (deleted groups ...)
    users: list[Any] = field(default_factory=list)
    user_count: int = 0
    groups: list[Group] = field(default_factory=list)
    in_code: list[StrOrPromise] = field(default_factory=list)  # checks only the code can answer


def stored_problem(rule: AccessRule) -> str | None:
    """Why a stored row cannot be enforced as written (it then refuses everything), or None."""
    fields = (rule.endpoint, rule.enabled, rule.retry_after, rule.disabled_detail, rule.deny_status, rule.deny_detail)
    return Rule(rule.pk, *fields).problem()


def rule_coverage(rule: Rule, endpoint: Endpoint) -> str | None:
    """Whether ``rule`` covers every handshake of ``endpoint`` ("all"), some of them, or none."""
    try:
        pattern = parse_endpoint(rule.endpoint)
    except ValueError:
        return None
    if pattern.route_name is not None:
        return "all" if pattern.route_name == endpoint.name else None
    if pattern.text == endpoint.route or (pattern.prefix and pattern.matches(endpoint.route, None)):
        return "all"
    if "<" not in pattern.text and not pattern.prefix and endpoint.matches(pattern.text):
        return "some"
    return None


def who_can_connect(endpoint: Endpoint, rules: Iterable[Rule]) -> Access:
    """Who passes the consumer's declared checks and the rules covering all of ``endpoint``.

    Users and groups are found through Django's permission tables (superusers
    included); checks written as code (permission classes, object permissions)
    are listed for the reader, not evaluated.
    """
    consumer = endpoint.consumer_class
    access = Access(endpoint)
    perms = set(perm_names(getattr(consumer, "permission_required", None)))
    login = bool(getattr(consumer, "login_required", False))
    for permission in getattr(consumer, "permission_classes", None) or ():
        access.in_code.append(getattr(permission, "__name__", None) or repr(permission))
    if object_perms := perm_names(getattr(consumer, "object_permission_required", None)):
        access.in_code.append(_("object permissions %s") % ", ".join(object_perms))
    group_sets = []
    for rule in rules:
        if rule.problem() is not None:  # stored invalid: it refuses every handshake with 503
            access.rules.append((rule, "all"))
            access.closed_by.append(rule)
            continue
        coverage = rule_coverage(rule, endpoint)
        if coverage is None:
            continue
        access.rules.append((rule, coverage))
        if coverage == "all":
            if not rule.enabled:
                access.closed_by.append(rule)
            access.nobody += [f"{rule.endpoint}: {missing}" for missing in rule.missing]
            perms |= rule.perms
            if rule.group_ids:
                group_sets.append(rule.group_ids)
    if login or perms or group_sets:
        access.requirements.append(_("signed in"))
    access.requirements += sorted(perms)
    access.requirements += [_("member of one of: %s") % ", ".join(_group_names(ids)) for ids in group_sets]
    if access.nobody:
        return access  # a rule names a deleted group or permission: it admits nobody
    if not (login or perms or group_sets or access.in_code):
        access.everyone = True
        return access
    user_model = get_user_model()
    users = user_model._default_manager.filter(is_active=True)
    groups = Group.objects.all()
    for perm in sorted(perms):
        app_label, _dot, codename = perm.partition(".")
        users = users.filter(pk__in=ModelBackend().with_perm(perm).values("pk"))
        groups = groups.filter(permissions__content_type__app_label=app_label, permissions__codename=codename)
    for group_ids in group_sets:
        members = user_model._default_manager.filter(groups__in=group_ids).values("pk")
        users = users.filter(Q(is_superuser=True) | Q(pk__in=members))
        groups = groups.filter(pk__in=group_ids)
    access.user_count = users.count()
    access.users = list(users.order_by("pk")[:MAX_USERS_LISTED])
    if perms or group_sets:
        access.groups = list(groups.distinct().order_by("name"))
    return access


def _group_names(group_ids: Iterable[int]) -> list[str]:
    return sorted(Group.objects.filter(pk__in=group_ids).values_list("name", flat=True))


@admin.register(AccessToken)
class AccessTokenAdmin(TokenAdminBase):
    """Issue and revoke bearer tokens. The secret is shown once, when issued; deleting revokes."""

    list_display = ("prefix", "user", "name", "created", "expires", "accepted")
    list_select_related = ("user",)
    search_fields = ("prefix", "name", "user__username")
    autocomplete_fields = ("user",)
    fields = ("user", "name", "expires", "prefix", "created")
    readonly_fields = ("prefix", "created")

    @admin.display(description=_("accepted"), boolean=True)
    def accepted(self, token: AccessToken) -> bool:
        """Tokens of wsreject 0.1 (no MAC) are no longer accepted: issue new ones."""
        return not is_legacy(token)

    def has_change_permission(self, request: HttpRequest, obj: AccessToken | None = None) -> bool:
        # A token is issued or revoked, never edited (its owner must not change under it).
        return obj is None and super().has_change_permission(request, obj)

    def save_model(self, request: HttpRequest, obj: AccessToken, form: Any, change: bool) -> None:
        if change:
            raise PermissionDenied("Tokens cannot be edited; revoke and issue a new one.")
        secret, obj.digest, obj.prefix = new_secret()
        super().save_model(request, obj, form, change)
        messages.warning(
            request,
            _("Token issued for %(user)s: %(secret)s — copy it now, it is not stored and will not be shown again.")
            % {"user": obj.user, "secret": secret},
        )
