"""Permission classes (wsreject/permissions.py): composition, denials, Django permissions, throttling."""

from __future__ import annotations

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import AnonymousUser

from project.chat.models import Room
from wsreject.authentication import AuthenticationFailed, AuthState
from wsreject.authentication.credentials import STATE_KEY, UNRECOGNISED_BEARER
from wsreject.permissions import (
    AllOf,
    AllowAny,
    AnyOf,
    BasePermission,
    HasPermissions,
    IsAuthenticated,
    IsStaff,
    IsSuperuser,
    Not,
    as_permission,
)

from .backends import BACKENDS


class FakeUser:
    is_authenticated = True

    def __init__(self, *, staff=False, superuser=False):
        self.is_staff = staff
        self.is_superuser = superuser


def scope_for(user=None, *, invalid=False, client=("10.0.0.1", 1234), path="/ws/x/"):
    scope = {"type": "websocket", "path": path, "client": list(client) if client else None}
    scope["user"] = AnonymousUser() if user is None else user
    if invalid:
        state = AuthState([(UNRECOGNISED_BEARER, "x")])
        state.refuse(UNRECOGNISED_BEARER, AuthenticationFailed())
        scope[STATE_KEY] = state
    return scope


AUTHED = scope_for(FakeUser())
STAFF = scope_for(FakeUser(staff=True))
ANON = scope_for(None)


class Teapot(BasePermission):
    status_code = 418
    detail = "Teapot says no"

    def has_permission(self, scope, consumer):
        return False


class Conflict(BasePermission):
    status_code = 409
    detail = "Conflict says no"

    def has_permission(self, scope, consumer):
        return False


class Yes(BasePermission):
    def has_permission(self, scope, consumer):
        return True


def outcome(permission, scope=AUTHED):
    denial = as_permission(permission).check(scope, None)
    return None if denial is None else (denial.status_code, denial.detail)


# --- composition -------------------------------------------------------------------------------

COMPOSITIONS = {
    "class&class": (lambda: Teapot & Conflict, AllOf, (418, "Teapot says no")),
    "instance&instance": (lambda: Teapot() & Conflict(), AllOf, (418, "Teapot says no")),
    "class&instance": (lambda: Teapot & Conflict(), AllOf, (418, "Teapot says no")),
    "instance&class": (lambda: Teapot() & Conflict, AllOf, (418, "Teapot says no")),
    "pass&fail": (lambda: Yes & Conflict, AllOf, (409, "Conflict says no")),
    "fail&pass": (lambda: Conflict & Yes, AllOf, (409, "Conflict says no")),
    "pass&pass": (lambda: Yes & Yes(), AllOf, None),
    "class|class": (lambda: Teapot | Conflict, AnyOf, (418, "Teapot says no")),
    "instance|instance": (lambda: Conflict() | Teapot(), AnyOf, (409, "Conflict says no")),
    "class|instance": (lambda: Teapot | Conflict(), AnyOf, (418, "Teapot says no")),
    "instance|class": (lambda: Teapot() | Conflict, AnyOf, (418, "Teapot says no")),
    "fail|pass": (lambda: Teapot | Yes, AnyOf, None),
    "pass|fail": (lambda: Yes() | Teapot, AnyOf, None),
    "~class-of-failing": (lambda: ~Teapot, Not, None),
    "~instance-of-passing": (lambda: ~Yes(), Not, (403, "Forbidden")),
    "nested-(fail|fail)&pass": (lambda: (Conflict | Teapot) & Yes, AllOf, (409, "Conflict says no")),
    "nested-pass&(fail|pass)": (lambda: Yes & (Teapot | Yes), AllOf, None),
    "nested-fail|(pass&fail)": (lambda: Teapot | (Yes & Conflict), AnyOf, (418, "Teapot says no")),
    "double-negation": (lambda: ~~Teapot, Not, (403, "Forbidden")),
    "three-way-and": (lambda: Yes & Yes & Conflict & Teapot, AllOf, (409, "Conflict says no")),
}


@pytest.mark.parametrize("build,kind,expected", COMPOSITIONS.values(), ids=COMPOSITIONS.keys())
def test_composition(build, kind, expected):
    permission = build()
    assert isinstance(permission, kind)
    assert outcome(permission) == expected


def test_composition_repr():
    assert repr(IsAuthenticated & (IsStaff | ~IsSuperuser)) == "(IsAuthenticated() & (IsStaff() | ~IsSuperuser()))"
    assert repr(HasPermissions("chat.join_room")) == "HasPermissions('chat.join_room',)"


def test_not_with_its_own_status_and_detail():
    assert outcome(Not(Yes, status_code=404, detail="Hidden")) == (404, "Hidden")
    # Not decides by itself: even an anonymous user gets its status, not a 401
    assert outcome(Not(Yes, status_code=404, detail="Hidden"), ANON) == (404, "Hidden")


