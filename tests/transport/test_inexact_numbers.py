"""A JSON number a float cannot hold, sent as a tool argument over a real transport (stdio, HTTP): refused
with the argument's path, never read as the float it became.

Both transports parse JSON into floats: 1e-400 underflows to 0.0 and 10.000000000000000001 rounds to 10.0,
so a plan's fee of 1e-400 was stored as a fee of 0.0 and one of 10.000000000000000001 as 10.0, silently. A
number whose float is not the number written is now refused, naming where it is and how to send it.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx2

from togai_engine.apikeys.service import create_key

BIN = Path(sys.executable).parent / "togai-engine"
INIT = {"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": {
    "protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "raw", "version": "1"}}}
INITIALIZED = {"jsonrpc": "2.0", "method": "notifications/initialized"}
RATE = "rateCards.fixedFeeRateCards[0].rateValues[0].rate"


def plan_arguments(name: str, rate: str) -> str:
    """create_price_plan's arguments as JSON text, the fee's rate written as the JSON number `rate`."""
    cards = ('{"fixedFeeRateCards": [{"id": "base", "rateValues": [{"currency": "USD", "rate": RATE}], '
             '"invoiceTiming": "IN_ARREARS", "enableProration": false}]}').replace("RATE", rate)
    return (f'{{"name": "{name}", "pricingCycleConfig": {{"interval": "MONTHLY", "startOffset": {{"dayOffset": '
            f'"1"}}, "gracePeriod": 0}}, "rateCards": {cards}}}')


def tool_call(request_id: int, name: str, arguments: str) -> str:
    head = json.dumps({"jsonrpc": "2.0", "id": request_id, "method": "tools/call", "params": {"name": name}})
    return head[:-2] + ', "arguments": ' + arguments + "}}"  # the arguments as written, never re-encoded


def calls() -> list[tuple[str, str, str]]:
    """(the call as sent, the field the refusal names, the number it quotes)."""
    as_string = json.loads(plan_arguments("S", "1e-400"))
    as_string["rateCards"] = json.dumps(as_string["rateCards"]).replace('"rate": 0.0', '"rate": 1e-400')
    assert "1e-400" in as_string["rateCards"]
    return [
        (tool_call(1, "create_price_plan", plan_arguments("Tiny", "1e-400")), RATE, "1e-400"),  # float: 0.0
        (tool_call(2, "create_price_plan", plan_arguments("Long", "10.000000000000000001")), RATE,
         "10.000000000000000001"),  # float: 10.0
        (tool_call(3, "create_price_plan", plan_arguments("Huge", "-1E+400")), RATE, "-1E+400"),  # float: -inf
        # an exponent beyond a Decimal's (±10**18): was never answered over stdio, a 500 over HTTP
        (tool_call(8, "create_price_plan", plan_arguments("Tinier", "1e-99999999999999999999")), RATE,
         "1e-99999999999999999999"),
        # an object sent as a JSON string (as some clients do) is read the same way
        (tool_call(4, "create_price_plan", json.dumps(as_string)), RATE, "1e-400"),
        # the ingest tools check each event themselves: the event is refused by name too
        (tool_call(5, "ingest_event", '{"event": {"id": "e1", "schemaName": "llm", "timestamp": '
                                      '"2026-01-05T00:00:00Z", "accountId": "acme", "attributes": {"tokens": 1e-400}}}'),
         "attributes.tokens", "1e-400"),
    ]


def assert_refused(answer: dict[str, Any], field: str, number: str) -> None:
    result = answer["result"]
    text = result["content"][0]["text"]
    assert result["isError"], answer
    assert field in text and number in text and "decimal string" in text, text


class Stdio:
    def __init__(self, process: asyncio.subprocess.Process) -> None:
        self.process = process

    async def send(self, line: str) -> None:
        assert self.process.stdin is not None
        self.process.stdin.write(line.encode() + b"\n")
        await self.process.stdin.drain()

    async def answer(self, line: str) -> dict[str, Any]:
        assert self.process.stdout is not None
        await self.send(line)
        return json.loads(await asyncio.wait_for(self.process.stdout.readline(), 30))


async def test_over_stdio_a_number_a_float_cannot_hold_is_refused_by_name(database_url, db) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TOGAI_")}
    env |= {"TOGAI_DATABASE_URL": database_url, "TOGAI_BILLING_INTERVAL_SECONDS": "0"}
    process = await asyncio.create_subprocess_exec(
        str(BIN), "serve", "--transport", "stdio", env=env, stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, limit=2**24)
    server = Stdio(process)
    try:
        assert "result" in await server.answer(json.dumps(INIT))
        await server.send(json.dumps(INITIALIZED))
        for line, field, number in calls():
            assert_refused(await server.answer(line), field, number)
        # nothing was written; an exact JSON number is still taken: 0.1 is the fee 0.1
        listed = await server.answer(tool_call(6, "list_price_plans", "{}"))
        assert listed["result"]["structuredContent"]["data"] == [], listed
        plan = (await server.answer(tool_call(7, "create_price_plan", plan_arguments("Exact", "0.1"))))["result"]
        assert plan["structuredContent"]["rateCards"]["fixedFeeRateCards"][0]["rateValues"][0]["rate"] == "0.1"
    finally:
        assert process.stdin is not None
        process.stdin.close()
        await asyncio.wait_for(process.wait(), 30)


def sse_message(response: httpx2.Response) -> dict[str, Any]:
    if response.headers.get("content-type", "").startswith("application/json"):
        return response.json()
    data = [line[5:].strip() for line in response.text.splitlines() if line.startswith("data:")]
    return json.loads(data[-1])


async def test_over_http_a_number_a_float_cannot_hold_is_refused_by_name(http_server, db) -> None:
    async with db.unit_of_work() as session:
        key = (await create_key(session, "test", ["*"], datetime.now(UTC))).key
    headers = {"Accept": "application/json, text/event-stream", "Content-Type": "application/json",
               "Authorization": f"Bearer {key}"}
    async with httpx2.AsyncClient(timeout=30) as http:
        hello = await http.post(http_server, content=json.dumps(INIT), headers=headers)
        assert hello.status_code == 200, hello.text
        headers["mcp-session-id"] = hello.headers["mcp-session-id"]
        await http.post(http_server, content=json.dumps(INITIALIZED), headers=headers)
        for line, field, number in calls():
            response = await http.post(http_server, content=line, headers=headers)
            assert response.status_code == 200, response.text
            assert_refused(sse_message(response), field, number)
        listed = sse_message(await http.post(http_server, content=tool_call(6, "list_price_plans", "{}"),
                                             headers=headers))
        assert listed["result"]["structuredContent"]["data"] == [], listed
