"""The package's shape, function-level imports included: no import cycle anywhere in wsreject/, and
layers that only import downwards, with no list of exceptions (the admin side on top, the caches
under authentication, the denial at the bottom)."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[2] / "wsreject"
if not PACKAGE.is_dir():  # the suite runs against the installed wheel
    import wsreject

    PACKAGE = Path(wsreject.__file__).resolve().parent

#: The package's layers, lowest first. A module belongs to the layer naming it or its closest
#: package; it may import its own layer and those below, never one above. Every module has a layer.
LAYERS: list[tuple[str, list[str]]] = [
    (
        "base: settings, ASGI types, scope, tracing, reporting",
        [
            "wsreject.types",
            "wsreject.conf",
            "wsreject.scope",
            "wsreject.trace",
            "wsreject.http",
            "wsreject.signals",
            "wsreject.reporting",
            "wsreject.offload",
            "wsreject.origins",
        ],
    ),
    ("servers and clients: Daphne's protocol, the probe", ["wsreject.daphne", "wsreject.probe"]),
    ("denial and routing", ["wsreject.denial", "wsreject.transport", "wsreject.routes", "wsreject.handshake", "wsreject.endpoints"]),
    ("models", ["wsreject.models", "wsreject.patterns"]),
    ("caches", ["wsreject.cache"]),
    (
        "authentication, and the edge's word it trusts (its settings, its signatures, the vouch)",
        ["wsreject.authentication", "wsreject.edge.conf", "wsreject.edge.signing", "wsreject.edge.trust"],
    ),
    ("decisions", ["wsreject.permissions", "wsreject.throttling", "wsreject.rules", "wsreject.connections"]),
    (
        "pipeline: middleware, consumers, the decision, its observers",
        [
            "wsreject.enforcement",
            "wsreject.middleware",
            "wsreject.consumers",
            "wsreject.decision",
            "wsreject.explain",
            "wsreject.revocation",
            "wsreject.metrics",
            "wsreject.checks",
            "wsreject.layer_checks",
            "wsreject.testing",
        ],
    ),
    ("access: the admin-managed side", ["wsreject.access", "wsreject.admin"]),
    (
        "edge, management, the app and the package",
        ["wsreject.edge", "wsreject.management", "wsreject.apps", "wsreject.isolation", "wsreject.pytest_plugin", "wsreject"],
    ),
]


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
    assert "wsreject.patterns" in edges["wsreject.models"]
    assert "wsreject.authentication.tokens" in edges["wsreject.access.admin"], "relative imports resolve"


def test_no_import_cycle():
    cycle = find_cycle(graph())
    assert cycle is None, "import cycle: " + " -> ".join(cycle)


def test_a_cycle_would_be_found():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None


def layer_of(name: str, layers: list[tuple[str, list[str]]] = LAYERS) -> int | None:
    """The index of the layer naming ``name`` or its closest package, None if none does."""
    best: tuple[int, int] | None = None  # (length of the matched name, layer)
    for index, (_, members) in enumerate(layers):
        for member in members:
            if (name == member or name.startswith(member + ".")) and (best is None or len(member) > best[0]):
                best = (len(member), index)
    return None if best is None else best[1]


def upward_imports(edges: dict[str, set[str]], layers: list[tuple[str, list[str]]] = LAYERS) -> list[str]:
    """Every import of a module in a higher layer, as readable lines."""
    found = []
    for name in sorted(edges):
        own = layer_of(name, layers)
        for target in sorted(edges[name]):
            theirs = layer_of(target, layers)
            if own is not None and theirs is not None and theirs > own:
                found.append(f"{name} ({layers[own][0]}) imports {target} ({layers[theirs][0]})")
    return found


def test_every_module_has_a_layer():
    missing = sorted(name for name in modules() if layer_of(name) is None)
    assert not missing, f"modules without a layer (add them to LAYERS): {missing}"


def test_every_layer_member_exists():
    known = set(modules())
    stale = [member for _, members in LAYERS for member in members if member not in known]
    assert not stale, f"LAYERS names modules that do not exist: {stale}"


def test_imports_only_go_down():
    upward = upward_imports(graph())
    assert not upward, "a lower layer imports an upper one:\n" + "\n".join(upward)


def test_an_upward_import_would_be_found():
    layers = [("low", ["p.low"]), ("high", ["p.high", "p"])]
    edges = {"p.low.a": {"p.high"}, "p.high": {"p.low.a"}, "p": {"p.low.b"}, "p.low.b": set()}
    assert upward_imports(edges, layers) == ["p.low.a (low) imports p.high (high)"]
    assert layer_of("p.low.b.c", layers) == 0, "the closest package decides"
    assert layer_of("q", layers) is None


def test_every_public_module_declares_all():
    """``__all__`` in every module whose name has no leading underscore (packages included)."""
    missing = []
    for name, path in modules().items():
        if path.name.startswith("_") and path.name != "__init__.py":
            continue
        tree = ast.parse(path.read_text(), str(path))
        declared = any(
            isinstance(target, ast.Name) and target.id == "__all__"
            for node in tree.body
            if isinstance(node, (ast.Assign, ast.AnnAssign))
            for target in (node.targets if isinstance(node, ast.Assign) else [node.target])
        )
        if not declared:
            missing.append(name)
    assert not missing, f"modules without __all__: {sorted(missing)}"
