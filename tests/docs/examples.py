"""Find and run the code blocks of ``docs/*.md``: every example in the documentation is executed.

Conventions for page authors
============================

Every fenced block (```` ``` ````) names its language; a block without one fails.

``python`` — executed, with Django set up (``project.settings``, a test database), each page's
blocks in order in one namespace: a page can define a consumer in one block, create a user in the
next and connect in a third. An ``assert`` in a block is a promise of the page: when it fails, the
test fails, as it does when a block raises. Passwords are hashed with a fast hasher, as Django
advises for tests.

* **Top-level ``await``** makes a block asynchronous (as in ``python -m asyncio``): it is compiled
  with ``PyCF_ALLOW_TOP_LEVEL_AWAIT`` and run with ``async_to_sync``, so what it touches through
  ``database_sync_to_async`` sees the test database. The names it defines stay in the namespace.
  Keep the ORM in synchronous blocks.
* **A file**: a block whose first line is ``# some/path/module.py`` is that file. It runs as the
  module ``some.path.module``, importable by later blocks (``from chat.consumers import
  RoomConsumer``), and its names join the page namespace too. ``…/asgi.py`` becomes
  ``ASGI_APPLICATION`` and ``…/urls.py`` ``ROOT_URLCONF`` for the rest of the page. In every page
  ``chat.models`` is the demo's ``project.chat.models`` (the ``Room`` model, the
  ``chat.join_room`` permission), so examples can be written as in a project with a ``chat`` app.
  A file named like a package that is really installed fails (pick another name).
* **Settings**: ``# …/settings.py``, or any block made only of imports and UPPERCASE
  assignments, is a settings fragment. It runs in a namespace of its own (its UPPERCASE names are
  then copied to the page namespace, never into Django's settings) and is validated:
  wsreject's system checks run under ``override_settings`` with its values (and ``DEBUG =
  True`` unless it sets ``DEBUG``); ``INSTALLED_APPS`` is
  checked for importable entries (``...`` allowed) and the order (``wsreject`` before ``daphne``
  before ``django.contrib.staticfiles``); ``LOGGING`` must be accepted by ``dictConfig``.
  ``wsreject.W025`` (throttle counters in a shared local-memory cache) counts only for a
  fragment that sets ``CACHES`` or ``THROTTLE_CACHE``: otherwise it is about the reader's caches.
* **A test module**: ``# …/test_*.py`` is written to a temporary directory and run by pytest in a
  subprocess, with the options of the page's last ``[tool.pytest.ini_options]`` TOML block
  before it (``DJANGO_SETTINGS_MODULE`` pointed at the demo's settings): at least one test, and
  every test, must pass.
* **Checks**: after a settings fragment, and after any block that assigns ``application``,
  wsreject's system checks run (for ``application``: with it as ``ASGI_APPLICATION``). The
  ``wsreject.*`` messages at Warning level or above must be exactly those the block's info
  string lists — ```` ```python expect=wsreject.W012 ```` — by default none.

``console`` / ``bash`` / ``shell`` — not executed (lines starting with ``$`` are the commands in
``console``). Every ``manage.py`` command in them must exist and accept the arguments shown
(parsed, never run), every ``python -m MODULE`` must be importable, and every ``pip install
"wsreject[EXTRA]"`` must name extras that ``pyproject.toml`` defines.

``json``, ``toml``, ``ini`` — must parse. ``javascript``, ``html``, ``text``, ``http`` — shown only.
"""

from __future__ import annotations

import ast
import configparser
import contextlib
import importlib
import importlib.util
import inspect
import json
import logging
import logging.config
import os
import re
import shlex
import subprocess
import sys
import tomllib
import types
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from asgiref.sync import async_to_sync
from django.core import checks
from django.core.management import get_commands, load_command_class
from django.test import override_settings
from django.utils.module_loading import import_string

REPO = Path(__file__).resolve().parents[2]
DOCS = REPO / "docs"

#: Languages whose blocks are executed or checked, and those only shown.
PYTHON = "python"
SHELL_LANGUAGES = {"console", "bash", "shell", "sh"}
PARSED_LANGUAGES = {"json", "toml", "ini"}
SHOWN_LANGUAGES = {"javascript", "js", "html", "text", "http"}
LANGUAGES = {PYTHON} | SHELL_LANGUAGES | PARSED_LANGUAGES | SHOWN_LANGUAGES

#: As Django advises for tests: password checks in examples must not be slow enough to time out.
FAST_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]

#: Modules every page may import under a project's names.
ALIASES = {"chat.models": "project.chat.models"}

