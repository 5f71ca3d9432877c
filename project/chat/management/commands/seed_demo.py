"""Create the demo's users, group, rooms and bearer tokens (idempotent; tokens are re-issued)."""

import json
import secrets

from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group, Permission
from django.core.management.base import BaseCommand
from django.db import transaction

from project.chat.models import Room
from wsreject.models import AccessToken
from wsreject.tokens import issue_token

USERS = {
    # username: (staff, active, in group "members")
    "alice": (False, True, True),
    "bob": (False, True, False),
    "carol": (True, True, False),
    "dave": (False, False, True),  # inactive: his token is refused
}


class Command(BaseCommand):
    help = "Create users alice, bob, carol (and inactive dave), group members, rooms lobby and dev; print a bearer token per user."

    def add_arguments(self, parser):
        parser.add_argument("--json", action="store_true", help="print {username: token} as JSON")
        parser.add_argument("--password", default="", help="also give every demo user this password (for the admin)")
        parser.add_argument("--admin", action="store_true", help="(re)create superuser 'admin' with a new random password")

    @transaction.atomic
    def handle(self, *args, **options):
        User = get_user_model()
        members, _ = Group.objects.get_or_create(name="members")
        members.permissions.add(Permission.objects.get(content_type__app_label="chat", codename="join_room"))
        for name in ("lobby", "dev"):
            Room.objects.get_or_create(name=name, defaults={"title": name.title()})
        tokens = {}
        for username, (staff, active, member) in USERS.items():
            user, _ = User.objects.get_or_create(username=username)
            user.is_staff, user.is_active = staff, active
            if options["password"]:
                user.set_password(options["password"])
            elif not user.has_usable_password():
                user.set_unusable_password()
            user.save()
            if member:
                user.groups.add(members)
            AccessToken.objects.filter(user=user, name="demo").delete()
            tokens[username] = issue_token(user, name="demo")[1]
        # A token whose user no longer exists (the conformance suite's "deleted user" case).
        ghost, _ = User.objects.get_or_create(username="erin")
        tokens["erin"] = issue_token(ghost, name="demo")[1]
        ghost.delete()
        admin_password = None
        if options["admin"]:
            admin_password = secrets.token_urlsafe(12)
            admin, _ = User.objects.get_or_create(username="admin")
            admin.is_staff = admin.is_superuser = admin.is_active = True
            admin.set_password(admin_password)
            admin.save()
        if options["json"]:
            self.stdout.write(json.dumps(tokens))
            return
        for username, token in tokens.items():
            note = {"dave": " (inactive)", "erin": " (user deleted)"}.get(username, "")
            self.stdout.write(f"{username:6} Authorization: Bearer {token}{note}")
        if admin_password:
            self.stdout.write(f"admin  password: {admin_password} (Django admin at /admin/)")
