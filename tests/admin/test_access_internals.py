"""The parts under the admin: cache versions, signal coverage, declared permissions,
rule matching and precedence, the denial log and the system checks."""

from __future__ import annotations

import asyncio
import time

import pytest
from asgiref.sync import async_to_sync
from channels.generic.websocket import AsyncWebsocketConsumer
from channels.routing import URLRouter
from django.contrib.auth import get_user_model
from django.contrib.auth.models import AnonymousUser, Group, Permission
from django.contrib.contenttypes.models import ContentType
from django.core.cache import caches
from django.urls import path

from wsreject.access.checks import check_access_control
from wsreject.access.declared_perms import create_declared_permissions, declared_permissions
from wsreject.access.denial_log import INDEX_KEY, DenialLog, recent_denials
from wsreject.cache import permsets, versions
from wsreject.denial import DenialResponse
from wsreject.endpoints import Endpoint
from wsreject.middleware import DenialMiddleware, DenialMiddlewareStack
from wsreject.models import AccessRule
from wsreject.patterns import parse_endpoint
from wsreject.rules import Rule, compile_rules, current_rules, load_rules
from wsreject.testing import HandshakeCommunicator

from .conftest import connect

User = get_user_model()


# --- the permission cache ------------------------------------------------------------------------


@pytest.fixture
def people(transactional_db):
    members = Group.objects.create(name="members")
    join = Permission.objects.get(content_type__app_label="chat", codename="join_room")
    members.permissions.add(join)
    alice = User.objects.create_user("alice")
    alice.groups.add(members)
    return {
        "members": members,
        "join": join,
        "alice": alice,
        "bob": User.objects.create_user("bob"),
        "root": User.objects.create_superuser("root", "r@example.com", None),
        "idle": User.objects.create_user("idle", is_active=False, is_superuser=True),
    }


def fresh(user):
    return User.objects.get(pk=user.pk)  # what a handshake loads: no per-instance caches


def test_cached_answers_equal_djangos(people):
    for name in ("alice", "bob", "root", "idle"):
        for perms in (["chat.join_room"], ["chat.join_room", "auth.view_user"], []):
            user = fresh(people[name])
            assert permsets.has_perms(user, perms) == fresh(user).has_perms(perms), (name, perms)
    assert permsets.has_perms(AnonymousUser(), ["chat.join_room"]) is False


@pytest.mark.parametrize(
    "change",
    [
        lambda p: p["alice"].groups.remove(p["members"]),
        lambda p: p["members"].user_set.remove(p["alice"]),
        lambda p: p["members"].user_set.clear(),
        lambda p: p["members"].permissions.remove(p["join"]),
        lambda p: p["join"].group_set.clear(),
        lambda p: p["members"].delete(),
    ],
    ids=[
        "user.groups", "group.user_set", "group.user_set.clear", "group.permissions", "permission.group_set", "group.delete"
    ],  # fmt: skip
)
def test_revocations_from_either_side_retire_the_cached_set(people, change):
    assert permsets.has_perms(fresh(people["alice"]), ["chat.join_room"])
    change(people)
    assert not permsets.has_perms(fresh(people["alice"]), ["chat.join_room"])


@pytest.mark.parametrize(
    "change",
    [
        lambda p: p["bob"].user_permissions.add(p["join"]),
        lambda p: p["join"].user_set.add(p["bob"]),
        lambda p: p["bob"].groups.add(p["members"]),
        lambda p: p["members"].user_set.add(p["bob"]),
    ],
    ids=["user.user_permissions", "permission.user_set", "user.groups", "group.user_set"],
)
def test_grants_from_either_side_retire_the_cached_set(people, change):
    assert not permsets.has_perms(fresh(people["bob"]), ["chat.join_room"])
    change(people)
    assert permsets.has_perms(fresh(people["bob"]), ["chat.join_room"])


def test_warm_set_costs_no_query_and_a_login_keeps_it(people, django_assert_num_queries):
    alice = fresh(people["alice"])
    permsets.has_perms(alice, ["chat.join_room"])
    version = caches["default"].get(versions.user_version_key(alice.pk))
    alice.save(update_fields=["last_login"])  # what every login does
    with django_assert_num_queries(0):
        assert permsets.has_perms(alice, ["chat.join_room"])
    assert caches["default"].get(versions.user_version_key(alice.pk)) == version


