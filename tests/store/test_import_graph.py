"""The domains import downwards only: no cycle between the folders of togai_engine, no import of another
domain hidden inside a function, and nothing in the engine imports the MCP layer."""

from __future__ import annotations

import ast
from collections import defaultdict
from pathlib import Path

ENGINE = Path(__file__).resolve().parents[2] / "togai_engine"


def _imports() -> tuple[dict[str, set[str]], list[str]]:
    graph: dict[str, set[str]] = defaultdict(set)
    hidden: list[str] = []
    for path in ENGINE.rglob("*.py"):
        parts = path.relative_to(ENGINE).parts
        own = parts[0].removesuffix(".py")
        if own == "migrations":
            continue
        tree = ast.parse(path.read_text())
        top_level = {id(node) for node in tree.body}
        for node in ast.walk(tree):
            if not isinstance(node, ast.ImportFrom) or not node.module:
                continue
            names = node.module.split(".")
            if names[0] == "mcp_server":
                graph[own].add("mcp_server")
            if names[0] != "togai_engine" or len(names) < 2 or names[1] == own:
                continue
            graph[own].add(names[1])
            if id(node) not in top_level and node.col_offset > 0:
                hidden.append(f"{path.relative_to(ENGINE)}:{node.lineno} imports {node.module}")
    return graph, hidden


def test_no_domain_imports_in_a_circle() -> None:
    graph, _ = _imports()
    state: dict[str, int] = {}
    cycle: list[str] = []

    def visit(node: str, trail: list[str]) -> bool:
        state[node] = 1
        for target in sorted(graph.get(node, ())):
            if state.get(target) == 1:
                cycle.extend([*trail, node, target])
                return True
            if state.get(target) is None and visit(target, [*trail, node]):
                return True
        state[node] = 2
        return False

    for domain in sorted(graph):
        if state.get(domain) is None and visit(domain, []):
            break
    assert not cycle, " -> ".join(cycle)


def test_no_domain_import_is_hidden_in_a_function_and_the_engine_knows_no_mcp() -> None:
    graph, hidden = _imports()
    assert hidden == []
    assert not [domain for domain, targets in graph.items() if "mcp_server" in targets]
