"""`togai-engine demo`: a newcomer's walk-through, driving the real MCP server through a client session.

Every step is a tool call an agent would make; ids are fixed so the demo can be re-run (creates are
idempotent: the second run returns the same objects instead of failing).
"""

from __future__ import annotations

import json
from typing import Any

from mcp import Client

from togai_engine.store.database import Database


def show(step: str, result: Any) -> None:
    print(f"\n== {step}")
    text = json.dumps(result, indent=2, default=str)
    lines = text.splitlines()
    print("\n".join(lines[:40] + (["  ..."] if len(lines) > 40 else [])))


async def call(client: Client, tool: str, **arguments: Any) -> Any:
    result = await client.call_tool(tool, arguments)
    if result.is_error:
        raise SystemExit(f"{tool} failed: {result.content[0].text}")
    return result.structured_content


async def run_demo(db: Database) -> None:
    from mcp_server.server import build_server

    async with Client(build_server(db)) as client:
        tools = (await client.list_tools()).tools
        print(f"togai-engine MCP server: {len(tools)} tools: {', '.join(sorted(t.name for t in tools))}")
        created = await call(
            client, "create_customer", id="demo_acme", name="Acme Corp", primaryEmail="billing@acme.example",
            address={"city": "Springfield", "country": "US"},
            account={"id": "demo_acme_main", "name": "Acme main", "invoiceCurrency": "USD", "aliases": ["acme"]},
        )
        show("create_customer (with its first account inline)", created)
        show("get_account", await call(client, "get_account", accountId="demo_acme_main"))
        page = await call(client, "list_customers", pageSize=5)
        show("list_customers", {"ids": [c["id"] for c in page["data"]], "nextToken": page["nextToken"]})
        for step in _later_steps():
            await step(client)
    print("\nDone. Re-running the demo is safe: every create is idempotent on its id.")


def _later_steps() -> list[Any]:
    """Steps of the capabilities beyond customers and accounts (metering, billing, wallet, lab)."""
    try:
        from mcp_server.demo_steps import STEPS
    except ImportError:
        return []
    return list(STEPS)