def test_a_lost_version_is_a_new_version(people):
    cache = caches["default"]
    assert permsets.has_perms(fresh(people["alice"]), ["chat.join_room"])
    cache.delete(versions.PERMS_VERSION_KEY)  # evicted or flushed
    people["members"].permissions.remove(people["join"])
    cache.delete(versions.PERMS_VERSION_KEY)  # the bump is lost too
    assert not permsets.has_perms(fresh(people["alice"]), ["chat.join_room"])


def test_other_backends_are_asked_directly(people, settings, monkeypatch):
    settings.AUTHENTICATION_BACKENDS = ["django.contrib.auth.backends.ModelBackend", f"{__name__}.GrantsEverything"]
    assert not permsets.backends_cacheable()
    assert permsets.has_perms(fresh(people["bob"]), ["chat.join_room"])
    # An object-only backend (django-guardian's) cannot change has_perm(perm): still cached.
    monkeypatch.setattr(permsets, "OBJECT_ONLY_BACKENDS", {f"{__name__}.ObjectsOnly"})
    settings.AUTHENTICATION_BACKENDS = ["django.contrib.auth.backends.ModelBackend", f"{__name__}.ObjectsOnly"]
    assert permsets.backends_cacheable()
    assert not permsets.has_perms(fresh(people["bob"]), ["chat.join_room"])


class GrantsEverything:
    def authenticate(self, request, **kwargs):
        return None

    def has_perm(self, user, perm, obj=None):
        return True


class ObjectsOnly(GrantsEverything):
    def has_perm(self, user, perm, obj=None):
        return obj is not None


# --- declared permissions ------------------------------------------------------------------------


class ModeratorConsumer(AsyncWebsocketConsumer):
    permission_required = ("chat.moderate_rooms", "chat.join_room", "nowhere.fly")
    permission_names = {"chat.moderate_rooms": "Can moderate rooms"}


class AuditConsumer(AsyncWebsocketConsumer):
    permission_required = "wsreject.read_audit_stream"


def fake_endpoints(*consumers):
    return tuple(Endpoint(f"/ws/{c.__name__}/", None, None, c, (), None) for c in consumers)


def test_migrate_creates_the_permissions_consumers_require(transactional_db, monkeypatch):
    monkeypatch.setattr("wsreject.access.declared_perms.project_endpoints", lambda: fake_endpoints(ModeratorConsumer, AuditConsumer))
    assert declared_permissions() == {
        "chat.moderate_rooms": "Can moderate rooms",
        "chat.join_room": "Can join room",
        "nowhere.fly": "Can fly",
        "wsreject.read_audit_stream": "Can read audit stream",
    }
    create_declared_permissions(verbosity=0)
    create_declared_permissions(verbosity=0)  # idempotent
    moderate = Permission.objects.get(codename="moderate_rooms")
    assert (moderate.name, moderate.content_type.app_label, moderate.content_type.model) == (
        "Can moderate rooms", "chat", "room"
    )  # fmt: skip
    audit = Permission.objects.get(content_type__app_label="wsreject", codename="read_audit_stream")
    assert audit.name == "Can read audit stream"
    # Declared by Room.Meta: Django's own, with its own name, untouched.
    assert Permission.objects.get(codename="join_room").name == "Can connect to rooms"
    assert not Permission.objects.filter(codename="fly").exists()
    assert not ContentType.objects.filter(model="websocket").exists()

    warnings = [e for e in check_access_control() if e.id == "wsreject.W021"]
    assert [w.msg.split("'")[1] for w in warnings] == ["nowhere.fly"]


def test_the_demo_declares_join_room(transactional_db):
    assert declared_permissions()["chat.join_room"]
    assert Permission.objects.get(codename="join_room").name == "Can connect to rooms"
    assert not [e for e in check_access_control() if e.id == "wsreject.W021"]


# --- rules -----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "pattern, path, matches",
    [
        ("/ws/rooms/*", "/ws/rooms/lobby/", True),
        ("/ws/rooms/*", "/ws/roomsx/", False),
        ("/ws/rooms/<slug:name>/", "/ws/rooms/lobby/", True),
        ("/ws/rooms/<slug:name>/", "/ws/rooms/lobby/x/", False),
        ("/ws/deny/<int:status>/", "/ws/deny/abc/", False),
        ("/ws/private/", "/ws/private/", True),
        ("/ws/private/", "/ws/private", False),
        ("/*", "/anything/", True),
    ],
)
def test_path_patterns(pattern, path, matches):
    assert parse_endpoint(pattern).matches(path, None) is matches


