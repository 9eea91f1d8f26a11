"""A priced account for credit note stories: 0.01 per token (TIERED, one slab) plus a 49.00 platform fee
billed in arrears, monthly from 1 January 2026 with a 3-day grace period (January is DUE on 4 February)."""

from __future__ import annotations

from typing import Any

from helpers import at, call


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
                                                 "invoiceTiming": "IN_ARREARS", "enableProration": True}]})
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


async def january_due(client: Any, clock: Any, *, currencies: tuple[str, ...] = ("USD",),
                      **grant: Any) -> dict[str, Any]:
    """acme on the priced plan with 3000 tokens on 10 January and, given `grant`'s arguments, a grant_credit on
    15 January; returns January's invoice, in full, as it is on 4 February when it became DUE
    (3000 × 0.01 + 49.00 = 79.00)."""
    clock.set(at(2026, 1, 15))
    await priced_account(client, currencies=currencies)
    await tokens(client, "acme", "e1", "2026-01-10T00:00:00Z", 3000)
    if grant:
        await call(client, "grant_credit", accountId="acme", **grant)
    clock.set(at(2026, 2, 4))
    return await due_invoice(client, "acme")


async def january_and_february_due(client: Any, clock: Any, february_tokens: int) -> tuple[str, str]:
    """acme on the priced plan with 3000 tokens on 10 January and `february_tokens` on 10 February, seen on
    4 March when both months are DUE; returns (january, february) invoice ids. January owes
    3000 × 0.01 + 49.00 = 79.00, February february_tokens × 0.01 + 49.00."""
    clock.set(at(2026, 1, 15))
    await priced_account(client)
    await tokens(client, "acme", "e1", "2026-01-10T00:00:00Z", 3000)
    await tokens(client, "acme", "e2", "2026-02-10T00:00:00Z", february_tokens)
    clock.set(at(2026, 3, 4))
    listed = (await call(client, "list_invoices", accountId="acme", status="DUE"))["data"]
    assert len(listed) == 2, listed
    return listed[1]["id"], listed[0]["id"]  # newest first
