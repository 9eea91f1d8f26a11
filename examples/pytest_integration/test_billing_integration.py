"""A user's integration test of their billing against a throwaway togai engine (the pytest plugin).

Each test gets a fresh sandbox database starting at 2026-01-01T00:00:00Z, so every amount below is the same
on every run. `billing_setup` stands for the project's own code that configures pricing; `report_usage`
for its code that reports usage to the engine over HTTP.
"""

from __future__ import annotations

from typing import Any

import anyio
import httpx2
from mcp import Client
from mcp.client.streamable_http import streamable_http_client

from togai_engine.testing import Togai, TogaiHttp

PLAN = {
    "name": "Growth",
    # monthly cycles from the 1st; a cycle's invoice becomes DUE one day after it ends
    "pricingCycleConfig": {"interval": "MONTHLY", "startOffset": {"dayOffset": "1"}, "gracePeriod": 1},
    "supportedCurrencies": ["USD"],
    "rateCards": {
        "usageRateCards": [{
            "usageMeterId": "tokens", "displayName": "LLM tokens",
            "ratePlan": {"pricingModel": "TIERED", "slabs": [
                {"order": 1, "startAfter": "0", "priceType": "PER_UNIT"},
                {"order": 2, "startAfter": "100000", "priceType": "PER_UNIT"}]},
            "rateValues": [{"currency": "USD", "slabRates": [
                {"order": 1, "rate": "0.0002"}, {"order": 2, "rate": "0.0001"}]}],
        }],
        "fixedFeeRateCards": [{"id": "platform", "displayName": "Platform fee", "invoiceTiming": "IN_ARREARS",
                               "rateValues": [{"currency": "USD", "rate": "49"}]}],
        "billingEntitlementRateCards": [
            {"featureId": "llm_tokens", "displayName": "LLM tokens per month", "usageMeterId": "tokens",
             "featureConfigs": [{"featureCreditLimit": "500000"}]}],
    },
}


def billing_setup(togai: Togai) -> str:
    """The meter, the plan and a customer whose account is on it from January 1st; the account's id."""
    togai.call("create_usage_meter", id="tokens", name="tokens", eventSchemaName="llm_call", aggregation="SUM",
               computations=[{"computation": "tokens", "order": 1}], billableName="LLM tokens")
    plan = togai.call("create_price_plan", **PLAN)
    togai.call("create_customer", id="acme", name="Acme Corp", account={
        "id": "acme-main", "name": "Acme main", "invoiceCurrency": "USD", "pricePlanId": plan["id"],
        "effectiveFrom": "2026-01-01T00:00:00Z"})
    return "acme-main"


def llm_call(event_id: str, day: int, tokens: int) -> dict[str, Any]:
    return {"id": event_id, "schemaName": "llm_call", "accountId": "acme-main",
            "timestamp": f"2026-01-{day:02d}T12:00:00Z", "attributes": {"tokens": str(tokens)}}


def test_a_month_of_usage_is_invoiced_and_resets_the_entitlement(togai: Togai) -> None:
    account = billing_setup(togai)
    togai.advance(to="2026-01-20")  # usage can only be dated up to the sandbox's now
    result = togai.call("ingest_batch_events", events=[
        llm_call("e1", 3, 50_000), llm_call("e2", 10, 70_000), llm_call("e3", 19, 30_000)])
    assert (result["accepted"], result["rejected"]) == (3, 0)

    # 150,000 tokens used of the 500,000 allowed: 350,000 more fit exactly, one more does not
    assert togai.call("check_entitlement", accountId=account, featureId="llm_tokens", quantity="350000")["entitled"]
    over = togai.call("check_entitlement", accountId=account, featureId="llm_tokens", quantity="350001")
    assert not over["entitled"] and over["reason"] == "LIMIT_REACHED"

    togai.advance(by="P1M")  # to 2026-02-20: January's cycle ended on Feb 1, its grace on Feb 2
    january = togai.call("list_invoices", accountId=account, status="DUE")["data"]
    assert len(january) == 1 and january[0]["startDate"] == "2026-01-01T00:00:00Z"
    # tokens, tiered: 100,000 x 0.0002 = 20.00, plus the 50,000 above 100,000 x 0.0001 = 5.00;
    # platform fee 49.00 (in arrears, on the cycle's own invoice): 20.00 + 5.00 + 49.00 = 74.00
    assert january[0]["totalAmount"] == "74.00"

    # February is a new cycle: its usage starts again from 0
    assert togai.call("check_entitlement", accountId=account, featureId="llm_tokens", quantity="500000")["entitled"]


async def report_usage(url: str, headers: dict[str, str], events: list[dict[str, Any]]) -> dict[str, Any]:
    """The project's usage reporter: sends events over streamable HTTP; the engine's answer."""
    http = httpx2.AsyncClient(headers=headers, timeout=30)
    async with Client(streamable_http_client(url, http_client=http)) as client:
        result = await client.call_tool("ingest_batch_events", {"events": events})
        assert not result.is_error, result.content
        return result.structured_content


def test_usage_reported_over_http_reaches_the_same_engine(togai: Togai, togai_http: TogaiHttp) -> None:
    account = billing_setup(togai)
    togai.advance(to="2026-01-20")
    events = [llm_call("h1", 5, 120_000), llm_call("h1", 5, 120_000)]  # the same id twice: a retry
    answer = anyio.run(report_usage, togai_http.url, togai_http.headers, events)
    assert (answer["accepted"], answer["duplicates"], answer["duplicateIndexes"]) == (1, 1, [1])

    # the HTTP server and `togai` share one database: the DRAFT prices 120,000 tokens once:
    # 100,000 x 0.0002 = 20.00 + 20,000 x 0.0001 = 2.00, plus the 49.00 platform fee = 71.00
    assert togai.call("get_invoice", accountId=account)["totalAmount"] == "71.00"
