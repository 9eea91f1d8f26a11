"""The README's scope table is the truth about which scope each tool needs."""

from __future__ import annotations

import re
from pathlib import Path

from mcp_server.registry import SPECS
from mcp_server.server import load_tools
from togai_engine.apikeys.scopes import SCOPES


def test_readme_scope_table_matches_the_tools():
    load_tools()
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    # the scope table only: the lines from its header to the first line that is not a table row
    lines = readme.splitlines()
    header = lines.index("| scope | tools |")
    table = lines[header:header + next(i for i, line in enumerate(lines[header:]) if not line.startswith("|"))]
    documented: dict[str, str] = {}
    for line in table:
        match = re.match(r"\| `([a-z:*]+)`( / `([a-z:]+)`)? \| (.+) \|$", line)
        if not match or match.group(1) == "*":
            continue
        scopes = [match.group(1)] + ([match.group(3)] if match.group(3) else [])
        groups = [g.strip() for g in match.group(4).split(" / ")]
        for scope, tools in zip(scopes, groups if len(scopes) > 1 else [match.group(4)], strict=True):
            for tool in tools.split(","):
                documented[tool.strip()] = scope
    assert documented == {name: spec.scope for name, spec in SPECS.items()}
    assert {spec.scope for spec in SPECS.values()} <= set(SCOPES)
