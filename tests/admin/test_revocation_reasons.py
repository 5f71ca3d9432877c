"""The ``reason`` label of ``wsreject_revocations_total`` is one of a fixed set, whatever the
denial says (its detail never becomes a label)."""

from __future__ import annotations

import pytest

from wsreject.denial import DenyHandshake
from wsreject.metrics import REVOCATION_REASONS, revocation_reason


@pytest.mark.parametrize(
    ("status", "detail", "reason"),
    [
        (401, "Token expired", "credential_expired"),
        (401, "Invalid credentials", "credential_revoked"),
        (401, "Not authenticated", "credential_revoked"),
        (403, "Not allowed to join this room", "not_allowed"),
        (503, "Closed for maintenance", "endpoint_disabled"),
        (404, "No such room", "other"),
        (429, None, "other"),
    ],
)
def test_reasons_come_from_the_status(status, detail, reason):
    assert revocation_reason(DenyHandshake(status, detail)) == reason
    assert reason in REVOCATION_REASONS
