"""The README's "Testing your consumers" example runs as printed.

The fenced ``python`` block after the heading ``### Testing your consumers`` is written to a
test module of its own, outside this suite (none of its fixtures or conftest files apply),
and run by pytest in a subprocess with this repository's pytest configuration and Django
settings (``project.settings``). So the snippet must bring its own imports, fixtures and
markers, as a reader's copy would have to.

The runner itself is checked with a self-contained snippet that must pass and a broken one
that must fail, so a red README test means the README, not the harness.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from tests.support.servers import REPO_ROOT

HEADING = "### Testing your consumers"


def snippet_after(markdown: str, heading: str) -> str:
    """The first fenced ``python`` block after ``heading``, before the next heading."""
    lines = markdown.splitlines()
    try:
        start = next(i for i, line in enumerate(lines) if line.strip() == heading)
    except StopIteration:
        raise AssertionError(f"README.md has no heading {heading!r}") from None
    block: list[str] | None = None
    for line in lines[start + 1 :]:
        if block is None:
            if line.startswith("#"):
                break  # the next section began: no example in this one
            if line.strip() == "```python":
                block = []
            continue
        if line.strip() == "```":
            return "\n".join(block) + "\n"
        block.append(line)
    raise AssertionError(f"no complete ```python block after {heading!r} in README.md")


def run_snippet(code: str, directory: Path) -> subprocess.CompletedProcess[str]:
    """Run ``code`` as a pytest module with the repository's configuration; the finished process."""
    module = directory / "test_readme_snippet.py"
    module.write_text(code)
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "project.settings",
        "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO_ROOT), os.environ.get("PYTHONPATH")])),
    }
    command = [
        sys.executable, "-m", "pytest", str(module),
        "-c", str(REPO_ROOT / "pyproject.toml"), "--rootdir", str(REPO_ROOT),
        "-p", "no:cacheprovider", "-q", "-rA", "--no-header",
    ]  # fmt: skip
    return subprocess.run(command, cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=300)


def outcome(result: subprocess.CompletedProcess[str]) -> dict[str, int]:
    """Counts from pytest's summary line: {"passed": 1, "failed": 0, ...}."""
    summary = result.stdout.strip().splitlines()[-1] if result.stdout.strip() else ""
    return {word: int(count) for count, word in re.findall(r"(\d+) (passed|failed|errors?|skipped|xfailed|xpassed)", summary)}


def assert_passes(result: subprocess.CompletedProcess[str]) -> None:
    counts = outcome(result)
    report = f"exit {result.returncode}\n--- stdout ---\n{result.stdout[-6000:]}\n--- stderr ---\n{result.stderr[-3000:]}"
    assert result.returncode == 0, report
    assert counts.get("passed", 0) >= 1 and set(counts) == {"passed"}, f"{counts}\n{report}"


def test_readme_testing_example_runs_as_printed(tmp_path):
    code = snippet_after((REPO_ROOT / "README.md").read_text(encoding="utf-8"), HEADING)
    assert "HandshakeCommunicator" in code
    assert_passes(run_snippet(code, tmp_path))


# --- the harness --------------------------------------------------------------------------------

SELF_CONTAINED = '''
import pytest
from django.contrib.auth import get_user_model

from project.asgi import application
from wsreject.authentication.tokens import issue_token
from wsreject.testing import HandshakeCommunicator


@pytest.fixture
def bob_token(transactional_db):
    bob = get_user_model().objects.create_user("bob")
    return issue_token(bob)[1]


async def test_lobby_needs_permission(bob_token):
    communicator = HandshakeCommunicator(application, "/ws/rooms/lobby/",
                                         headers=[(b"authorization", f"Bearer {bob_token}".encode())])
    result = await communicator.handshake()
    assert not result.accepted
    assert result.status_code == 403
    assert result.json() == {"detail": "Not allowed to join this room"}
'''


def test_extraction_takes_the_block_of_the_section():
    markdown = textwrap.dedent(
        """\
        ### Earlier
        ```python
        earlier = True
        ```
        ### Testing your consumers

        Some text.

        ```python
        first = 1
          indented = 2
        ```

        ```python
        second = 2
        ```
        ### Later
        """
    )
    assert snippet_after(markdown, HEADING) == "first = 1\n  indented = 2\n"
    with pytest.raises(AssertionError, match="no complete"):
        snippet_after("### Testing your consumers\ntext\n### Next\n```python\nx = 1\n```\n", HEADING)
    with pytest.raises(AssertionError, match="no heading"):
        snippet_after("# nothing here\n", HEADING)


def test_a_self_contained_snippet_passes(tmp_path):
    assert_passes(run_snippet(SELF_CONTAINED, tmp_path))


def test_a_snippet_that_leans_on_missing_fixtures_fails(tmp_path):
    broken = SELF_CONTAINED.replace("@pytest.fixture\ndef bob_token", "def not_a_fixture")
    result = run_snippet(broken, tmp_path)
    assert result.returncode != 0
    assert "fixture 'bob_token' not found" in result.stdout
