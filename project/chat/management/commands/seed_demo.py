"""Create the demo's users, group, rooms and credentials (idempotent; tokens are re-issued).

Each user gets a wsreject bearer token (``Authorization: Bearer wsr_...``) and a
DRF token (``Authorization: Token ...``); with ``--password`` they can also log in
to the demo page and obtain JWTs from ``/api/token/``.
"""

import json
import secrets

from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group, Permission
from django.core.management.base import BaseCommand
from django.db import transaction
from rest_framework.authtoken.models import Token

from project.chat.models import Room
from wsreject.authentication.tokens import issue_token
from wsreject.models import AccessToken

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
        parser.add_argument(
            "--password",
            default="",
            help="also give every demo user this password (log in, /api/token/); 'random' makes one up and prints it",
        )
        parser.add_argument("--admin", action="store_true", help="(re)create superuser 'admin' with a new random password")

    @transaction.atomic
    def handle(self, *args, **options):
        User = get_user_model()
        members, _ = Group.objects.get_or_create(name="members")
        members.permissions.add(Permission.objects.get(content_type__app_label="chat", codename="join_room"))
        for name in ("lobby", "dev"):
            Room.objects.get_or_create(name=name, defaults={"title": name.title()})
        tokens = {}
        drf_tokens = {}
        password = options["password"]
        if password == "random":
            password = secrets.token_urlsafe(9)
        for username, (staff, active, member) in USERS.items():
            user, _ = User.objects.get_or_create(username=username)
            user.is_staff, user.is_active = staff, active
            if password:
                user.set_password(password)
            elif not user.has_usable_password():
                user.set_unusable_password()
            user.save()
            if member:
                user.groups.add(members)
            AccessToken.objects.filter(user=user, name="demo").delete()
            tokens[username] = issue_token(user, name="demo")[1]
            Token.objects.filter(user=user).delete()
            drf_tokens[username] = Token.objects.create(user=user).key
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
            if username in drf_tokens:
                self.stdout.write(f"{'':6} Authorization: Token {drf_tokens[username]}  (DRF)")
        if password and options["password"] == "random":
            self.stdout.write(f"alice, bob, carol, dave password: {password} (log in at /accounts/login/, JWTs at /api/token/)")
        if admin_password:
            self.stdout.write(f"admin  password: {admin_password} (Django admin at /admin/)")
