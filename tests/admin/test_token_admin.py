"""Bearer tokens issued and revoked in the admin: the secret is shown once, never stored."""

import re

import pytest
from django.contrib.auth import get_user_model

from tests.admin.conftest import connect
from wsreject.authentication.tokens import digest
from wsreject.models import AccessToken

pytestmark = pytest.mark.django_db(transaction=True)


def issue(admin_browser, username: str) -> str:
    user = get_user_model().objects.get(username=username)
    response = admin_browser.post(
        "/admin/wsreject/accesstoken/add/", {"user": user.pk, "name": "from the admin"}, follow=True
    )
    assert response.status_code == 200
    text = " ".join(str(m) for m in response.context["messages"])
    match = re.search(r"Token issued for \S+: (\S+) ", text)
    assert match, text
    return match.group(1)


def test_issued_token_authenticates_and_only_its_digest_is_stored(admin_browser):
    secret = issue(admin_browser, "alice")
    row = AccessToken.objects.get(name="from the admin")
    assert row.digest == digest(secret) and secret not in (row.digest, row.prefix)
    result = connect("/ws/private/", secret)
    assert result.accepted


def test_revoking_in_the_admin_holds_at_the_next_handshake(admin_browser):
    secret = issue(admin_browser, "alice")
    row = AccessToken.objects.get(name="from the admin")
    response = admin_browser.post(f"/admin/wsreject/accesstoken/{row.pk}/delete/", {"post": "yes"})
    assert response.status_code == 302
    result = connect("/ws/private/", secret)
    assert not result.accepted
    assert (result.status_code, result.json()) == (401, {"detail": "Invalid credentials"})


def test_tokens_cannot_be_edited(admin_browser):
    issue(admin_browser, "alice")
    row = AccessToken.objects.get(name="from the admin")
    bob = get_user_model().objects.get(username="bob")
    admin_browser.post(f"/admin/wsreject/accesstoken/{row.pk}/change/", {"user": bob.pk, "name": "stolen"})
    row.refresh_from_db()
    assert row.user.username == "alice" and row.name == "from the admin"
    page = admin_browser.get("/admin/wsreject/accesstoken/")
    assert row.prefix in page.content.decode() and digest("x")[:10] not in page.content.decode()
