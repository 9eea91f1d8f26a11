"""`togai-engine demo`: a newcomer's walk-through, driving the real MCP server through a client session.

Every step is a tool call an agent would make; ids are fixed so the demo can be re-run (creates are
idempotent: the second run returns the same objects instead of failing). Each step prints what the tool
returned, as JSON in the tool's own shape: whole, or with some of its fields left out, which the step's
heading then says. Nothing printed is a shape no tool returns.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from mcp import Client

from togai_engine.store.database import Database


def show(step: str, result: Any, *, fields: Sequence[str] | None = None) -> None:
    """Prints a tool's result under a heading. With `fields`, only those keys are kept: of each item of a
    list result's `data` (its other keys, such as nextToken, stay), or of the result itself."""
    print(f"\n== {step}")
    if fields is not None:
        listed = isinstance(result, dict) and isinstance(result.get("data"), list)
        print(f"(the result with only {', '.join(fields)}{' of each item of data' if listed else ''})")
        result = trimmed(result, fields)
    print(json.dumps(result, indent=2, default=str))


def trimmed(result: Any, fields: Sequence[str]) -> Any:
    """`result` with only `fields` (see show), keys in the result's own order."""
    if not isinstance(result, dict):
        return result
    if isinstance(result.get("data"), list):
        return {key: [_only(item, fields) for item in value] if key == "data" else value
                for key, value in result.items()}
    return _only(result, fields)


def _only(item: Any, fields: Sequence[str]) -> Any:
    return {key: value for key, value in item.items() if key in fields} if isinstance(item, dict) else item


async def call(client: Client, tool: str, **arguments: Any) -> Any:
    result = await client.call_tool(tool, arguments)
    if result.is_error:
        raise SystemExit(f"{tool} failed: {result.content[0].text}")
    return result.structured_content


async def run_demo(db: Database) -> None:
    """On a sandbox database the demo drives a sandbox server: every step runs at the sandbox's time (its
    usage is dated up to that time, not the wall clock's), as `serve --sandbox` would."""
    from mcp_server.server import build_server
    from togai_engine.app.unit import call_now

    wall_clock = await call_now(db)
    async with Client(build_server(db, sandbox=wall_clock is None)) as client:
        tools = (await client.list_tools()).tools
        print(f"togai-engine MCP server: {len(tools)} tools: {', '.join(sorted(t.name for t in tools))}")
        now = await demo_time(client, wall_clock)
        created = await call(
            client, "create_customer", id="demo_acme", name="Acme Corp", primaryEmail="billing@acme.example",
            address={"city": "Springfield", "country": "US"},
            account={"id": "demo_acme_main", "name": "Acme main", "invoiceCurrency": "USD", "aliases": ["acme"]},
        )
        show("create_customer (with its first account inline)", created)
        show("get_account", await call(client, "get_account", accountId="demo_acme_main"))
        show("list_customers", await call(client, "list_customers", pageSize=5), fields=["id", "name", "status"])
        for step in _later_steps():
            await step(client, now)
    print("\nDone. Re-running the demo is safe: every create is idempotent on its id.")


async def demo_time(client: Client, wall_clock: datetime | None) -> datetime:
    """The time the demo's usage is dated by: the wall clock, or a sandbox's time (`wall_clock` None), shown."""
    if wall_clock is not None:
        return wall_clock
    clock = await call(client, "get_clock")
    show("get_clock (this database is a sandbox: the demo runs at its time, not the wall clock's)", clock)
    return datetime.fromisoformat(clock["now"]).astimezone(UTC)


def _later_steps() -> list[Any]:
    """Steps of the capabilities beyond customers and accounts (metering, billing, wallet, lab)."""
    try:
        from mcp_server.demo_steps import STEPS
    except ImportError:
        return []
    return list(STEPS)
