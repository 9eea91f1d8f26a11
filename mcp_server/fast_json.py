"""Faster parsing of incoming JSON-RPC messages for the stdio transport.

The SDK's stdio transport parses each message with `jsonrpc_message_adapter.validate_json(text)`. For
a request carrying 1000 events (~200 KB) that is ~8 ms of server CPU; orjson followed by
`validate_python` on the same adapter gives the same message in a fraction of that (the arguments
are plain JSON values either way). `install()` swaps the module-level adapter the transport reads
for one that does that, and hands everything else to the original `validate_json`, so the result
and every error are exactly the SDK's: text with a run of 19+ digits (orjson would make a big
integer a float), text orjson refuses (malformed, NaN/Infinity, lone surrogates), and any message
that does not validate (the SDK's errors name JSON types). The streamable HTTP transport parses
with pydantic-core already and does not read this adapter.
"""

from __future__ import annotations

from typing import Any

import mcp_types
import orjson
from pydantic import ValidationError

from togai_engine.common.json_text import has_long_digit_run


class _JsonFirstAdapter:
    """Quacks like the SDK's TypeAdapter for JSON-RPC messages; only validate_json differs."""

    def __init__(self, adapter: Any) -> None:
        self._adapter = adapter

    def validate_json(self, data: str | bytes, **options: Any) -> Any:
        if not has_long_digit_run(data):
            try:
                return self._adapter.validate_python(orjson.loads(data), **options)
            except (orjson.JSONDecodeError, ValidationError):
                pass
        return self._adapter.validate_json(data, **options)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._adapter, name)


def install() -> None:
    """Idempotent; called once when the stdio server starts (serve.py)."""
    if not isinstance(mcp_types.jsonrpc_message_adapter, _JsonFirstAdapter):
        mcp_types.jsonrpc_message_adapter = _JsonFirstAdapter(mcp_types.jsonrpc_message_adapter)  # type: ignore[assignment]
