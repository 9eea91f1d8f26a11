"""The domains import downwards only: no cycle between the folders of togai_engine, no import of the engine
(another domain or the module's own) hidden inside a function, and nothing in the engine imports the MCP layer —
except `testing`, the pytest plugin, which is the top of the stack (a client of the whole product, like the CLI)
and which nothing imports in turn."""

from __future__ import annotations

import ast
from collections import defaultdict
from pathlib import Path

ENGINE = Path(__file__).resolve().parents[2] / "togai_engine"
MCP_LAYER = ENGINE.parent / "mcp_server"
# The pytest plugin (togai_engine.testing) serves tests with the MCP server in front of the engine, so it
# imports mcp_server; it lives in the engine's package only so that `-p togai_engine.testing` names it.
TOP_OF_THE_STACK = "testing"
# Imports inside a function that dodge no circle: the embedded server's module (psutil, fcntl, pwd) is loaded
# only when no TOGAI_DATABASE_URL is given.
LAZY = {("store/runtime.py", "togai_engine.store.embedded")}


def _imports() -> tuple[dict[str, set[str]], list[str]]:
    graph: dict[str, set[str]] = defaultdict(set)
    hidden: list[str] = []
    for path in ENGINE.rglob("*.py"):
        parts = path.relative_to(ENGINE).parts
        own = parts[0].removesuffix(".py")
        if own == "migrations":
            continue
        tree = ast.parse(path.read_text())
        in_functions = {id(inner) for function in ast.walk(tree)
                        if isinstance(function, (ast.FunctionDef, ast.AsyncFunctionDef)) for inner in ast.walk(function)}
        package = ["togai_engine", *parts[:-1]]
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                modules = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                # a relative import names a module of this package (or a parent of it)
                base = package[:len(package) - node.level + 1] if node.level else []
                modules = [".".join([*base, node.module] if node.module else base)]
            else:
                continue
            for module in modules:
                names = module.split(".")
                if names[0] == "mcp_server":
                    graph[own].add("mcp_server")
                if names[0] != "togai_engine":
                    continue
                where = path.relative_to(ENGINE).as_posix()
                # Within a domain too: an import inside a function hides a circle between its modules (an import
                # under a module-level `if TYPE_CHECKING:` is not in a function, and not hidden).
                if id(node) in in_functions and (where, module) not in LAZY:
                    hidden.append(f"{where}:{node.lineno} imports {module}")
                if len(names) >= 2 and names[1] != own:
                    graph[own].add(names[1])
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
    assert not [domain for domain, targets in graph.items() if "mcp_server" in targets and domain != TOP_OF_THE_STACK]
    assert "mcp_server" in graph[TOP_OF_THE_STACK]  # the exception is still needed (else remove it)


def _imported_modules(tree: ast.AST) -> set[str]:
    """Every module an import in `tree` may load: `from a.b import c` may be module a.b.c."""
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            found.add(node.module)
            found.update(f"{node.module}.{alias.name}" for alias in node.names)
    return found


def test_nothing_in_the_engine_or_the_mcp_layer_imports_the_pytest_plugin() -> None:
    plugin = ENGINE / TOP_OF_THE_STACK
    importers = []
    for path in [*ENGINE.rglob("*.py"), *MCP_LAYER.rglob("*.py")]:
        if path.is_relative_to(plugin):
            continue
        modules = _imported_modules(ast.parse(path.read_text()))
        if any(m == f"togai_engine.{TOP_OF_THE_STACK}" or m.startswith(f"togai_engine.{TOP_OF_THE_STACK}.")
               for m in modules):
            importers.append(str(path.relative_to(ENGINE.parent)))
    assert importers == []