def test_precedence_is_names_and_exact_paths_then_longest_prefix():
    endpoints = ["/*", "/ws/rooms/*", "/ws/rooms/lobby/", "rooms", "/ws/*"]
    compiled = compile_rules("v", tuple(Rule(pk, endpoint, True, 1, "", 403, "") for pk, endpoint in enumerate(endpoints)))
    assert [item.rule.endpoint for item in compiled.rules] == ["/ws/rooms/lobby/", "rooms", "/ws/rooms/*", "/ws/*", "/*"]


def test_rules_load_in_one_query_and_a_broken_one_denies_everything(transactional_db, django_assert_num_queries, caplog):
    members = Group.objects.create(name="members")
    rule = AccessRule.objects.create(endpoint="/ws/private/")
    rule.groups.add(members)
    rule.permissions.add(*Permission.objects.filter(codename__in=["join_room", "view_user"]))
    AccessRule.objects.create(endpoint="/ws/echo/", enabled=False)
    AccessRule.objects.filter(endpoint="/ws/echo/").update(endpoint="/ws/<nope:x>/")  # no validation
    with django_assert_num_queries(1):
        rules = load_rules()
    assert rules[0].group_ids == {members.pk} and rules[0].perms == {"chat.join_room", "auth.view_user"}
    compiled = current_rules().rules
    assert [(item.rule.endpoint, item.pattern is None) for item in compiled] == [("/ws/<nope:x>/", True), ("/ws/private/", False)]
    assert "Unknown converter" in compiled[0].problem
    assert compiled[0].covers("/ws/echo/", "echo") and compiled[0].covers("/anything/", None), "it covers everything"


class Hello(AsyncWebsocketConsumer):
    async def connect(self):
        await self.accept()


def test_a_rule_can_name_a_route(transactional_db):
    application = DenialMiddlewareStack(
        URLRouter(
            [
                path("ws/named/", Hello.as_asgi(), name="named"),
                path(
                    "ws/browser/",
                    DenialMiddleware(URLRouter([path("named/", Hello.as_asgi(), name="named")]), denial_mode="close_code"),
                ),
            ]
        )
    )
    AccessRule.objects.create(endpoint="named", enabled=False, disabled_detail="Named and closed")

    async def run(path_, **kwargs):
        return await HandshakeCommunicator(application, path_).handshake(**kwargs)

    denied = async_to_sync(run)("/ws/named/")
    assert (denied.status_code, denied.json()) == (503, {"detail": "Named and closed"})
    closed = async_to_sync(run)("/ws/browser/named/", close_code=True)
    assert (closed.denial_mode, closed.close_code) == ("close_code", 4503)


def test_a_rule_denial_is_logged_with_the_user(demo_tokens, caplog):
    rule = AccessRule.objects.create(endpoint="/ws/private/")
    rule.groups.add(Group.objects.create(name="nobody"))
    with caplog.at_level("INFO", logger="wsreject"):
        assert connect("/ws/private/", demo_tokens["bob"]).status_code == 403
    bob = User.objects.get(username="bob")
    assert f"user={bob.pk}" in caplog.text


# --- the denial log ----------------------------------------------------------------------------


def test_denial_log_is_bounded_and_copied_to_the_cache_off_the_handshake_path(settings):
    settings.WSREJECT = {"DENIAL_LOG_SIZE": 3}
    log = DenialLog()
    scope = {"type": "websocket", "path": "/ws/x/" + "y" * 500, "client": ["10.0.0.1", 1234]}

    async def flood() -> float:
        started = time.perf_counter()
        for _ in range(1000):
            log.record(scope, DenialResponse(429, detail="slow down"), "http")
        recorded_in = time.perf_counter() - started
        assert caches["default"].get(INDEX_KEY) is None  # nothing written yet
        # The copy follows about a second later, from a worker thread: wait for it, bounded.
        deadline = time.monotonic() + 30
        while caches["default"].get(INDEX_KEY) is None:
            assert time.monotonic() < deadline, "the denial log was never copied to the cache"
            await asyncio.sleep(0.05)
        return recorded_in

    assert asyncio.run(flood()) < 1.5  # 1000 denials recorded without touching the cache
    snapshot = log.snapshot()
    assert len(snapshot["entries"]) == 3 and snapshot["counts"] == {429: 1000}
    assert len(snapshot["entries"][0]["path"]) == 200
    name = snapshot["process"]
    assert name in caches["default"].get(INDEX_KEY)
    assert caches["default"].get(f"wsreject:denials:{name}")["total"] == 1000