_FENCE = re.compile(r"^( {0,3})(`{3,})\s*([^`]*)$")
_FILE_HEADER = re.compile(r"^#\s*([\w./-]+\.py)\s*$")
_SETTING_NAME = re.compile(r"^[A-Z][A-Z0-9_]*$")


@dataclass
class Block:
    """One fenced code block of a page."""

    page: Path
    line: int  # 1-based line of the block's first code line
    lang: str
    options: dict[str, str] = field(default_factory=dict)
    code: str = ""

    @property
    def where(self) -> str:
        return f"{self.page.relative_to(REPO) if self.page.is_relative_to(REPO) else self.page}:{self.line}"

    @property
    def file(self) -> str | None:
        """The path named by a ``# path/to/file.py`` first line, if any."""
        first = self.code.split("\n", 1)[0]
        match = _FILE_HEADER.match(first.strip())
        return match.group(1) if match else None

    @property
    def expected(self) -> set[str]:
        value = self.options.get("expect", "")
        return {item for item in value.split(",") if item}

    def source(self) -> str:
        """The code, shifted so that tracebacks name the page's own line numbers."""
        return "\n" * (self.line - 1) + self.code


def parse_blocks(page: Path) -> list[Block]:
    """Every fenced block of ``page``, in order."""
    blocks: list[Block] = []
    lines = page.read_text(encoding="utf-8").split("\n")
    index = 0
    while index < len(lines):
        match = _FENCE.match(lines[index])
        if match is None:
            index += 1
            continue
        indent, fence, info = match.groups()
        words = info.split()
        lang = words[0].lower() if words else ""
        options = dict(word.split("=", 1) if "=" in word else (word, "") for word in words[1:])
        start = index + 1
        end = start
        while end < len(lines) and not (lines[end].strip().startswith(fence) and lines[end].strip().strip("`") == ""):
            end += 1
        if end == len(lines):
            raise AssertionError(f"{page}:{index + 1}: unclosed code block")
        code_lines = [line[len(indent) :] if line.startswith(indent) else line.lstrip() for line in lines[start:end]]
        blocks.append(Block(page, start + 1, lang, options, "\n".join(code_lines) + "\n"))
        index = end + 1
    return blocks


# --- python blocks ---------------------------------------------------------------------------


def is_settings_fragment(block: Block) -> bool:
    """A ``settings.py`` file, or only imports and UPPERCASE assignments."""
    file = block.file
    if file is not None:
        return Path(file).name == "settings.py"
    tree = ast.parse(block.code)
    assigned = False
    for node in tree.body:
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            continue
        if isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant) and isinstance(node.value.value, str):
            continue
        targets = node.targets if isinstance(node, ast.Assign) else [node.target] if isinstance(node, ast.AnnAssign) else None
        if targets is None or not all(isinstance(t, ast.Name) and _SETTING_NAME.match(t.id) for t in targets):
            return False
        assigned = True
    return assigned


def assigns(block: Block, name: str) -> bool:
    """Whether the block binds ``name`` at top level (assignment, import, def or class)."""
    bound: set[str] = set()
    for node in ast.parse(block.code).body:
        if isinstance(node, (ast.Assign, ast.AnnAssign, ast.AugAssign)):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            bound |= {target.id for target in targets if isinstance(target, ast.Name)}
        elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            bound.add(node.name)
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            bound |= {alias.asname or alias.name for alias in node.names}
    return name in bound


def execute(block: Block, namespace: dict[str, Any]) -> None:
    """Run the block's code in ``namespace``; top-level ``await`` runs it in an event loop."""
    code = compile(block.source(), str(block.page), "exec", flags=ast.PyCF_ALLOW_TOP_LEVEL_AWAIT, dont_inherit=True)
    if code.co_flags & inspect.CO_COROUTINE:

        async def run() -> None:
            await eval(code, namespace)

        async_to_sync(run)()
    else:
        exec(code, namespace)


def wsreject_check_ids(**settings: Any) -> set[str]:
    """Ids of the ``wsreject.*`` system check messages at Warning level or above, with ``settings``.

    The checks run as in development (``DEBUG = True``; pytest-django turns it off) unless
    ``settings`` say otherwise.
    """
    with override_settings(**{"DEBUG": True, **settings}):
        messages = checks.run_checks()
    return {m.id for m in messages if m.id and m.id.startswith("wsreject.") and m.level >= checks.WARNING}


