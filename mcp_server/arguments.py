"""`sent_arguments(ctx, values)`: which of a tool's arguments the caller actually sent.

The SDK calls a tool with every parameter, filling the ones the caller left out with their defaults,
so inside the tool an explicit `null` and an absent argument look the same. Update tools need the
difference (null clears a field, absence keeps it); the request's own arguments object has it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from mcp.server.mcpserver import Context


def sent_arguments(ctx: Context, values: Mapping[str, Any]) -> dict[str, Any]:
    """The entries of `values` (validated arguments by name) whose name the caller sent, null included.
    Without a request to read (a tool called in-process), a None value counts as not sent."""
    try:
        params = ctx.request_context.params
    except ValueError:  # no request: called in-process
        params = None
    raw = params.get("arguments") if isinstance(params, Mapping) else None
    if not isinstance(raw, Mapping):
        return {name: value for name, value in values.items() if value is not None}
    return {name: value for name, value in values.items() if name in raw}
