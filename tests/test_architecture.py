"""The package's structure: no import cycles, the framework never imports a paper, the numerics stand alone,
and nothing cites documents outside the repository.

The import graph is built from every ``import`` statement in ``nodebench/`` (function-level imports
included), so ``python -m pytest tests/test_architecture.py`` is the command that checks for cycles.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "nodebench"
NUMERICS = ("nodebench.gq", "nodebench.taylor", "nodebench.snode", "nodebench.cnf", "nodebench.sde",
            "nodebench.regularizers")
HARNESS = ("nodebench.harness", "nodebench.runner", "nodebench.tasks", "nodebench.papers", "nodebench.benchmarking",
           "nodebench.api", "nodebench.cli", "nodebench.training")


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(p): p for p in PACKAGE.rglob("*.py")}


def imports(name: str) -> set[str]:
    """The nodebench modules that module ``name`` imports anywhere in its body."""
    found = set()
    for node in ast.walk(ast.parse(MODULES[name].read_text())):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            for alias in node.names:
                sub = f"{node.module}.{alias.name}"
                found.add(sub if sub in MODULES else node.module)
    return {m for m in found if m in MODULES and m != name}


GRAPH = {name: imports(name) for name in MODULES}


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                return stack[stack.index(nxt):] + [nxt]
            if nxt not in state and (cycle := visit(nxt)):
                return cycle
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (cycle := visit(node)):
            return cycle
    return None


def test_the_import_graph_has_no_cycle():
    assert find_cycle(GRAPH) is None, " → ".join(find_cycle(GRAPH))


def test_a_planted_cycle_is_found():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]


def test_no_framework_module_imports_a_paper():
    papers = {m for m in MODULES if m.startswith("nodebench.papers.")}
    for name, deps in GRAPH.items():
        if not name.startswith("nodebench.papers"):
            assert not deps & papers, f"{name} imports {sorted(deps & papers)}"


@pytest.mark.parametrize("package", NUMERICS)
def test_numerics_do_not_import_the_harness(package):
    assert any(name == package or name.startswith(package + ".") for name in GRAPH), f"no module {package}"
    for name, deps in GRAPH.items():
        if name == package or name.startswith(package + "."):
            bad = {d for d in deps if d.startswith(HARNESS)}
            assert not bad, f"{name} imports {sorted(bad)}"


def test_no_reference_to_documents_outside_the_repository():
    pattern = re.compile(r"\blent\b|sheet §|seed summary|snode\.md|MEASURING\.md|shared/papers|ENVIRONMENT\.md|pitfall \d")
    root = PACKAGE.parent
    texts = [*PACKAGE.rglob("*.py"), *PACKAGE.rglob("*.toml"), *PACKAGE.rglob("*.md"), root / "README.md"]
    hits = [f"{p.relative_to(root)}:{i}" for p in texts for i, line in enumerate(p.read_text().splitlines(), 1)
            if pattern.search(line)]
    assert not hits, hits