def check_application(application: Any) -> set[str]:
    """wsreject's check ids with ``application`` as ``ASGI_APPLICATION``."""
    holder = types.ModuleType("wsreject_docs_application")
    holder.application = application  # type: ignore[attr-defined]
    sys.modules[holder.__name__] = holder
    try:
        return wsreject_check_ids(ASGI_APPLICATION=f"{holder.__name__}.application")
    finally:
        del sys.modules[holder.__name__]


@contextlib.contextmanager
def preserved_logging() -> Iterator[None]:
    """Undo what ``dictConfig`` does to existing loggers (levels, handlers, propagation)."""
    manager = logging.Logger.manager
    names = [None, *list(manager.loggerDict)]
    saved = {}
    for name in names:
        logger = logging.getLogger(name)
        saved[name] = (logger.level, list(logger.handlers), logger.propagate, logger.disabled, list(logger.filters))
    try:
        yield
    finally:
        for name in [None, *list(manager.loggerDict)]:
            logger = logging.getLogger(name)
            if name in saved:
                logger.level, handlers, logger.propagate, logger.disabled, filters = saved[name]
                logger.handlers[:] = handlers
                logger.filters[:] = filters
            else:
                logger.handlers.clear()


def importable(entry: str) -> bool:
    """An ``INSTALLED_APPS`` entry: a module, or the dotted path of an ``AppConfig``."""
    try:
        importlib.import_module(entry)
        return True
    except ImportError:
        try:
            import_string(entry)
            return True
        except ImportError:
            return False


def validate_settings(values: dict[str, Any]) -> set[str]:
    """Check a settings fragment; return wsreject's check ids it produces."""
    values = dict(values)
    ids: set[str] = set()
    installed = values.pop("INSTALLED_APPS", None)
    if installed is not None:
        from wsreject.daphne.checks import daphne_order_warnings

        names = [entry for entry in installed if entry is not Ellipsis]
        missing = [entry for entry in names if not importable(entry)]
        assert not missing, f"INSTALLED_APPS lists apps that cannot be imported: {missing}"
        ids |= {message.id for message in daphne_order_warnings(names) if message.id}
        if "daphne" in names and "django.contrib.staticfiles" in names:
            assert names.index("daphne") < names.index("django.contrib.staticfiles"), (
                "'daphne' must come before 'django.contrib.staticfiles' (whose runserver it replaces)"
            )
    config = values.pop("LOGGING", None)
    if config is not None:
        with preserved_logging():
            logging.config.dictConfig(config)
    return ids | wsreject_check_ids(**values)


def fragment_ids(values: dict[str, Any]) -> set[str]:
    """What a settings fragment is answerable for: all its check ids, but ``wsreject.W025``
    (throttle counters in a shared local-memory cache) only when it configures caches or
    ``THROTTLE_CACHE`` — otherwise that warning is about the reader's ``CACHES``, not the fragment."""
    ids = validate_settings(values)
    wsreject = values.get("WSREJECT")
    configures_throttles = "CACHES" in values or (isinstance(wsreject, dict) and "THROTTLE_CACHE" in wsreject)
    return ids if configures_throttles else ids - {"wsreject.W025"}


def assert_checks(block: Block, ids: set[str]) -> None:
    expected = block.expected
    assert ids == expected, (
        f"{block.where}: wsreject's system checks report {sorted(ids) or 'nothing'}, "
        f"the block expects {sorted(expected) or 'nothing'} (```python expect=...)"
    )


