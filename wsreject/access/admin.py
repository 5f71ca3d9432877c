"""Admin for WebSocket access: access rules, who can connect per endpoint, recent denials, tokens.

Grant and revoke the permissions consumers require in the standard user and
group pages; close an endpoint or restrict it to groups with an access rule.
Either takes effect at the next handshake, in every process sharing the cache, and
closes the open connections it no longer allows (:mod:`wsreject.revocation`).
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, cast

from django.contrib import admin, messages
from django.contrib.auth import get_backends
from django.contrib.auth.backends import ModelBackend
from django.contrib.auth.models import Group
from django.core.exceptions import PermissionDenied
from django.core.paginator import Paginator
from django.db.models import QuerySet
from django.http import Http404, HttpRequest, HttpResponse
from django.template.response import TemplateResponse
from django.urls import URLPattern, path
from django.utils import timezone
from django.utils.functional import Promise
from django.utils.translation import gettext_lazy as _
from django.utils.translation import ngettext

from ..authentication.tokens import is_legacy, new_secret
from ..cache.versions import bump_rules
from ..endpoints import Endpoint, project_endpoints
from ..models import AccessRule, AccessToken
from ..patterns import EndpointPattern, parse_endpoint
from ..rules import Rule, load_rules
from .declared_perms import perm_names
from .denial_chart import denials_chart
from .denial_log import denials_per_minute, recent_denials
from .explain_admin import explain_urls
from .forms import AccessRuleForm
from .holders import Holders, groups_passing, population, searched_ids

__all__ = [
    "MAX_SEARCH",
    "USERS_PER_PAGE",
    "USERS_PER_ROW",
    "Access",
    "AccessRuleAdmin",
    "AccessTokenAdmin",
    "StrOrPromise",
    "coverage_warnings",
    "other_backends",
    "rule_coverage",
    "search_term",
    "stored_problem",
    "who_can_connect",
]

USERS_PER_ROW = 10  # on "Who can connect"; the endpoint's own page lists them all, paginated
USERS_PER_PAGE = 100
MAX_SEARCH = 150

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
            path("endpoints/<int:index>/", view(self.endpoint_users_view), name="wsreject_accessrule_endpoint_users"),
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
        """Per endpoint: what it requires, which groups and how many users can connect, the first users."""
        search = search_term(request)
        rules = load_rules()
        memo: dict[Any, Any] = {}
        rows = [who_can_connect(endpoint, rules, search, memo=memo) for endpoint in project_endpoints()]
        return self._page(request, "admin/wsreject/endpoints.html", _("Who can connect"), rows=rows, search=search)

    def endpoint_users_view(self, request: HttpRequest, index: int) -> TemplateResponse:
        """Every user who can connect to one endpoint, searchable, a page at a time."""
        endpoints = project_endpoints()
        if index >= len(endpoints):
            raise Http404("No such endpoint")
        search = search_term(request)
        access = who_can_connect(endpoints[index], load_rules(), search, limit=0)
        users = Holders(access.perms, access.group_sets, search, searched_ids(search)) if access.listed else None
        page = Paginator(cast(Any, users), USERS_PER_PAGE).get_page(request.GET.get("page")) if users is not None else None
        title = _("Who can connect to %s") % access.endpoint.route
        return self._page(
            request, "admin/wsreject/endpoint_users.html", title, row=access, page=page, search=search, index=index
        )

    def denials_view(self, request: HttpRequest) -> TemplateResponse:
        """The recent denials of every process sharing the cache (read-only)."""
        first_minute, series = denials_per_minute()
        chart = denials_chart(first_minute, series)
        return self._page(
            request, "admin/wsreject/denials.html", _("Recent WebSocket denials"), log=recent_denials(), chart=chart
        )

    def save_model(self, request: HttpRequest, obj: AccessRule, form: Any, change: bool) -> None:
        super().save_model(request, obj, form, change)
        for warning in coverage_warnings(obj.endpoint, project_endpoints()):
            messages.warning(request, warning)

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
    perms: set[str] = field(default_factory=set)  # every permission required (consumer and rules)
    group_sets: list[frozenset[int]] = field(default_factory=list)  # one group of each, per rule
    listed: bool = False  # whether users are listed (not "everyone", not "nobody")


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


def coverage_warnings(pattern_text: str, endpoints: Iterable[Endpoint]) -> list[str]:
    """What the admin says about a saved path rule (not an error: the routing may change later):
    that it matches no endpoint (with the nearest routes), or that it covers some mounts of a
    consumer but not its others (with the route name that covers them all)."""
    try:
        pattern = parse_endpoint(pattern_text)
    except ValueError:
        return []
    if pattern.route_name is not None:
        return []  # the form refuses names the routing does not have
    endpoints = tuple(endpoints)
    probe = Rule(0, pattern_text, True, 0, "", 403, "")
    coverage = [(endpoint, _covers(probe, pattern, endpoint)) for endpoint in endpoints]
    covered = [endpoint for endpoint, covers in coverage if covers]
    if not covered and all(covers is False for _endpoint, covers in coverage):
        routes = [endpoint.route for endpoint in endpoints]
        near = [route for route in routes if route.lower().rstrip("/") == pattern_text.lower().rstrip("/")]
        near = near or difflib.get_close_matches(pattern_text, routes, n=1, cutoff=0.8)
        return [
            _("The rule “%(pattern)s” matches no WebSocket endpoint, so it changes nothing.%(near)s")
            % {
                "pattern": pattern_text,
                "near": (_(" Did you mean %s?") % ", ".join(f"“{route}”" for route in near)) if near else "",
            }
        ]
    unknown = {id(endpoint) for endpoint, covers in coverage if covers is None}
    warnings: list[str] = []
    consumers = {id(e.consumer_class): e.consumer_class for e in covered if e.consumer_class is not None}
    for consumer in sorted(consumers.values(), key=lambda c: c.__qualname__):
        mounts = [endpoint for endpoint in endpoints if endpoint.consumer_class is consumer]
        missed = [endpoint for endpoint in mounts if endpoint not in covered]
        if not missed or any(id(endpoint) in unknown for endpoint in missed):
            continue
        warnings.append(
            _("The rule “%(pattern)s” covers %(consumer)s at %(covered)s but not at %(missed)s.%(suggestion)s")
            % {
                "pattern": pattern_text,
                "consumer": consumer.__name__,
                "covered": ", ".join(f"“{e.route}”" for e in mounts if e in covered),
                "missed": ", ".join(f"“{e.route}”" for e in missed),
                "suggestion": _mounts_suggestion(mounts),
            }
        )
    return warnings


def _mounts_suggestion(mounts: list[Endpoint]) -> str:
    """How one rule can cover every mount of a consumer: the route name they share, if they do."""
    names = sorted({endpoint.name for endpoint in mounts if endpoint.name})
    if len(names) == 1 and all(endpoint.name == names[0] for endpoint in mounts):
        return str(_(" The route name “%s” covers every mount.") % names[0])
    if names:
        return str(_(" Route names: %s.") % ", ".join(f"“{name}”" for name in names))
    return str(_(" Add rules for the others, or name the route once in every mount."))


def _covers(probe: Rule, pattern: EndpointPattern, endpoint: Endpoint) -> bool | None:
    """Whether a path rule covers handshakes of ``endpoint``; None when only real paths could tell
    (a pattern with parameters against a route with parameters)."""
    if rule_coverage(probe, endpoint) is not None:
        return True
    if "<" in pattern.text and not pattern.prefix:
        if "<" not in endpoint.route:
            return pattern.matches(endpoint.route, endpoint.name)
        mine, theirs = pattern.text.split("<", 1)[0], endpoint.route.split("<", 1)[0]
        return None if mine.startswith(theirs) or theirs.startswith(mine) else False
    return False


def who_can_connect(
    endpoint: Endpoint,
    rules: Iterable[Rule],
    search: str = "",
    limit: int = USERS_PER_ROW,
    memo: dict[Any, Any] | None = None,
) -> Access:
    """Who passes the consumer's declared checks and the rules covering all of ``endpoint``.

    Users and groups are found through Django's permission tables (superusers
    included, inactive users never; :mod:`~wsreject.access.holders`): the count,
    and the first ``limit`` users whose username contains ``search`` (``memo``
    shares the answer between endpoints with the same requirements). Checks
    written as code (permission classes, object permissions, other auth backends)
    are listed for the reader, not evaluated.
    """
    consumer = endpoint.consumer_class
    access = Access(endpoint)
    memo = {} if memo is None else memo
    perms = set(perm_names(getattr(consumer, "permission_required", None)))
    login = bool(getattr(consumer, "login_required", False))
    for permission in getattr(consumer, "permission_classes", None) or ():
        access.in_code.append(getattr(permission, "__name__", None) or repr(permission))
    if object_perms := perm_names(getattr(consumer, "object_permission_required", None)):
        access.in_code.append(_("object permissions %s") % ", ".join(object_perms))
    if perms and (backends := other_backends()):
        access.in_code.append(_("permissions granted by %s") % ", ".join(backends))
    group_sets: list[frozenset[int]] = []
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
    access.perms, access.group_sets, access.listed = perms, group_sets, True
    if not limit:
        return access
    key = (frozenset(perms), frozenset(frozenset(ids) for ids in group_sets), search, limit)
    if search and "matching" not in memo:
        memo["matching"] = searched_ids(search)  # one scan of usernames for the whole page
    if not search and "population" not in memo:
        memo["population"] = population()  # one read of the user table for the whole page
    if key not in memo:  # endpoints requiring the same (often: every signed-in user) share the queries
        holders = Holders(perms, group_sets, search, memo.get("matching"), memo.get("population"))
        memo[key] = (holders.count(), holders[:limit])
    access.user_count, access.users = memo[key]
    if perms or group_sets:
        access.groups = groups_passing(perms, group_sets)
    return access


def search_term(request: HttpRequest) -> str:
    """The page's username search, stripped and bounded."""
    return str(request.GET.get("q", "")).strip()[:MAX_SEARCH]


def other_backends() -> list[str]:
    """Auth backends besides ModelBackend: they may grant permissions the tables do not show."""
    return [type(backend).__name__ for backend in get_backends() if not isinstance(backend, ModelBackend)]


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
