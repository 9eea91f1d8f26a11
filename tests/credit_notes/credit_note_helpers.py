"""A priced account for credit note stories: 0.01 per token (TIERED, one slab) plus a 49.00 platform fee
billed in advance, monthly from 1 January 2026 with a 3-day grace period (January is DUE on 4 February)."""

from __future__ import annotations

from typing import Any

from helpers import call


async def priced_account(client: Any, account_id: str = "acme", *, suffix: str = "",
                         currencies: tuple[str, ...] = ("USD",)) -> dict[str, Any]:
    """Meter, plan and account; returns the plan."""
    meter = await call(client, "create_usage_meter", name=f"tokens{suffix}", eventSchemaName="llm",
                       aggregation="SUM", computations=[{"computation": "tokens"}])
    plan = await call(client, "create_price_plan", name=f"Pro{suffix}", supportedCurrencies=list(currencies),
                      pricingCycleConfig={"interval": "MONTHLY", "startOffset": {"dayOffset": "1", "monthOffset": "NIL"},
                                          "gracePeriod": 3},
                      rateCards={
                          "usageRateCards": [{"name": "tokens", "usageMeterId": meter["id"], "ratePlan": {
                              "pricingModel": "TIERED", "slabs": [{"order": 1, "startAfter": "0", "priceType": "PER_UNIT"}]},
                              "rateValues": [{"currency": c, "slabRates": [{"order": 1, "rate": "0.01"}]}
                                             for c in currencies]}],
                          "fixedFeeRateCards": [{"id": "platform", "rateValues": [{"currency": c, "rate": "49"}
                                                                                  for c in currencies],
                                                 "invoiceTiming": "IN_ADVANCE", "enableProration": True}]})
    await call(client, "create_customer", id=f"cust_{account_id}", name="Acme", account={
        "id": account_id, "name": "Acme", "pricePlanId": plan["id"], "effectiveFrom": "2026-01-01T00:00:00Z"})
    return plan


async def tokens(client: Any, account_id: str, event_id: str, when: str, count: int) -> None:
    await call(client, "ingest_event", event={"id": event_id, "schemaName": "llm", "timestamp": when,
                                              "accountId": account_id, "attributes": {"tokens": str(count)}})


async def due_invoice(client: Any, account_id: str) -> dict[str, Any]:
    """The account's oldest DUE invoice, in full."""
    listed = (await call(client, "list_invoices", accountId=account_id, status="DUE", pageSize=100))["data"]
    return await call(client, "get_invoice", invoiceId=listed[-1]["id"])
