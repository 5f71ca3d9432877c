"""A test-only object-permission backend (django-guardian stands in this role in real projects).

Grants ``chat.join_room`` on a :class:`~project.chat.models.Room` to any active,
authenticated user when the room's name is in ``settings.TEST_OPEN_ROOMS``; grants
nothing without an object, so global permissions stay the ModelBackend's business.
"""

from __future__ import annotations

from django.conf import settings

BACKEND = "tests.core.backends.RoomListBackend"
BACKENDS = ["django.contrib.auth.backends.ModelBackend", BACKEND]


class RoomListBackend:
    def authenticate(self, request, **credentials):
        return None

    def get_user(self, user_id):
        return None

    def has_perm(self, user_obj, perm, obj=None):
        from project.chat.models import Room

        if obj is None or not isinstance(obj, Room) or perm != "chat.join_room":
            return False
        if not (user_obj.is_active and user_obj.is_authenticated):
            return False
        return obj.name in getattr(settings, "TEST_OPEN_ROOMS", ())
