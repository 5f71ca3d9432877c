"""The example runner itself: a page whose example raises or whose promise fails must fail."""

from __future__ import annotations

import re
import sys
import textwrap
from pathlib import Path

import pytest
from django.core.management.base import CommandError

from .examples import parse_blocks, run_page, slug

FENCE = "```"


def page(tmp_path: Path, *blocks: str, name: str = "page.md") -> Path:
    """A Markdown page made of ``blocks``, each ``"info\\ncode"``."""
    parts = ["# A page", ""]
    for block in blocks:
        info, _, code = block.partition("\n")
        parts += [f"{FENCE}{info}", textwrap.dedent(code).rstrip("\n"), FENCE, ""]
    path = tmp_path / name
    path.write_text("\n".join(parts), encoding="utf-8")
    return path


def test_blocks_are_found_with_their_line_and_options(tmp_path):
    path = page(tmp_path, "python\nx = 1", "console\n$ ls", "python expect=wsreject.W012\ny = 2")
    blocks = parse_blocks(path)
    assert [(b.lang, b.line, b.options, b.code) for b in blocks] == [
        ("python", 4, {}, "x = 1\n"),
        ("console", 8, {}, "$ ls\n"),
        ("python", 12, {"expect": "wsreject.W012"}, "y = 2\n"),
    ]


def test_a_failing_assertion_fails_and_names_the_line(tmp_path):
    path = page(tmp_path, "python\nx = 1", "python\nassert x == 2, 'the page promised 2'")
    with pytest.raises(AssertionError, match="the page promised 2") as info:
        run_page(path, tmp_path)
    assert any("page.md:8" in note for note in info.value.__notes__)
    assert any(entry.lineno + 1 == 8 and str(entry.path) == str(path) for entry in info.traceback)  # 0-based


def test_an_exception_fails(tmp_path):
    path = page(tmp_path, "python\nraise LookupError('boom')")
    with pytest.raises(LookupError, match="boom"):
        run_page(path, tmp_path)


def test_blocks_share_a_namespace_and_may_await(tmp_path):
    path = page(
        tmp_path,
        "python\nimport asyncio\nasync def double(x):\n    await asyncio.sleep(0)\n    return 2 * x",
        "python\nresult = await double(21)",
        "python\nassert result == 42",
        "python\nassert result == 43",
    )
    with pytest.raises(AssertionError):
        run_page(path, tmp_path)


def test_an_awaited_failure_fails(tmp_path):
    path = page(tmp_path, "python\nimport asyncio\nawait asyncio.sleep(0)\nassert False, 'async promise'")
    with pytest.raises(AssertionError, match="async promise"):
        run_page(path, tmp_path)


def test_file_blocks_are_importable_and_forgotten_after_the_page(tmp_path):
    path = page(
        tmp_path,
        "python\n# shop/helpers.py\nANSWER = 42",
        "python\nfrom shop.helpers import ANSWER as imported\nassert imported == ANSWER == 42",
    )
    run_page(path, tmp_path)
    assert "shop.helpers" not in sys.modules and "shop" not in sys.modules


def test_a_file_named_like_an_installed_package_is_refused(tmp_path):
    path = page(tmp_path, "python\n# django/helpers.py\nX = 1")
    with pytest.raises(AssertionError, match="installed package"):
        run_page(path, tmp_path)


def test_settings_fragments_are_checked(tmp_path):
    run_page(page(tmp_path, 'python\nWSREJECT = {"DENIAL_MODE": "close_code"}'), tmp_path)
    with pytest.raises(AssertionError, match=r"wsreject\.E002"):
        run_page(page(tmp_path, 'python\nWSREJECT = {"DENIAL_MODE": "closecode"}'), tmp_path)
    run_page(page(tmp_path, 'python expect=wsreject.E002\nWSREJECT = {"DENIAL_MODE": "closecode"}'), tmp_path)


def test_installed_apps_order_is_checked(tmp_path):
    with pytest.raises(AssertionError, match=r"wsreject\.W010"):
        run_page(page(tmp_path, 'python\nINSTALLED_APPS = ["daphne", "wsreject", ...]'), tmp_path)
    with pytest.raises(AssertionError, match="staticfiles"):
        run_page(page(tmp_path, 'python\nINSTALLED_APPS = ["wsreject", "django.contrib.staticfiles", "daphne"]'), tmp_path)
    with pytest.raises(AssertionError, match="cannot be imported"):
        run_page(page(tmp_path, 'python\nINSTALLED_APPS = ["wsreject", "no_such_app"]'), tmp_path)


def test_applications_are_checked(tmp_path):
    code = """python
    from channels.routing import URLRouter
    from channels.security.websocket import AllowedHostsOriginValidator
    from wsreject.middleware import DenialMiddlewareStack
    application = AllowedHostsOriginValidator(DenialMiddlewareStack(URLRouter([])))
    """
    with pytest.raises(AssertionError, match=r"wsreject\.W012"):
        run_page(page(tmp_path, code), tmp_path)
    run_page(page(tmp_path, code.replace("python", "python expect=wsreject.W012", 1)), tmp_path)


def test_manage_py_commands_are_parsed(tmp_path):
    run_page(page(tmp_path, "console\n$ python manage.py wsreject_probe ws://127.0.0.1:8000/ws/ --json\n{}"), tmp_path)
    with pytest.raises(AssertionError, match=re.escape("no 'manage.py wsreject_prob' command")):
        run_page(page(tmp_path, "console\n$ python manage.py wsreject_prob ws://127.0.0.1:8000/"), tmp_path)
    with pytest.raises(CommandError):
        run_page(page(tmp_path, "bash\npython manage.py wsreject_probe ws://127.0.0.1:8000/ --no-such-option"), tmp_path)
    with pytest.raises(AssertionError, match="no extra"):
        run_page(page(tmp_path, 'console\n$ pip install "wsreject[dapne]"'), tmp_path)
    with pytest.raises(AssertionError, match="no module"):
        run_page(page(tmp_path, "console\n$ python -m wsreject.dafne"), tmp_path)


def test_blocks_need_a_language(tmp_path):
    with pytest.raises(AssertionError, match="language"):
        run_page(page(tmp_path, "\nprint('which language?')"), tmp_path)


def test_github_anchors():
    assert slug("Changing the answer: `handle_no_permission`") == "changing-the-answer-handle_no_permission"
    assert slug("Why `AllowedHostsOriginValidator` must go") == "why-allowedhostsoriginvalidator-must-go"
