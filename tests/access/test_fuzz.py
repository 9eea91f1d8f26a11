"""Fuzz every tool through the MCP client: schema-shaped inputs and hostile values.

No crash, every failure a tool error with a message (never an internal error), and a failed call
writes no row. The number of cases run is printed (pytest -s) and bounded by FUZZ_EXAMPLES.
"""

from __future__ import annotations

import math
import os
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from conftest import row_counts
from helpers import call
from mcp_server.registry import SPECS
from mcp_server.server import load_tools
from schema_strategy import from_schema

EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "60"))
load_tools()
TOOL_NAMES = sorted(SPECS)

HOSTILE: list[Any] = [
    "", " ", "x" * 100_000, "é✓🚀\u202e\ufeff", "\x00nul", "'; DROP TABLE customers; --", "\" OR 1=1 --",
    '{"var": "attributes.x"}', {"var": "__class__"}, {"==": [1, {"var": "dimensions.a"}]}, "1e309",
    -1, 0, 10**40, -(10**40), 1e308, -1e308, math.nan, math.inf, -math.inf, True, None, [], [None],
    {}, {"nested": {"deep": ["x" * 1000]}}, "NaN", "Infinity", "-0", "0.0000000000000000000000000001",
    "9" * 600, "2026-02-30T00:00:00Z", "1970-01-01T00:00:00Z", "9999-12-31T23:59:59Z",
]
CASES = {"run": 0, "errors": 0}


def draw_cases(strategy: st.SearchStrategy[dict[str, Any]], count: int) -> list[dict[str, Any]]:
    """Draws the cases up front (hypothesis cannot drive an async body on a running loop)."""
    cases: list[dict[str, Any]] = []

    @settings(max_examples=count, derandomize=True, database=None)
    @given(strategy)
    def gather(case: dict[str, Any]) -> None:
        cases.append(case)

    gather()
    return cases


@st.composite
def hostile_arguments(draw: st.DrawFn, schema: dict[str, Any]) -> dict[str, Any]:
    properties = list(schema.get("properties", {}))
    keys = draw(st.lists(st.sampled_from(properties), unique=True, max_size=len(properties))) if properties else []
    args = {key: draw(st.sampled_from(HOSTILE)) for key in keys}
    if draw(st.booleans()):
        args["notAnArgument"] = draw(st.sampled_from(HOSTILE))
    return args


async def fuzz_one(client, db, name: str, arguments: dict[str, Any]) -> None:
    before = await row_counts(db)
    result = await client.call_tool(name, arguments)
    CASES["run"] += 1
    if result.is_error:
        CASES["errors"] += 1
        text = result.content[0].text if result.content else ""
        assert text.strip(), f"{name}: empty error message"
        assert "internal error" not in text and "Traceback" not in text, f"{name}({arguments!r:.300}): {text}"
        assert await row_counts(db) == before, f"{name} failed but wrote rows"


async def test_fuzz_every_tool(client, db):
    tools = {t.name: t for t in (await client.list_tools()).tools}
    assert set(tools) == set(TOOL_NAMES)
    await call(client, "create_customer", id="fuzz_c", name="Fuzz", account={"id": "fuzz_a", "name": "Fuzz"})
    for name in TOOL_NAMES:
        schema = tools[name].input_schema
        for args in draw_cases(st.one_of(from_schema(schema), hostile_arguments(schema)), EXAMPLES):
            await fuzz_one(client, db, name, args)
    print(f"fuzz: {CASES['run']} cases over {len(TOOL_NAMES)} tools, {CASES['errors']} refused cleanly")
    assert CASES["run"] >= len(TOOL_NAMES) * min(EXAMPLES, 5)
