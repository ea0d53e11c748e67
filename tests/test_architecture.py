"""The shape of the code that import-linter's contracts (pyproject.toml) cannot see: no two
modules import each other, even through a chain or from inside a function, and no project
module is imported by name at run time (importlib), where no contract could see the arrow."""

from __future__ import annotations

import ast
from pathlib import Path

import grimp

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("fusion", "api", "workers", "schemas")


def _cycles(graph: grimp.ImportGraph) -> list[list[str]]:
    """The strongly connected groups of more than one module (Tarjan), imports of a module's
    own parent package aside."""
    edges = {
        m: {d for d in graph.find_modules_directly_imported_by(m) if not m.startswith(d + ".")}
        for m in graph.modules
        if m.startswith(PACKAGES)
    }
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in edges.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            group = []
            while (w := stack.pop()) != v:
                group.append(w)
            if group:
                found.append(sorted([v, *group]))

    for module in sorted(edges):
        if module not in index:
            visit(module)
    return found


def test_no_two_modules_import_each_other() -> None:
    # grimp counts function-local and TYPE_CHECKING imports too.
    graph = grimp.build_graph(*PACKAGES, cache_dir=None)
    assert _cycles(graph) == []


def _dynamic_imports(path: Path) -> list[str]:
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Call):
            name = ast.unparse(node.func)
            if name in ("importlib.import_module", "import_module", "__import__"):
                found.append(f"{path.relative_to(ROOT)}:{node.lineno}")
    return found


def test_project_modules_are_imported_by_name_nowhere() -> None:
    # The one dynamic import loads the extension job modules an operator names in
    # FUSION_JOB_MODULES, and it refuses the project's own (fusion.jobs.registry).
    sources = [p for package in PACKAGES for p in (ROOT / package).rglob("*.py")]
    sources += [ROOT / "boot.py", ROOT / "celeryconfig.py"]
    found = [hit for path in sources if path.exists() for hit in _dynamic_imports(path)]
    assert [hit.split(":")[0] for hit in found] == ["fusion/jobs/registry.py"], found
