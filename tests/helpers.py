"""Small helpers for calling tools through a real MCP client and reading structured results."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from mcp import Client


async def call(client: Client, tool: str, /, **arguments: Any) -> dict[str, Any]:
    """Calls a tool that must succeed; returns its structured result."""
    result = await client.call_tool(tool, arguments)
    text = result.content[0].text if result.content else ""
    assert not result.is_error, f"{tool} failed: {text}"
    assert result.structured_content is not None, f"{tool} returned no structured content"
    return result.structured_content


async def call_error(client: Client, tool: str, /, **arguments: Any) -> str:
    """Calls a tool that must fail with a tool error; returns the error text."""
    result = await client.call_tool(tool, arguments)
    assert result.is_error, f"{tool} unexpectedly succeeded: {result.structured_content}"
    return result.content[0].text


def at(*parts: int) -> datetime:
    """A UTC instant: at(2026, 2, 1) is 2026-02-01T00:00:00Z."""
    return datetime(*parts, tzinfo=UTC)


def iso(*parts: int) -> str:
    return at(*parts).isoformat().replace("+00:00", "Z")


async def tokens_meter(client: Client, name: str = "tokens") -> str:
    """A SUM meter over the `tokens` attribute of `llm` events; returns its id."""
    meter = await call(client, "create_usage_meter", name=name, eventSchemaName="llm", aggregation="SUM",
                       computations=[{"computation": "tokens"}])
    return str(meter["id"])
