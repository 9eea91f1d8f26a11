"""Small helpers for calling tools through a real MCP client and reading structured results."""

from __future__ import annotations

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
