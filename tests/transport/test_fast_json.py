"""The stdio transport's JSON-RPC parsing: the SDK's messages, faster; and an answer for every line the SDK drops."""

from __future__ import annotations

import json

import anyio
import mcp_types
import pytest
from mcp.shared.message import SessionMessage
from mcp_types import INTERNAL_ERROR, INVALID_REQUEST, PARSE_ERROR

from mcp_server import fast_json

MESSAGES = [
    {"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {"name": "ingest_batch_events", "arguments": {
        "events": [{"id": "e1", "schemaName": "api", "timestamp": "2026-01-05T00:00:00Z", "accountId": "a",
                    "attributes": {"tokens": 12.5, "big": 10**30}, "dimensions": {"k": "é✓"}}]}}},
    {"jsonrpc": "2.0", "method": "notifications/initialized"},
    {"jsonrpc": "2.0", "id": "x", "result": {}},
    {"jsonrpc": "2.0", "id": 2, "error": {"code": -32601, "message": "nope"}},
]


def test_same_messages_as_the_sdk():
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
    finally:
        mcp_types.jsonrpc_message_adapter = original


def refusal(adapter: fast_json._JsonFirstAdapter, text: str) -> tuple[int, object]:
    with pytest.raises(fast_json.UnreadableMessage) as raised:
        adapter.validate_json(text, by_name=False)
    return raised.value.code, raised.value.request_id


def test_what_the_sdk_drops_is_refused_with_the_request_id():
    """The SDK's stdio transport drops a line it cannot read (the client waits forever); these are refused
    with the JSON-RPC error to answer and the request's id when the text shows it."""
    adapter = fast_json._JsonFirstAdapter(mcp_types.jsonrpc_message_adapter, max_chars=10_000)
    deep = "[" * 5000 + "]" * 5000
    for text, expected in (
        ('{"jsonrpc": "2.0", "id": 1, "method": ', (PARSE_ERROR, 1)),
        ('{"jsonrpc": "2.0", "id": 5, "method": "x", "params": NaN}', (PARSE_ERROR, 5)),
        ('{"jsonrpc": "2.0", "id": "a", "method": "x", "params": {"v": 01}}', (PARSE_ERROR, "a")),
        ('{"jsonrpc": "1.0", "id": 7, "method": "x"}', (INVALID_REQUEST, 7)),
        ("[]", (INVALID_REQUEST, None)),
        ("not json", (PARSE_ERROR, None)),
        ('{"jsonrpc": "2.0", "id": 2, "method": "tools/call", "params": {"arguments": {"x": ' + deep + "}}}",
         (INVALID_REQUEST, 2)),
        # the id after the nesting, and an "id" inside the params that is not the request's
        ('{"params": {"arguments": {"id": 9, "x": ' + deep + '}}, "jsonrpc": "2.0", "id": 3, "method": "m"}',
         (INVALID_REQUEST, 3)),
        ('{"jsonrpc": "2.0", "id": 4, "method": "m", "params": {"x": "' + "y" * 10_000 + '"}}', (INVALID_REQUEST, 4)),
    ):
        assert refusal(adapter, text) == expected, text[:80]


def test_a_failure_while_reading_is_answered_not_dropped(monkeypatch, caplog):
    """Any other exception from reading a line would reach the server, which drops it (the client waits forever,
    as a number check that crashed once made it): it is answered with an internal error naming a log ref."""
    def crash(text: object) -> bool:
        raise RuntimeError("the check crashed")

    monkeypatch.setattr(fast_json, "may_hold_inexact_number", crash)
    adapter = fast_json._JsonFirstAdapter(mcp_types.jsonrpc_message_adapter)
    with pytest.raises(fast_json.UnreadableMessage) as raised:
        adapter.validate_json('{"jsonrpc": "2.0", "id": 8, "method": "tools/list"}', by_name=False)
    assert (raised.value.code, raised.value.request_id) == (INTERNAL_ERROR, 8)
    ref = raised.value.message.split("(ref ")[1].split(")")[0]
    assert "nothing was changed" in raised.value.message
    assert any(ref in record.getMessage() and record.exc_info for record in caplog.records)


def test_a_lone_surrogate_reaches_the_server_to_be_refused_by_name():
    """The SDK's parser refuses a lone UTF-16 surrogate (an escape JSON allows); the json module reads it, so
    the tool call arrives and the argument check names the field."""
    adapter = fast_json._JsonFirstAdapter(mcp_types.jsonrpc_message_adapter)
    text = '{"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {"name": "t", "arguments": {"v": "a\\ud800"}}}'
    message = adapter.validate_json(text, by_name=False)
    assert message.params["arguments"] == {"v": "a\ud800"}


async def test_an_answer_holding_a_lone_surrogate_is_written_with_its_escape():
    """The SDK's stdio writer dies on a message it cannot serialize, and the connection with it."""
    send, receive = anyio.create_memory_object_stream[SessionMessage](1)
    writer = fast_json.EncodableWriter(send)
    plain = mcp_types.JSONRPCResponse(jsonrpc="2.0", id=1, result={"text": "é"})
    await writer.send(SessionMessage(plain))
    assert (await receive.receive()).message is plain  # a message that serializes goes as it is
    await writer.send(SessionMessage(mcp_types.JSONRPCResponse(jsonrpc="2.0", id=2, result={"t\ud800": "a\udfff"})))
    written = json.loads((await receive.receive()).message.model_dump_json(by_alias=True))
    assert (written["id"], written["result"]) == (2, {"t\\ud800": "a\\udfff"})
