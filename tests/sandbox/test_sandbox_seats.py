"""Seats over two cycles on a sandbox server, through the MCP tools: the clock moves with advance_clock and
the bill runs it triggers invoice the seats held, period by period.

Umbrella Corp joins on 1 April 2026 (30 days) on a plan charging 12 USD a seat for the first 10 seats and 8 USD
above (TIERED), prorated by time: 4 seats from day one, 10 more on 11 April, 6 fewer on 1 May.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from mcp import Client

from conftest import hosted
from helpers import at, call, call_error
from mcp_server.server import build_server
from test_sandbox_clock import make_sandbox
from togai_engine.common.clock import FixedClock
from togai_engine.store.database import Database

PLAN = {"name": "Seats", "pricingCycleConfig": {"interval": "MONTHLY", "gracePeriod": 2},
        "rateCards": {"licenseRateCards": [{
            "id": "seats", "enableProration": True, "config": {"maxQuantity": 25},
            "ratePlan": {"pricingModel": "TIERED", "slabs": [
                {"order": 1, "startAfter": "0", "priceType": "PER_UNIT"},
                {"order": 2, "startAfter": "10", "priceType": "PER_UNIT"}]},
            "rateValues": [{"currency": "USD", "slabRates": [{"order": 1, "rate": "12"}, {"order": 2, "rate": "8"}]}]}]}}


@pytest.fixture
async def april_sandbox(db: Database) -> AsyncIterator[Client]:
    await make_sandbox(db, at(2026, 4, 1))
    async with hosted(Client(build_server(db, clock=FixedClock(at(2031, 7, 4)), sandbox=True),
                             raise_exceptions=False)) as c:
        yield c


async def totals(client: Client) -> list[tuple[str, str, str]]:
    listed = (await call(client, "list_invoices", accountId="umbrella", pageSize=100))["data"]
    return sorted((i["startDate"][:10], i["status"], i["totalAmount"]) for i in listed)


async def test_seats_over_two_cycles_on_the_sandbox_clock(april_sandbox: Client) -> None:
    client = april_sandbox
    plan = await call(client, "create_price_plan", **PLAN)
    await call(client, "create_customer", id="umbrella", name="Umbrella Corp", account={
        "id": "umbrella", "name": "Umbrella", "pricePlanId": plan["id"]})
    await call(client, "update_license", accountId="umbrella", licenseId="seats", quantity=4)  # at the sandbox's now

    await call(client, "advance_clock", to="2026-04-11")
    grown = await call(client, "update_license", accountId="umbrella", licenseId="seats", quantity=10,
                       updateType="RELATIVE")
    assert (grown["quantity"], grown["currentQuantity"]) == (14, 14)
    # April so far: 4 × 12 = 48 per cycle for 10 of 30 days = 16 ; 14 seats = 10 × 12 + 4 × 8 = 152 per cycle for
    # 20 of 30 days = 101.333.. ; 16 + 101.333.. = 117.333.. -> 117.33
    assert await totals(client) == [("2026-04-01", "DRAFT", "117.33")]

    moved = await call(client, "advance_clock", to="2026-05-01")
    assert (moved["invoicesDue"], moved["draftsOpened"]) == (0, 1)  # April in its 2-day grace period
    await call(client, "update_license", accountId="umbrella", licenseId="seats", quantity=-6, updateType="RELATIVE")
    # May: 8 seats all month, 8 × 12 = 96.00; April unchanged by the May change
    assert await totals(client) == [("2026-04-01", "DRAFT", "117.33"), ("2026-05-01", "DRAFT", "96.00")]

    moved = await call(client, "advance_clock", to="2026-06-03")  # May's grace ends: April and May both closed
    assert (moved["invoicesDue"], moved["failed"]) == (2, [])
    assert await totals(client) == [
        ("2026-04-01", "DUE", "117.33"), ("2026-05-01", "DUE", "96.00"), ("2026-06-01", "DRAFT", "96.00")]
    refused = await call_error(client, "update_license", accountId="umbrella", licenseId="seats", quantity=30,
                               effectiveFrom="2026-06-04")
    assert "config.maxQuantity 25" in refused
    late = await call_error(client, "update_license", accountId="umbrella", licenseId="seats", quantity=1,
                            effectiveFrom="2026-05-20")
    assert "already invoiced (DUE)" in late
