"""The import rules of docs/architecture.md, checked on the source (every import statement,
at module level or inside a function: a late import is still a dependency)."""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "workbench"

# Leaf modules of the root package (they import nothing of ours): any layer may use them.
FOUNDATION = frozenset({"workbench", "workbench.errors", "workbench.home"})

# (layer, what it may import besides itself and the foundation; None = anything)
ALLOWED: tuple[tuple[str, frozenset[str] | None], ...] = (
    ("workbench.attestation.formats", frozenset()),
    ("workbench.attestation.verify", frozenset({"workbench.attestation.formats"})),
    ("workbench.attestation.appraise", frozenset({"workbench.attestation.formats",
                                                  "workbench.attestation.verify"})),
    ("workbench.attestation.collateral", frozenset({"workbench.attestation.formats",
                                                    "workbench.attestation.verify"})),
    ("workbench.protocol", frozenset()),
    ("workbench.sealed", frozenset()),
)
# (importer, imported): never, whatever the path.
FORBIDDEN: tuple[tuple[str, str, str], ...] = (
    ("workbench.kernel", "workbench.kbs", "the kernel talks to the broker over HTTP only"),
    ("workbench.brokerclient", "workbench.kbs", "clients talk to the broker over HTTP only"),
    ("workbench.verdict", "workbench.kernel", "the verdict engine sits below the kernel"),
    ("workbench.verdict", "workbench.labserver", "the verdict engine sits below the lab server"),
)
# Only Jupyter loads the lab server (jupyter-config/ names it); nothing of ours imports it.
ENTRY_POINT_ONLY = "workbench.labserver"


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


MODULES: dict[str, Path] = {_module_name(p): p for p in PACKAGE.rglob("*.py")}


def _imported(name: str, path: Path) -> Iterator[str]:
    """Every module of ours that ``name`` imports (a name imported from a package that is
    itself a module counts as that module)."""
    tree = ast.parse(path.read_text(), filename=str(path))
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                origin = ".".join(base + ([node.module] if node.module else []))
            else:
                origin = node.module or ""
            # ``from pkg import mod`` depends on mod; ``from pkg import name``, on pkg.
            targets = [f"{origin}.{alias.name}" if f"{origin}.{alias.name}" in MODULES
                       else origin for alias in node.names]
        else:
            continue
        for target in targets:
            while target and target not in MODULES:
                target = target.rpartition(".")[0]
            if target and target != name:
                yield target


GRAPH: dict[str, set[str]] = {name: set(_imported(name, path)) for name, path in MODULES.items()}


def _within(name: str, layer: str) -> bool:
    return name == layer or name.startswith(layer + ".")


def package_of(name: str) -> str:
    """Top-level packages, and attestation's layers, are the packages of the package map."""
    parts = name.split(".")
    depth = 3 if len(parts) > 2 and parts[1] == "attestation" else 2
    return ".".join(parts[:depth])


def _cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return [*stack[stack.index(nxt):], nxt]
            if nxt not in state and (found := visit(nxt)) is not None:
                return found
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (found := visit(node)) is not None:
            return found
    return None


def test_the_walk_sees_the_package() -> None:
    assert "workbench.kbs.app" in MODULES and "workbench.protocol" in MODULES
    assert "workbench.protocol.errors" in GRAPH["workbench.kbs.errors"]
    assert _cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert _cycle({"a": {"b"}, "b": set()}) is None


def test_no_cycle_between_modules() -> None:
    # The root package's own __init__ imports nothing statically (its API loads lazily).
    assert GRAPH["workbench"] == set()
    assert _cycle(GRAPH) is None, " -> ".join(_cycle(GRAPH) or [])


def test_no_cycle_between_packages() -> None:
    packages: dict[str, set[str]] = {}
    for name, imported in GRAPH.items():
        here = package_of(name)
        if here in FOUNDATION:
            continue
        packages.setdefault(here, set()).update(
            package_of(i) for i in imported
            if package_of(i) != here and package_of(i) not in FOUNDATION)
    assert _cycle(packages) is None, " -> ".join(_cycle(packages) or [])


@pytest.mark.parametrize(("layer", "allowed"), ALLOWED, ids=[row[0] for row in ALLOWED])
def test_layers_import_only_what_they_may(layer: str, allowed: frozenset[str]) -> None:
    wrong = sorted(f"{name} imports {imported}"
                   for name, imports in GRAPH.items() if _within(name, layer)
                   for imported in imports
                   if not _within(imported, layer) and imported not in FOUNDATION
                   and not any(_within(imported, a) for a in allowed))
    assert wrong == []


@pytest.mark.parametrize(("importer", "imported", "why"), FORBIDDEN,
                         ids=[f"{a}-{b}" for a, b, _ in FORBIDDEN])
def test_forbidden_imports(importer: str, imported: str, why: str) -> None:
    wrong = sorted(f"{name} imports {target}" for name, targets in GRAPH.items()
                   if _within(name, importer) for target in targets
                   if _within(target, imported))
    assert wrong == [], why


def test_only_jupyter_loads_the_lab_server() -> None:
    wrong = sorted(f"{name} imports {target}" for name, targets in GRAPH.items()
                   if not _within(name, ENTRY_POINT_ONLY) for target in targets
                   if _within(target, ENTRY_POINT_ONLY))
    assert wrong == []
    configured = (ROOT / "jupyter-config/server-config/workbench_labserver.json")
    if configured.exists():
        assert ENTRY_POINT_ONLY in configured.read_text()


def test_foundation_modules_are_leaves() -> None:
    for name in FOUNDATION:
        assert GRAPH[name] == set(), f"{name} must import nothing of ours"
