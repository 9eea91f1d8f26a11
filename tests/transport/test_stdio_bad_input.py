"""Raw JSON-RPC lines the SDK cannot read, sent to `togai-engine serve` over stdio: each gets a prompt
answer (with the request's id when the line shows it), and the server keeps serving.

The SDK's stdio transport drops such a line without a word, so a client waits until its own timeout:
a request nested 5,000 levels deep, a string holding a lone UTF-16 surrogate, text that is not JSON.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

BIN = Path(sys.executable).parent / "togai-engine"
ANSWER_SECONDS = 3.0  # each answer takes milliseconds; the bound leaves room for a loaded CI machine


class StdioServer:
    def __init__(self, process: asyncio.subprocess.Process) -> None:
        self.process = process

    async def send(self, line: str) -> None:
        assert self.process.stdin is not None
        self.process.stdin.write(line.encode("utf-8", "surrogatepass") + b"\n")
        await self.process.stdin.drain()

    async def answer(self, line: str) -> tuple[dict[str, Any], float]:
        """Sends one line; returns the next message the server writes and how long it took."""
        assert self.process.stdout is not None
        start = time.perf_counter()
        await self.send(line)
        raw = await asyncio.wait_for(self.process.stdout.readline(), ANSWER_SECONDS * 10)
        took = time.perf_counter() - start
        assert raw, "the server closed stdout"
        return json.loads(raw), took


def tool_call(request_id: int, name: str, arguments: str) -> str:
    head = json.dumps({"jsonrpc": "2.0", "id": request_id, "method": "tools/call", "params": {"name": name}})
    return head[:-2] + ', "arguments": ' + arguments + "}}"  # arguments as written, not re-encoded


async def test_every_line_gets_a_prompt_answer_and_the_server_stays_up(database_url, db):
    env = {k: v for k, v in os.environ.items() if not k.startswith("TOGAI_")}
    env.update(TOGAI_DATABASE_URL=database_url, TOGAI_BILLING_INTERVAL_SECONDS="0", TOGAI_HTTP_MAX_REQUEST_BYTES="100000")
    process = await asyncio.create_subprocess_exec(
        str(BIN), "serve", "--transport", "stdio", env=env, stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, limit=2**24)
    server = StdioServer(process)
    try:
        hello, _ = await server.answer(json.dumps({"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": {
            "protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "raw", "version": "1"}}}))
        assert hello["id"] == 0 and "result" in hello
        await server.send('{"jsonrpc": "2.0", "method": "notifications/initialized"}')
        deep = "[" * 5000 + "]" * 5000
        lines: list[tuple[str, Any, str]] = [
            # (line, the id of the answer, what the answer says)
            (tool_call(1, "get_customer", '{"customerId": ' + deep + "}"), 1, "nested too deeply"),
            ('{"params": {"name": "get_customer", "arguments": {"customerId": ' + deep + '}}, "jsonrpc": "2.0", '
             '"id": 2, "method": "tools/call"}', 2, "nested too deeply"),
            (tool_call(3, "get_customer", '{"customerId": "a\\ud800"}'), 3,
             "customerId: contains a lone UTF-16 surrogate (\\ud800)"),
            (tool_call(4, "ingest_event", '{"event": {"schemaName": "llm", "timestamp": "2026-01-05T00:00:00Z", '
                                          '"accountId": "a", "attributes": {"\\udc00": "1"}}}'), 4, "surrogate"),
            (tool_call(5, "update_customer", '{"customerId": "c", "metadata": {"k\\udfff": 1}}'), 5,
             "metadata: the key 'k\\udfff' contains a lone UTF-16 surrogate"),
            (tool_call(6, "get_customer", '{"customerId": ' + "[" * 300 + "]" * 300 + "}"), 6,
             "customerId: is nested more than 64 levels deep"),
            # two of the calls that got no answer in 60 s in the fuzzing campaign
            (tool_call(7, "get_invoice", '{"accountId": ' + "[" * 500 + "]" * 500 + ', "invoiceId": ' + "1" * 31 + "}"), 7,
             "accountId: is nested more than 64 levels deep"),
            (tool_call(11, "list_rate_cards", '{"pricePlanId": ' + "[" * 500 + "]" * 500 + ', "nextToken": 1e400}'), 11,
             "pricePlanId: is nested more than 64 levels deep"),
            (tool_call(8, "get_customer", '{"customerId": "' + "x" * 200_000 + '"}'), 8, "over the limit of 100000"),
            ("not json at all", None, "Parse error"),
            ('{"jsonrpc": "2.0", "id": 9}', 9, "not a JSON-RPC 2.0 message"),
        ]
        for line, request_id, says in lines:
            answer, took = await server.answer(line)
            assert took < ANSWER_SECONDS, f"{line[:60]}: answered after {took:.1f} s"
            assert answer["id"] == request_id, answer
            text = answer["error"]["message"] if "error" in answer else answer["result"]["content"][0]["text"]
            if "result" in answer:
                assert answer["result"]["isError"], answer
            assert says in text, (line[:80], text)
            assert len(text) < 1024 and "internal error" not in text, text
        # still serving, and its answers are the same as before
        alive, _ = await server.answer(tool_call(10, "list_customers", "{}"))
        assert alive["id"] == 10 and not alive["result"].get("isError"), alive
    finally:
        assert process.stdin is not None
        process.stdin.close()
        await asyncio.wait_for(process.wait(), 30)
    assert process.stderr is not None
    log = (await process.stderr.read()).decode()
    assert "Traceback" not in log, log[-3000:]
