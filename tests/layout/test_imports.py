"""The package's shape: no import cycle anywhere in wsreject/, function-level imports included,
and the handshake core readable without the admin."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[2] / "wsreject"
if not PACKAGE.is_dir():  # the suite runs against the installed wheel
    import wsreject

    PACKAGE = Path(wsreject.__file__).resolve().parent

#: Modules of the access-management side the core may call into (cached permission sets, the
#: access rules' middleware for the recommended stack, cache versions and their invalidation bus,
#: users): nothing else.
CORE_MAY_USE = {
    "wsreject.access.permsets",
    "wsreject.access.enforcement",
    "wsreject.access.versions",
    "wsreject.access.bus",
    "wsreject.access.users",
    "wsreject.access.endpoints",
}
ADMIN_SIDE = {"wsreject.access.admin", "wsreject.access.forms", "wsreject.admin", "wsreject.access.checks"}


def module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def modules() -> dict[str, Path]:
    return {module_name(path): path for path in PACKAGE.rglob("*.py") if "migrations" not in path.parts}


def imports_of(name: str, path: Path, known: set[str]) -> set[str]:
    """Every wsreject module ``name`` imports, at any depth of its code (function bodies too),
    except under ``if TYPE_CHECKING:`` (never executed)."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()
    tree = ast.parse(path.read_text(), str(path))
    type_only = {
        id(child)
        for node in ast.walk(tree)
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test)
        for child in ast.walk(node)
    }
    for node in ast.walk(tree):
        if id(node) in type_only:
            continue  # annotations only: never executed
        targets: list[str] = []
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")
                anchor = anchor[: len(anchor) - (node.level - 1)]
                base = ".".join(anchor + ([base] if base else []))
            targets = [f"{base}.{alias.name}" for alias in node.names] + [base]
        for target in targets:
            while target and target not in known:
                target = target.rpartition(".")[0]
            if target and target != name and target.startswith("wsreject"):
                found.add(target)
    return found


def graph() -> dict[str, set[str]]:
    mods = modules()
    known = set(mods)
    # Importing "wsreject.x.y" also imports its packages' __init__: count them as edges too.
    edges = {name: imports_of(name, path, known) for name, path in mods.items()}
    return edges


def find_cycle(edges: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(edges.get(node, ())):
            if state.get(nxt) == 1:
                return stack[stack.index(nxt) :] + [nxt]
            if nxt not in state and (cycle := visit(nxt)):
                return cycle
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(edges):
        if node not in state and (cycle := visit(node)):
            return cycle
    return None


def test_the_graph_sees_the_imports():
    edges = graph()
    assert "wsreject.denial" in edges["wsreject.transport"]
    assert "wsreject.access.patterns" in edges["wsreject.models"]
    assert "wsreject.access.tokens" in edges["wsreject.access.admin"], "relative imports resolve"


def test_no_import_cycle():
    cycle = find_cycle(graph())
    assert cycle is None, "import cycle: " + " -> ".join(cycle)


def test_a_cycle_would_be_found():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None


CORE = [
    "wsreject.http",
    "wsreject.denial",
    "wsreject.transport",
    "wsreject.handshake",
    "wsreject.routes",
    "wsreject.decision",
    "wsreject.middleware",
    "wsreject.permissions",
    "wsreject.throttling",
    "wsreject.consumers",
    "wsreject.authentication.credentials",
    "wsreject.origins",
    "wsreject.testing",
]


@pytest.mark.parametrize("name", CORE)
def test_the_core_never_meets_the_admin(name):
    edges = graph()
    seen, todo = set(), [name]
    while todo:
        current = todo.pop()
        for nxt in edges.get(current, ()):
            if nxt not in seen:
                seen.add(nxt)
                todo.append(nxt)
    assert not seen & ADMIN_SIDE, f"{name} reaches {sorted(seen & ADMIN_SIDE)}"
    direct_access = {target for target in edges[name] if target.startswith("wsreject.access.")}
    assert direct_access <= CORE_MAY_USE, f"{name} imports {sorted(direct_access - CORE_MAY_USE)}"
