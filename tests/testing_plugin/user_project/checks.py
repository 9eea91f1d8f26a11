"""The plugin's behaviour, seen from a user's project: copied as test_checks.py into a temporary directory
outside the repository, next to the example's conftest.py, and run by test_plugin_from_another_project.py.

TOGAI_CHECKS_OUT names a file where tests note what the outer test verifies after the run (the databases
they used are dropped, the HTTP server is stopped)."""

from __future__ import annotations

import json
import os
from datetime import UTC, datetime
from decimal import Decimal

import anyio
import asyncpg
import httpx2
import pytest
from mcp import Client
from mcp.client.streamable_http import streamable_http_client

from mcp_server.sandbox_engine import sandbox_engine
from togai_engine.testing import AsyncTogai, BillingFailed, Togai, TogaiHttp, ToolCallError


def note(**facts: str) -> None:
    """Appends facts for the outer test."""
    with open(os.environ["TOGAI_CHECKS_OUT"], "a") as out:
        out.write(json.dumps(facts) + "\n")


def customer_ids(togai: Togai) -> list[str]:
    return [customer["id"] for customer in togai.call("list_customers")["data"]]


# Run in either order, each sees only its own customer: every test has a database of its own.
def test_isolation_first(togai: Togai) -> None:
    togai.call("create_customer", id="first", name="First")
    assert customer_ids(togai) == ["first"]
    note(database=togai.url)


def test_isolation_second(togai: Togai) -> None:
    togai.call("create_customer", id="second", name="Second")
    assert customer_ids(togai) == ["second"]
    note(database=togai.url)


def test_default_start_is_fixed(togai: Togai) -> None:
    assert togai.now == datetime(2026, 1, 1, tzinfo=UTC)


@pytest.mark.togai_start("2026-03-01")
def test_marker_sets_the_start(togai: Togai) -> None:
    assert togai.now == datetime(2026, 3, 1, tzinfo=UTC)
    assert togai.call("get_clock")["startedAt"] == "2026-03-01T00:00:00Z"


class TestOverriddenStart:
    @pytest.fixture
    def togai_start(self) -> str:
        return "2025-07-15T08:30:00+02:00"

    def test_an_overriding_fixture_sets_the_start(self, togai: Togai) -> None:
        assert togai.now == datetime(2025, 7, 15, 6, 30, tzinfo=UTC)


def test_advance_by_and_to_with_a_datetime(togai: Togai) -> None:
    moved = togai.advance(by="P1M")
    assert (moved["previous"], moved["now"]) == ("2026-01-01T00:00:00Z", "2026-02-01T00:00:00Z")
    togai.advance(to=datetime(2026, 2, 10, 12, tzinfo=UTC))
    assert togai.now == datetime(2026, 2, 10, 12, tzinfo=UTC)
    with pytest.raises(TypeError, match="exactly one of by="):
        togai.advance(by="P1D", to="2026-03-01")


async def _switch_currency(url: str, account: str, currency: str) -> None:
    """Changes an account's currency behind the engine's back: its plan has no rate in it, so it cannot be
    billed (the engine refuses such a change through its tools)."""
    conn = await asyncpg.connect(url.replace("postgresql+asyncpg://", "postgresql://"))
    try:
        await conn.execute("UPDATE accounts SET invoice_currency = $1 WHERE id = $2", currency, account)
        await conn.execute("UPDATE invoices SET currency = $1 WHERE account_id = $2", currency, account)
    finally:
        await conn.close()


def test_an_account_the_clock_cannot_bill_raises_billing_failed(togai: Togai) -> None:
    plan = togai.call("create_price_plan", name="Fee", pricingCycleConfig={
        "interval": "MONTHLY", "startOffset": {"dayOffset": "1"}, "gracePeriod": 0}, supportedCurrencies=["USD"],
        rateCards={"fixedFeeRateCards": [{"id": "fee", "rateValues": [{"currency": "USD", "rate": 10}]}]})
    togai.call("create_customer", id="c", name="C", account={"id": "a", "name": "A", "invoiceCurrency": "USD",
                                                              "pricePlanId": plan["id"]})
    anyio.run(_switch_currency, togai.url, "a", "EUR")
    with pytest.raises(BillingFailed) as raised:
        togai.advance(to="2026-02-02")
    assert [failure["accountId"] for failure in raised.value.failed] == ["a"]
    assert "could not be billed: a:" in str(raised.value)
    assert togai.now == datetime(2026, 2, 2, tzinfo=UTC)  # the clock moved all the same
    anyio.run(_switch_currency, togai.url, "a", "USD")  # fixed: the next advance bills January's 10.00 fee
    assert togai.advance(by="PT1H", allow_failures=True)["failed"] == []
    january = togai.call("list_invoices", accountId="a", status="DUE")["data"]
    assert [(invoice["startDate"], invoice["totalAmount"]) for invoice in january] == [
        ("2026-01-01T00:00:00Z", "10.00")]


