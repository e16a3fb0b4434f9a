"""The apps' modules import each other in one direction: no cycle between modules, no import hidden
inside a function to get round one (Django's `AppConfig.ready()` is the one place for late imports),
and the apps' own direction, accounts <- billing <- reporting, as ../shared/DESIGN.md fixes it."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
APPS = ("accounts", "billing", "reporting", "controls", "webhooks", "notifications", "portal")


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _modules() -> dict[str, Path]:
    found = {}
    for app in APPS:
        for path in (ROOT / app).rglob("*.py"):
            if "migrations" not in path.parts:
                found[_module_name(path)] = path
    return found


MODULES = _modules()


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _module_level_imports(tree: ast.Module) -> list[ast.Import | ast.ImportFrom]:
    """Imports run when the module is imported: at the top level and inside top-level if/try blocks,
    but not under `if TYPE_CHECKING:` (never run)."""
    found: list[ast.Import | ast.ImportFrom] = []
    pending: list[ast.stmt] = list(tree.body)
    while pending:
        node = pending.pop()
        if isinstance(node, ast.Import | ast.ImportFrom):
            found.append(node)
        elif isinstance(node, ast.If) and not _is_type_checking(node):
            pending += node.body + node.orelse
        elif isinstance(node, ast.Try):
            pending += node.body + node.orelse + node.finalbody + [s for h in node.handlers for s in h.body]
    return found


def _targets(node: ast.Import | ast.ImportFrom, importer: str) -> set[str]:
    """The project modules an import statement loads."""
    if isinstance(node, ast.Import):
        names = [alias.name for alias in node.names]
    else:
        assert not node.level, f"{importer}:{node.lineno}: the project imports absolutely"
        base = node.module or ""
        names = [f"{base}.{alias.name}" if f"{base}.{alias.name}" in MODULES else base for alias in node.names]
    return {name for name in names if name in MODULES}


def import_graph() -> dict[str, set[str]]:
    graph = {}
    for name, path in MODULES.items():
        tree = ast.parse(path.read_text(), filename=str(path))
        graph[name] = set().union(*(_targets(node, name) for node in _module_level_imports(tree))) - {name}
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan's algorithm, iteratively)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    on_stack: set[str] = set()
    stack: list[str] = []
    found: list[list[str]] = []
    counter = 0
    for root in sorted(graph):
        if root in index:
            continue
        work = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = counter
        counter += 1
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = counter
                    counter += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph[child]))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                parent = work[-1][0]
                low[parent] = min(low[parent], low[node])
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
    return found


def test_the_cycle_finder_finds_a_cycle():
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}, "e": set()}
    assert cycles(graph) == [["a", "b", "c"]]
    assert cycles({"a": {"b"}, "b": set()}) == []


def test_the_graph_sees_the_imports_it_must():
    graph = import_graph()
    assert "billing.ledger.services" in graph["billing.invoices.builder"]
    assert "billing.usage.services" in graph["billing.usage.csv_upload"]
    assert "billing.ledger.signals" in graph["billing.ledger.services"]


def test_no_import_cycle_between_the_apps_modules():
    assert cycles(import_graph()) == []


def _late_imports(path: Path) -> list[str]:
    """Imports inside a function or method body, other than in an AppConfig's `ready()`."""
    tree = ast.parse(path.read_text(), filename=str(path))
    found = []

    def visit(node: ast.AST, function: str | None) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef):
                visit(child, child.name if function is None else function)
            elif isinstance(child, ast.Import | ast.ImportFrom):
                if function is not None and function != "ready":
                    found.append(f"{path.relative_to(ROOT)}:{child.lineno} in {function}()")
            else:
                visit(child, function)

    visit(tree, None)
    return found


@pytest.mark.parametrize("module", sorted(MODULES))
def test_no_import_is_hidden_inside_a_function(module):
    assert _late_imports(MODULES[module]) == []


def test_the_apps_depend_one_way():
    """accounts <- billing <- controls, webhooks, reporting; notifications builds on accounts,
    billing and controls, and nothing imports it but portal's URLs (and templates, its tag library);
    portal (settings, URLs, the API's plumbing) sits beside them."""
    graph = import_graph()
    forbidden = {
        "accounts": ("billing", "reporting", "controls", "webhooks", "notifications"),
        "billing": ("reporting", "controls", "webhooks", "notifications"),
        "controls": ("reporting", "webhooks", "notifications"),
        "reporting": ("controls", "webhooks", "notifications"),
        "webhooks": ("reporting", "controls", "notifications"),
        "notifications": ("reporting", "webhooks"),
    }
    wrong = [
        f"{module} imports {target}"
        for module, targets in graph.items()
        for target in targets
        if target.split(".")[0] in forbidden.get(module.split(".")[0], ())
    ]
    assert wrong == []


def test_nothing_imports_notifications_but_the_urls():
    """Notifications answers signals; the URL configurations mount its pages and API (and the API's
    document describes it), and the layout loads its template tags: no other module imports it."""
    graph = import_graph()
    wrong = [
        f"{module} imports {target}"
        for module, targets in graph.items()
        for target in targets
        if target.split(".")[0] == "notifications"
        and module.split(".")[0] != "notifications"
        and module not in ("portal.urls", "portal.api_urls", "portal.openapi")
    ]
    assert wrong == []
