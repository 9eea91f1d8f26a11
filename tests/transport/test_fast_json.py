"""The stdio transport's faster JSON-RPC parsing gives the SDK's messages and the SDK's errors."""

from __future__ import annotations

import json

import mcp_types
from pydantic import ValidationError

from mcp_server import fast_json

MESSAGES = [
    {"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {"name": "ingest_batch_events", "arguments": {
        "events": [{"id": "e1", "schemaName": "api", "timestamp": "2026-01-05T00:00:00Z", "accountId": "a",
                    "attributes": {"tokens": 12.5, "big": 10**30}, "dimensions": {"k": "é✓"}}]}}},
    {"jsonrpc": "2.0", "method": "notifications/initialized"},
    {"jsonrpc": "2.0", "id": "x", "result": {}},
    {"jsonrpc": "2.0", "id": 2, "error": {"code": -32601, "message": "nope"}},
]


def outcome(adapter, text: str) -> object:
    try:
        return adapter.validate_json(text, by_name=False)
    except ValidationError as exc:
        return ("error", [(e["type"], e["loc"], e["msg"]) for e in exc.errors()])


def test_same_messages_and_same_errors_as_the_sdk():
    original = mcp_types.jsonrpc_message_adapter
    fast_json.install()
    fast_json.install()  # idempotent: the original adapter is wrapped once
    adapter = mcp_types.jsonrpc_message_adapter
    try:
        assert isinstance(adapter, fast_json._JsonFirstAdapter) and adapter._adapter is original
        for message in MESSAGES:
            text = json.dumps(message, ensure_ascii=False)
            # the same message, down to JSON types (1 == 1.0 in Python, not in JSON)
            assert (adapter.validate_json(text, by_name=False).model_dump_json()
                    == original.validate_json(text, by_name=False).model_dump_json())
        for odd in ('{"jsonrpc": "2.0", "id": 1, "method": ', '{"jsonrpc": "2.0", "id": NaN, "method": "x"}',
                    '{"jsonrpc": "2.0", "id": 1, "method": "x", "params": {"v": Infinity}}',
                    '{"jsonrpc": "1.0", "id": 1, "method": "x"}', "[]",
                    '{"jsonrpc": "2.0", "id": 1, "method": "x", "params": {"v": "\\ud800"}}'):  # a lone surrogate
            assert outcome(adapter, odd) == outcome(original, odd), odd
    finally:
        mcp_types.jsonrpc_message_adapter = original