@pytest.mark.parametrize("other", [3, "IsStaff", None, object()], ids=["int", "str", "None", "object"])
def test_composing_with_a_non_permission_is_a_type_error(other):
    with pytest.raises(TypeError):
        IsStaff & other
    with pytest.raises(TypeError):
        other | IsStaff()
    with pytest.raises(TypeError):
        as_permission(other)


def test_as_permission():
    assert isinstance(as_permission(IsStaff), IsStaff)
    instance = IsStaff()
    assert as_permission(instance) is instance
    with pytest.raises(TypeError):
        as_permission(int)


def test_composites_check_objects_too():
    class NoObject(BasePermission):
        status_code = 404
        detail = "No such thing"

        def has_object_permission(self, scope, consumer, obj):
            return obj == "ok"

    assert (Yes & NoObject).check_object(AUTHED, None, "ok") is None
    assert (Yes & NoObject).check_object(AUTHED, None, "bad").status_code == 404
    assert (NoObject | Yes).check_object(AUTHED, None, "bad") is None
    assert (NoObject | NoObject).check_object(AUTHED, None, "bad").detail == "No such thing"
    assert (~NoObject).check_object(AUTHED, None, "bad") is None
    assert (~NoObject).check_object(AUTHED, None, "ok").status_code == 403


# --- requires_authentication ------------------------------------------------------------------

REQUIRES_AUTH = {
    "AllowAny": (AllowAny, False),
    "BasePermission": (BasePermission, False),
    "IsAuthenticated": (IsAuthenticated, True),
    "IsStaff": (IsStaff, True),
    "IsSuperuser": (IsSuperuser, True),
    "HasPermissions": (lambda: HasPermissions("chat.join_room"), True),
    "AllowAny&IsAuthenticated": (lambda: AllowAny & IsAuthenticated, True),
    "IsAuthenticated&AllowAny": (lambda: IsAuthenticated & AllowAny, True),
    "AllowAny|IsAuthenticated": (lambda: AllowAny | IsAuthenticated, False),
    "IsStaff|IsSuperuser": (lambda: IsStaff | IsSuperuser, True),
    "~IsAuthenticated": (lambda: ~IsAuthenticated, False),
    "nested": (lambda: (IsStaff | IsSuperuser) & AllowAny, True),
    "nested-any": (lambda: (IsStaff & AllowAny) | AllowAny, False),
}


@pytest.mark.parametrize("build,expected", REQUIRES_AUTH.values(), ids=REQUIRES_AUTH.keys())
def test_requires_authentication_propagates(build, expected):
    assert as_permission(build()).requires_authentication is expected


# --- default denials ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "permission,scope,expected",
    [
        (IsAuthenticated, ANON, (401, "Not authenticated")),
        (IsAuthenticated, scope_for(None, invalid=True), (401, "Invalid credentials")),
        (IsAuthenticated, AUTHED, None),
        (IsStaff, ANON, (401, "Not authenticated")),
        (IsStaff, AUTHED, (403, "Staff only")),
        (IsStaff, STAFF, None),
        (IsSuperuser, STAFF, (403, "Superusers only")),
        (IsSuperuser, scope_for(FakeUser(superuser=True)), None),
        (Teapot, ANON, (401, "Not authenticated")),  # a failing check for an anonymous user: log in first
        (Teapot, AUTHED, (418, "Teapot says no")),
        (AllowAny, ANON, None),
        (IsAuthenticated, {"type": "websocket"}, (401, "Not authenticated")),  # no user in the scope at all
    ],
    ids=["anon", "invalid-token", "authed", "staff-anon", "staff-authed", "staff-staff", "super-staff", "super-super", "custom-anon", "custom-authed", "allowany", "no-user-key"],
)
def test_default_denials(permission, scope, expected):
    assert outcome(permission, scope) == expected


def test_401_carries_www_authenticate():
    denial = IsAuthenticated().check(ANON, None)
    assert denial.headers == ((b"www-authenticate", b"Bearer"),)
    assert IsStaff().check(AUTHED, None).headers == ()


# --- Django permissions through the auth backends (database) ------------------------------------


@pytest.fixture
def users(demo_tokens):
    User = get_user_model()
    names = ("alice", "bob", "carol")
    found = {u.username: u for u in User.objects.filter(username__in=names)}
    found["root"] = User.objects.create(username="root", is_superuser=True, is_staff=True)
    found["anonymous"] = AnonymousUser()
    return found


