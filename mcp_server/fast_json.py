"""Faster parsing of incoming JSON-RPC messages for the served transports.

The SDK's transports parse each message with `jsonrpc_message_adapter.validate_json(text)`. For a
request carrying 1000 events (~200 KB) that is ~8 ms of server CPU; `json.loads` followed by
`validate_python` on the same adapter gives the same message in ~2.5 ms (the arguments are plain
JSON values either way). `install()` swaps the module-level adapter the transports read for one
that does that (json_text.loads: orjson where it means the same as json), and falls back to the original `validate_json` for any text `json.loads` refuses
or for the non-standard constants NaN/Infinity, so errors are exactly the SDK's.
"""

from __future__ import annotations

from typing import Any

import mcp_types

from togai_engine.common import json_text


def _no_constants(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


class _JsonFirstAdapter:
    """Quacks like the SDK's TypeAdapter for JSON-RPC messages; only validate_json differs."""

    def __init__(self, adapter: Any) -> None:
        self._adapter = adapter

    def validate_json(self, data: str | bytes, **options: Any) -> Any:
        try:
            value = json_text.loads(data, parse_constant=_no_constants)
        except ValueError:
            return self._adapter.validate_json(data, **options)
        return self._adapter.validate_python(value, **options)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._adapter, name)


def install() -> None:
    """Idempotent; called once when the server starts (serve.py)."""
    if not isinstance(mcp_types.jsonrpc_message_adapter, _JsonFirstAdapter):
        mcp_types.jsonrpc_message_adapter = _JsonFirstAdapter(mcp_types.jsonrpc_message_adapter)  # type: ignore[assignment]