def test_a_decimal_argument_is_sent_as_its_exact_text(togai: Togai) -> None:
    togai.call("create_customer", id="c", name="C", account={"id": "a", "name": "A", "invoiceCurrency": "USD"})
    togai.call("grant_credit", accountId="a", amount=Decimal("12.50"), purpose="welcome", idempotencyKey="w")
    assert togai.call("get_wallet_balance", accountId="a")["balance"] == "12.50"


def test_a_tool_error_raises_tool_call_error(togai: Togai) -> None:
    with pytest.raises(ToolCallError) as raised:
        togai.call("get_customer", customerId="nope")
    error = raised.value
    assert (error.tool, error.arguments) == ("get_customer", {"customerId": "nope"})
    assert error.message == "customer 'nope' does not exist; list_customers shows the ids"
    assert str(error) == "get_customer failed: customer 'nope' does not exist; list_customers shows the ids"

    togai.advance(to="2026-02-01")
    with pytest.raises(ToolCallError) as raised:
        togai.advance(to="2026-01-15")
    assert raised.value.tool == "advance_clock"
    assert "before the sandbox time 2026-02-01" in raised.value.message and "only moves forward" in raised.value.message
    assert not raised.value.message.startswith("Error executing tool")


def test_the_raw_client_through_the_portal(togai: Togai) -> None:
    tools = {tool.name for tool in togai.portal.call(togai.client.list_tools).tools}
    assert {"advance_clock", "get_clock", "ingest_event"} <= tools


@pytest.mark.asyncio
async def test_togai_async_under_pytest_asyncio(togai_async: AsyncTogai, togai: Togai) -> None:
    await togai_async.call("create_customer", id="async", name="Async")
    await togai_async.advance(by="P1D")
    assert await togai_async.now() == datetime(2026, 1, 2, tzinfo=UTC)
    assert customer_ids(togai) == ["async"] and togai_async.url == togai.url  # one engine, one database
    with pytest.raises(ToolCallError, match="get_customer failed: customer 'nope' does not exist"):
        await togai_async.call("get_customer", customerId="nope")


@pytest.mark.anyio
async def test_togai_async_under_anyio(togai_async: AsyncTogai) -> None:
    await togai_async.advance(to="2026-01-05")
    assert await togai_async.now() == datetime(2026, 1, 5, tzinfo=UTC)


@pytest.mark.asyncio
async def test_a_raw_engine_in_the_tests_own_loop(togai_server_url: str, togai_start: datetime) -> None:
    async with sandbox_engine(togai_server_url, togai_start) as engine:
        result = await engine.client.call_tool("get_clock", {})
        assert result.structured_content["now"] == "2026-01-01T00:00:00Z"


async def http_calls(http: TogaiHttp) -> tuple[str, str]:
    async with Client(streamable_http_client(http.url, http_client=httpx2.AsyncClient(
            headers=http.headers, timeout=30))) as client:
        created = await client.call_tool("create_customer", {"id": "over-http", "name": "Over HTTP"})
        assert not created.is_error, created.content
        moved = await client.call_tool("advance_clock", {"by": "P3D"})  # clock:write: the key has every scope
        assert not moved.is_error, moved.content
        audit = await client.call_tool("list_audit_log", {})
        assert not audit.is_error, audit.content
        actors = {row["tool"]: row["actor"] for row in audit.structured_content["data"]}
        return actors["keys create"], actors["create_customer"]


@pytest.mark.togai_start("2026-04-01")
def test_togai_http_serves_the_same_database_at_its_time(togai: Togai, togai_http: TogaiHttp) -> None:
    assert togai_http.headers == {"Authorization": f"Bearer {togai_http.key}"}
    assert togai_http.url.startswith("http://127.0.0.1:") and togai_http.url.endswith("/mcp")
    key_maker, http_caller = anyio.run(http_calls, togai_http)
    assert key_maker == "pytest" and http_caller.startswith("key:")
    assert customer_ids(togai) == ["over-http"]
    assert togai.now == datetime(2026, 4, 4, tzinfo=UTC)  # the HTTP server's advance moved this sandbox
    anonymous = httpx2.post(togai_http.url, json={"jsonrpc": "2.0", "id": 1, "method": "tools/list"})
    assert anonymous.status_code == 401
    note(database=togai.url, http=togai_http.url)