def test_recent_denials_merge_every_process(settings):
    other = {
        "process": "elsewhere:1",
        "updated": time.time(),
        "entries": [
            dict(
                time=time.time() + 5, path="/ws/a/", status=403, detail="no",
                user="-", client="-", denial_mode="http", process="elsewhere:1",
            )
        ],  # fmt: skip
        "counts": {403: 7},
        "total": 7,
    }
    caches["default"].set(INDEX_KEY, {"elsewhere:1": time.time()})
    caches["default"].set("wsreject:denials:elsewhere:1", other)
    merged = recent_denials()
    assert merged["entries"][0].process == "elsewhere:1"
    assert merged["counts"][403] >= 7 and "elsewhere:1" in merged["processes"]


# --- checks ----------------------------------------------------------------------------------------


def test_w020_process_local_cache_in_production(settings):
    settings.DEBUG = False
    settings.CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}
    assert "wsreject.W020" in [e.id for e in check_access_control()]
    redis = "django.core.cache.backends.redis.RedisCache"
    settings.CACHES = {"default": {"BACKEND": redis, "LOCATION": "redis://127.0.0.1:6379/5"}}
    assert "wsreject.W020" not in [e.id for e in check_access_control()]
    settings.DEBUG = True
    settings.CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}
    assert "wsreject.W020" not in [e.id for e in check_access_control()]


def test_e022_to_e028_settings(settings):
    settings.WSREJECT = {
        "CACHE": "nope",
        "THROTTLE_CACHE": "nor-this",
        "PERMISSION_CACHE_TIMEOUT": 0,
        "DENIAL_LOG_SIZE": -1,
        "MAX_STALENESS": "5",
        "TICKET_TTL": 0,
        "VERSION_RECHECK": None,
    }
    ids = sorted(e.id for e in check_access_control())
    assert ids == ["wsreject.E022", "wsreject.E022", "wsreject.E023", "wsreject.E024", "wsreject.E026", "wsreject.E027", "wsreject.E028"]


def test_w025_throttle_counters_that_other_keys_can_evict(settings):
    local = "django.core.cache.backends.locmem.LocMemCache"
    settings.CACHES = {"default": {"BACKEND": local}, "throttle": {"BACKEND": local, "OPTIONS": {"MAX_ENTRIES": 100_000}}}
    settings.WSREJECT = {"THROTTLE_CACHE": "default"}
    assert "wsreject.W025" in [e.id for e in check_access_control()], "shared with the permission sets"
    settings.WSREJECT = {"THROTTLE_CACHE": "throttle"}
    assert "wsreject.W025" not in [e.id for e in check_access_control()]
    settings.CACHES = {"default": {"BACKEND": local}, "throttle": {"BACKEND": local}}
    assert "wsreject.W025" in [e.id for e in check_access_control()], "300 entries by default"


def test_without_its_cache_access_control_reads_the_database(demo_tokens, settings, caplog, monkeypatch):
    """A cache outage costs queries, never the service (nor a stale answer)."""
    settings.CACHES = {
        **settings.CACHES,
        "down": {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": "redis://127.0.0.1:1/0"},
    }
    settings.WSREJECT = {**settings.WSREJECT, "CACHE": "down"}
    monkeypatch.setattr("wsreject.reporting._warned", {})
    rule = AccessRule.objects.create(endpoint="/ws/private/")
    rule.groups.add(Group.objects.get(name="members"))
    assert connect("/ws/rooms/lobby/", demo_tokens["alice"]).accepted
    assert connect("/ws/private/", demo_tokens["bob"]).status_code == 403
    assert connect("/ws/rooms/lobby/", demo_tokens["bob"]).status_code == 403
    assert caplog.text.count("WebSocket access cache unavailable") == 1