class Page:
    """The state of one page while its blocks run: namespace, modules, settings in force."""

    def __init__(self, path: Path, tmp_path: Path, stack: ExitStack) -> None:
        self.path = path
        self.tmp_path = tmp_path
        self.stack = stack
        self.namespace: dict[str, Any] = {"__name__": f"docs_{path.stem}"}
        self.pytest_options: dict[str, Any] | None = None
        self.packages = {"chat"}  # top-level packages the examples' files may define

    # modules ---------------------------------------------------------------------------------

    def module_name(self, block: Block, file: str) -> str:
        name = file.removesuffix(".py").replace("/", ".")
        top = name.split(".")[0]
        if top not in self.packages:
            assert top not in sys.modules and importlib.util.find_spec(top) is None, (
                f"{block.where}: '{top}' is an installed package: name the example's file differently"
            )
            self.packages.add(top)
        return name

    def package(self, name: str) -> types.ModuleType:
        module = sys.modules.get(name)
        if module is None:
            module = types.ModuleType(name)
            module.__path__ = []
            sys.modules[name] = module
            parent, _, leaf = name.rpartition(".")
            if parent:
                setattr(self.package(parent), leaf, module)
        return module

    def run_module(self, block: Block, file: str) -> None:
        name = self.module_name(block, file)
        parent, _, leaf = name.rpartition(".")
        module = types.ModuleType(name)
        module.__file__ = str(block.page)
        if parent:
            module.__package__ = parent
            setattr(self.package(parent), leaf, module)
        sys.modules[name] = module
        execute(block, module.__dict__)
        self.namespace.update({key: value for key, value in vars(module).items() if not key.startswith("__")})
        if leaf == "urls":
            self.stack.enter_context(override_settings(ROOT_URLCONF=name))
        if leaf == "asgi":
            assert hasattr(module, "application"), f"{block.where}: an asgi.py without 'application'"
            self.stack.enter_context(override_settings(ASGI_APPLICATION=f"{name}.application"))

    # blocks ----------------------------------------------------------------------------------

    def run_python(self, block: Block) -> None:
        file = block.file
        if is_settings_fragment(block):
            values: dict[str, Any] = {}
            execute(block, values)
            settings = {key: value for key, value in values.items() if _SETTING_NAME.match(key)}
            assert_checks(block, fragment_ids(settings))
            self.namespace.update(settings)  # later blocks may refer to the values shown
            return
        if file is not None and Path(file).name.startswith("test_"):
            self.run_test_module(block, Path(file).name)
            return
        if file is not None:
            self.run_module(block, file)
            application = sys.modules[self.module_name(block, file)].__dict__.get("application")
        else:
            execute(block, self.namespace)
            application = self.namespace.get("application")
        if assigns(block, "application"):
            assert_checks(block, check_application(application))
        else:
            assert not block.expected, f"{block.where}: expect= on a block that defines no application or settings"

    def run_test_module(self, block: Block, filename: str) -> None:
        assert self.pytest_options is not None, f"{block.where}: no [tool.pytest.ini_options] block before the test module"
        directory = self.tmp_path / f"line{block.line}"
        directory.mkdir()
        (directory / filename).write_text(block.code, encoding="utf-8")
        options = dict(self.pytest_options, DJANGO_SETTINGS_MODULE="project.settings")
        options["pythonpath"] = [str(REPO), *_as_list(options.get("pythonpath"))]
        ini = ["[pytest]"]
        for key, value in options.items():
            if isinstance(value, list):
                ini.append(f"{key} =" + "".join(f"\n    {item}" for item in value))
            else:
                ini.append(f"{key} = {str(value).lower() if isinstance(value, bool) else value}")
        (directory / "pytest.ini").write_text("\n".join(ini) + "\n", encoding="utf-8")
        env = {key: value for key, value in os.environ.items() if key not in ("DATABASE_URL", "REDIS_URL")}
        command = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-c", "pytest.ini", "--rootdir", ".", filename]
        result = subprocess.run(command, cwd=directory, env=env, capture_output=True, text=True, timeout=300)
        output = result.stdout + result.stderr
        assert result.returncode == 0, f"{block.where}: the test module fails under pytest:\n{output}"
        summary = output.strip().splitlines()[-1]
        assert re.search(r"\b\d+ passed\b", summary) and not re.search(r"skipped|xfail|xpass|deselected", summary), (
            f"{block.where}: expected every test to pass, pytest says: {summary}"
        )

    def run_block(self, block: Block) -> None:
        assert block.lang in LANGUAGES, f"{block.where}: give the block a language, one of {sorted(LANGUAGES)}"
        try:
            if block.lang == PYTHON:
                self.run_python(block)
            elif block.lang in SHELL_LANGUAGES:
                for command in shell_commands(block):
                    check_command(block, command)
            elif block.lang == "json":
                json.loads(block.code)
            elif block.lang == "toml":
                data = tomllib.loads(block.code)
                options = data.get("tool", {}).get("pytest", {}).get("ini_options")
                if options is not None:
                    self.pytest_options = options
            elif block.lang == "ini":
                configparser.ConfigParser().read_string(block.code)
        except BaseException as exc:
            exc.add_note(f"in the {block.lang} block at {block.where}")
            raise


def _as_list(value: Any) -> list[str]:
    if value is None:
        return []
    return [value] if isinstance(value, str) else list(value)