HAS_PERMS_CASES = [
    ("alice", "chat.join_room", None),
    ("bob", "chat.join_room", (403, "Forbidden")),
    ("carol", "chat.join_room", (403, "Forbidden")),
    ("root", "chat.join_room", None),
    ("anonymous", "chat.join_room", (401, "Not authenticated")),
    ("alice", ["chat.join_room"], None),
    ("alice", ("chat.join_room", "chat.add_room"), (403, "Forbidden")),
    ("root", ("chat.join_room", "chat.add_room"), None),
    ("alice", "chat.nonexistent_perm", (403, "Forbidden")),
]


@pytest.mark.parametrize("username,perms,expected", HAS_PERMS_CASES, ids=[f"{u}-{p}" for u, p, _ in HAS_PERMS_CASES])
def test_has_permissions_via_groups(users, username, perms, expected):
    assert outcome(HasPermissions(perms), scope_for(users[username])) == expected


def test_has_permissions_detail(users):
    assert outcome(HasPermissions("chat.join_room", detail="Members only"), scope_for(users["bob"])) == (403, "Members only")


def test_inactive_member_has_no_permission(users):
    alice = users["alice"]
    alice.is_active = False
    assert not HasPermissions("chat.join_room").has_permission(scope_for(alice), None)


@pytest.mark.parametrize(
    "username,permission,expected",
    [
        ("carol", IsStaff, None),
        ("alice", IsStaff, (403, "Staff only")),
        ("root", IsSuperuser, None),
        ("carol", IsSuperuser, (403, "Superusers only")),
        ("alice", IsStaff | HasPermissions("chat.join_room"), None),
        ("bob", IsStaff | HasPermissions("chat.join_room"), (403, "Staff only")),
        ("carol", IsAuthenticated & ~IsStaff, (403, "Forbidden")),
        ("alice", IsAuthenticated & ~IsStaff, None),
    ],
    ids=["staff-carol", "staff-alice", "super-root", "super-carol", "staff-or-member-alice", "staff-or-member-bob", "not-staff-carol", "not-staff-alice"],
)
def test_staff_superuser_and_composites_with_real_users(users, username, permission, expected):
    assert outcome(permission, scope_for(users[username])) == expected


@pytest.mark.parametrize("perms", ["join_room", "", ["chat.join_room", 3], [None]], ids=["no-dot", "empty", "int", "None"])
def test_has_permissions_validates_names(perms):
    with pytest.raises(ValueError):
        HasPermissions(perms)


# --- object-level permissions through a test backend --------------------------------------------


@pytest.fixture
def object_backend(settings):
    settings.AUTHENTICATION_BACKENDS = BACKENDS
    settings.TEST_OPEN_ROOMS = ["lobby"]
    return settings


@pytest.mark.parametrize(
    "username,room,expected",
    [
        ("bob", "lobby", None),
        ("bob", "dev", (403, "Forbidden")),
        ("alice", "dev", (403, "Forbidden")),  # a global permission does not grant an object one
        ("anonymous", "lobby", (401, "Not authenticated")),
        ("root", "dev", None),  # superusers hold every permission
    ],
    ids=["listed", "unlisted", "global-perm-not-enough", "anonymous", "superuser"],
)
def test_object_level_permissions(users, object_backend, username, room, expected):
    permission = HasPermissions("chat.join_room", object_level=True)
    scope = scope_for(users[username])
    assert permission.check(scope, None) is None  # object-level only: the global check passes
    denial = permission.check_object(scope, None, Room.objects.get(name=room))
    assert (None if denial is None else (denial.status_code, denial.detail)) == expected


def test_object_backend_is_read_from_settings(users, object_backend):
    permission = HasPermissions("chat.join_room", object_level=True)
    dev = Room.objects.get(name="dev")
    assert permission.check_object(scope_for(users["bob"]), None, dev) is not None
    object_backend.TEST_OPEN_ROOMS = ["lobby", "dev"]
    assert permission.check_object(scope_for(users["bob"]), None, dev) is None


def test_global_permission_ignores_objects():
    permission = HasPermissions("chat.join_room")
    assert permission.has_object_permission(AUTHED, None, object()) is True


def test_permission_changes_take_effect_at_the_next_check(users):
    """Permission sets may be cached, but a group change is seen by the next handshake."""
    from django.contrib.auth.models import Group

    bob = users["bob"]
    permission = HasPermissions("chat.join_room")
    assert outcome(permission, scope_for(get_user_model().objects.get(pk=bob.pk))) == (403, "Forbidden")
    members = Group.objects.get(name="members")
    bob.groups.add(members)
    assert outcome(permission, scope_for(get_user_model().objects.get(pk=bob.pk))) is None
    members.user_set.remove(bob)
    assert outcome(permission, scope_for(get_user_model().objects.get(pk=bob.pk))) == (403, "Forbidden")
    alice = get_user_model().objects.get(username="alice")
    assert outcome(permission, scope_for(alice)) is None
    members.permissions.clear()
    assert outcome(permission, scope_for(get_user_model().objects.get(pk=alice.pk))) == (403, "Forbidden")
