"""The packages under app/ form layers: no import cycle between packages, core imports
no domain, the write transaction imports no domain store, and every process builds its
context in the composition root (docs/architecture.md, "Layers").

A package is a first-level folder of app/ (a top-level module such as app/cli.py is
its own node). Every import counts, also one inside a function or under
TYPE_CHECKING: a lazy import is still a dependency.
"""

from __future__ import annotations

import ast
from collections import defaultdict
from pathlib import Path

import pytest

from app.events import transaction
from app.events.types import Category, Severity

APP = Path(__file__).resolve().parents[2] / "app"

#: what the lowest layers may import (besides themselves)
ALLOWED_BELOW: dict[str, set[str]] = {
    "core": set(),
    "capability": {"core"},
    "security": {"core"},
    "events": {"core", "security"},
}


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(APP.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _imported(path: Path) -> set[str]:
    module = _module_name(path)
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = module.split(".")
                if path.name != "__init__.py":
                    base.pop()
                base = base[: len(base) - (node.level - 1)]
                target = ".".join([*base, node.module] if node.module else base)
            else:
                target = node.module or ""
            names.add(target)
            names.update(f"{target}.{alias.name}" for alias in node.names)
    return names


def _node(module: str) -> str | None:
    parts = module.split(".")
    if parts[0] != "app" or len(parts) < 2:
        return None
    if (APP / parts[1]).is_dir() or (APP / f"{parts[1]}.py").is_file():
        return parts[1]
    return None


def package_graph(root: Path = APP) -> dict[str, dict[str, set[str]]]:
    """package -> imported package -> the files that import it."""
    graph: dict[str, dict[str, set[str]]] = defaultdict(lambda: defaultdict(set))
    for path in sorted(root.rglob("*.py")):
        source = _node(_module_name(path))
        if source is None:
            continue
        graph[source]  # every package is a node, also one that imports nothing
        for name in _imported(path):
            target = _node(name)
            if target is not None and target != source:
                graph[source][target].add(str(path.relative_to(root.parent)))
    return graph


def cycles(graph: dict[str, dict[str, set[str]]]) -> list[list[str]]:
    """The strongly connected components with more than one package (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in graph.get(node, {}):
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def test_no_import_cycle_between_packages() -> None:
    graph = package_graph()
    assert len(graph) > 20, sorted(graph)  # the walk found the packages
    found = cycles(graph)
    detail = [
        f"{a} -> {b}: {sorted(graph[a][b])}"
        for component in found
        for a in component
        for b in sorted(set(graph[a]) & set(component))
    ]
    assert not found, "packages import each other:\n" + "\n".join(detail)


def test_the_cycle_check_finds_a_cycle(tmp_path: Path) -> None:
    """The check itself: two packages that import each other are one cycle."""
    for name, other in (("alpha", "beta"), ("beta", "alpha")):
        (tmp_path / "app" / name).mkdir(parents=True)
        (tmp_path / "app" / name / "__init__.py").write_text("")
        (tmp_path / "app" / name / "mod.py").write_text(
            f"def f():\n    from app.{other}.mod import f\n"
        )
    global APP
    saved, APP = APP, tmp_path / "app"
    try:
        assert cycles(package_graph(APP)) == [["alpha", "beta"]]
    finally:
        APP = saved


@pytest.mark.parametrize("package", sorted(ALLOWED_BELOW))
def test_the_lowest_layers_import_only_below_them(package: str) -> None:
    graph = package_graph()
    above = {
        target: sorted(files)
        for target, files in graph[package].items()
        if target not in ALLOWED_BELOW[package]
    }
    assert not above, f"app/{package} imports a package above it: {above}"


def test_every_process_builds_its_context_in_the_composition_root() -> None:
    """A context built elsewhere would write facts with no sink for them."""
    builders = sorted(
        str(path.relative_to(APP.parent))
        for path in APP.rglob("*.py")
        if "AppContext.build(" in path.read_text()
    )
    assert builders == ["app/wiring.py"], builders


async def test_a_transaction_without_its_sinks_refuses_to_notify(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Fail closed: a notification or an escalation with nowhere to go raises."""
    monkeypatch.setattr(transaction, "_SINKS", transaction._FactSinks())
    tx = transaction.Tx(None, "tester", "")  # type: ignore[arg-type]
    with pytest.raises(transaction.SinkMissing):
        await tx.notify(Category.SYSTEM, Severity.INFO, "title")
    with pytest.raises(transaction.SinkMissing):
        await tx.escalate("kind", "task", 1, "reason")