@contextlib.contextmanager
def page_environment(packages: set[str]) -> Iterator[None]:
    """The page's fake packages (``chat`` with its aliases, and those its files add) exist while it
    runs, and disappear with it. Real modules the examples import stay imported: importing them
    twice would give them two identities (and exception classes that no longer match)."""
    chat = types.ModuleType("chat")
    chat.__path__ = []
    sys.modules["chat"] = chat
    for alias, target in ALIASES.items():
        parent, _, leaf = alias.rpartition(".")
        module = importlib.import_module(target)
        sys.modules[alias] = module
        setattr(sys.modules[parent], leaf, module)
    try:
        yield
    finally:
        for name in [name for name in sys.modules if name.partition(".")[0] in packages]:
            del sys.modules[name]


def run_page(path: Path, tmp_path: Path) -> list[Block]:
    """Run every block of the page, in order; return them."""
    blocks = parse_blocks(path)
    with ExitStack() as stack:
        page = Page(path, tmp_path, stack)
        stack.enter_context(page_environment(page.packages))
        stack.enter_context(override_settings(PASSWORD_HASHERS=FAST_HASHERS))
        for block in blocks:
            page.run_block(block)
    return blocks


# --- shell blocks ----------------------------------------------------------------------------


def shell_commands(block: Block) -> list[list[str]]:
    """The simple commands of a console/bash block, as argument lists."""
    if block.lang == "console":
        lines = [line[1:].strip() for line in block.code.splitlines() if line.startswith("$")]
    else:
        joined = block.code.replace("\\\n", " ")
        lines = [line.strip() for line in joined.splitlines() if line.strip() and not line.strip().startswith("#")]
    commands: list[list[str]] = []
    for line in lines:
        lexer = shlex.shlex(line, posix=True, punctuation_chars=";&|")
        lexer.whitespace_split = True
        current: list[str] = []
        for token in lexer:
            if token and set(token) <= set(";&|"):
                commands.append(current)
                current = []
            else:
                current.append(token)
        commands.append(current)
    return [command for command in commands if command]


def _extras() -> set[str]:
    data = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))
    return set(data["project"]["optional-dependencies"])


def check_command(block: Block, command: list[str]) -> None:
    """What can be checked of a shell command without running it."""
    while command and re.match(r"^[A-Z_][A-Z0-9_]*=", command[0]):
        command = command[1:]  # VAR=value prefixes
    words = [word for word in command if not word.startswith("-")]
    if "manage.py" in [Path(word).name for word in command]:
        position = [Path(word).name for word in command].index("manage.py")
        rest = command[position + 1 :]
        assert rest, f"{block.where}: 'manage.py' without a command"
        name, args = rest[0], rest[1:]
        commands = get_commands()
        assert name in commands, f"{block.where}: there is no 'manage.py {name}' command"
        parser = load_command_class(commands[name], name).create_parser("manage.py", name)
        parser.parse_args(args)  # raises CommandError for what the command does not accept
    elif len(command) >= 3 and command[1] == "-m":
        assert importlib.util.find_spec(command[2]) is not None, f"{block.where}: no module {command[2]!r}"
    elif words[:2] == ["pip", "install"] or command[1:4] == ["-m", "pip", "install"]:
        for word in command:
            match = re.match(r"^wsreject\[([\w,-]+)\]$", word)
            if match:
                unknown = set(match.group(1).split(",")) - _extras()
                assert not unknown, f"{block.where}: wsreject has no extra {sorted(unknown)}"


# --- links -----------------------------------------------------------------------------------

_LINK = re.compile(r"(?<!!)\[[^\]]*\]\(([^)\s]+)\)")


def slug(heading: str) -> str:
    """GitHub's anchor for a heading."""
    text = re.sub(r"[^\w\- ]", "", heading.strip().lower())
    return text.replace(" ", "-")


def anchors(page: Path) -> set[str]:
    found: set[str] = set()
    seen: dict[str, int] = {}
    in_code = False
    for line in page.read_text(encoding="utf-8").splitlines():
        if _FENCE.match(line):
            in_code = not in_code
        if in_code:
            continue
        match = re.match(r"^#{1,6}\s+(.*?)\s*#*\s*$", line)
        if match:
            base = slug(match.group(1))
            count = seen.get(base, 0)
            seen[base] = count + 1
            found.add(base if count == 0 else f"{base}-{count}")
    return found


def links(page: Path) -> list[tuple[int, str]]:
    """``(line, target)`` of every relative link outside code blocks."""
    result = []
    in_code = False
    for number, line in enumerate(page.read_text(encoding="utf-8").splitlines(), 1):
        if _FENCE.match(line):
            in_code = not in_code
            continue
        if not in_code:
            line = re.sub(r"`[^`]*`", "", line)
            result += [(number, target) for target in _LINK.findall(line) if not re.match(r"^[a-z]+:", target)]
    return result
