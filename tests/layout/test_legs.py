"""CI's two legs run the ``one_leg`` tests once: that is sound only while the locks differ in
nothing those tests exercise besides the interpreter."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
#: Packages allowed to differ between requirements.lock (Python 3.11) and requirements-django6.lock:
#: Django (the reason for the second leg), type stubs, the bench chart's numerics, and a backport
#: that only Python 3.11 needs.
MAY_DIFFER = {"django", "django-stubs", "djangorestframework-stubs", "numpy", "contourpy", "async-timeout"}


def pins(lock: Path) -> dict[str, str]:
    found = {}
    for line in lock.read_text().splitlines():
        if match := re.match(r"^([A-Za-z0-9_.\-]+)==(\S+)", line):
            found[match[1].lower().replace("_", "-")] = match[2]
    return found


def test_the_locks_differ_only_where_the_second_leg_is_needed():
    first, second = ROOT / "requirements.lock", ROOT / "requirements-django6.lock"
    assert first.exists() and second.exists(), "./dev stages the locks beside the suite (everything but wsreject/)"
    a, b = pins(first), pins(second)
    differ = {name for name in a.keys() | b.keys() if a.get(name) != b.get(name)}
    assert "django" in differ, "the second leg exists for another Django"
    assert differ <= MAY_DIFFER, f"one_leg tests assume the legs share these pins: {sorted(differ - MAY_DIFFER)}"
