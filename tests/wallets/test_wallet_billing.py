"""The wallet inside billing: plan credit grants, real-time balance against accrued charges, credits
applied when an invoice becomes DUE, and given back when it is voided — all through the MCP tools."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from helpers import call


def at(*parts: int) -> datetime:
    return datetime(*parts, tzinfo=UTC)


async def _setup(client: Any) -> None:
    meter = await call(client, "create_usage_meter", name="tokens", eventSchemaName="llm", aggregation="SUM",
                       computations=[{"computation": "tokens"}])
    plan = await call(client, "create_price_plan", name="Credits", pricingCycleConfig={
        "interval": "MONTHLY", "startOffset": {"dayOffset": "1", "monthOffset": "NIL"}, "gracePeriod": 3},
        rateCards={
            "usageRateCards": [{"usageMeterId": meter["id"], "ratePlan": {"pricingModel": "TIERED", "slabs": [
                {"order": 1, "startAfter": "0", "priceType": "PER_UNIT"}]},
                "rateValues": [{"currency": "USD", "slabRates": [{"order": 1, "rate": "0.01"}]}]}],
            "creditGrantRateCards": [{"name": "monthly", "grantDetails": {"priority": 1, "expiryType": "PRICING_CYCLE"},
                                      "rateDetails": {"currencySlabRateDetails": [
                                          {"currency": "USD", "creditAmount": "20"}]}}],
        })
    await call(client, "create_customer", id="cust_acme", name="Acme", account={
        "id": "acme", "name": "Acme", "pricePlanId": plan["id"], "effectiveFrom": "2026-01-01T00:00:00Z"})


async def _tokens(client: Any, event_id: str, when: str, tokens: int) -> None:
    await call(client, "ingest_event", event={"id": event_id, "schemaName": "llm", "timestamp": when,
                                              "accountId": "acme", "attributes": {"tokens": str(tokens)}})


async def test_credits_across_a_billing_cycle(client, clock):
    await _setup(client)
    await call(client, "grant_credit", accountId="acme", amount="50.00", priority=5, purpose="PREPAID_CREDIT",
               idempotencyKey="prepaid-1")
    clock.set(at(2026, 1, 15))
    await _tokens(client, "e1", "2026-01-10T00:00:00Z", 3000)
    wallet = await call(client, "get_wallet_balance", accountId="acme")
    # Plan credit 20.00 (January) + prepaid 50.00 = 70.00; accrued 3000 × 0.01 = 30.00; available 40.00.
    assert (wallet["balance"], wallet["accruedCharges"], wallet["availableBalance"], wallet["overage"]) == (
        "70.00", "30.00", "40.00", False)
    assert [(g["grantorId"], g["remaining"], g["effectiveUntil"]) for g in wallet["grants"]] == [
        (wallet["grants"][0]["grantorId"], "20.00", "2026-02-01T00:00:00Z"), (None, "50.00", None)]
    assert wallet["grants"][0]["grantorId"].endswith(":monthly")

    await _tokens(client, "e2", "2026-01-20T00:00:00Z", 10000)
    wallet = await call(client, "get_wallet_balance", accountId="acme")
    # Accrued 13000 × 0.01 = 130.00 > 70.00: available 70.00 - 130.00 = -60.00, shown as overage.
    assert (wallet["availableBalance"], wallet["overage"]) == ("-60.00", True)
    financial = (await call(client, "get_account", accountId="acme"))["financial"]
    assert financial["wallet"] == {"currency": "USD", "balance": "70.00", "availableBalance": "-60.00"}

    clock.set(at(2026, 2, 4))  # January's grace period ends: its invoice becomes DUE
    jan = next(i for i in (await call(client, "list_invoices", accountId="acme"))["data"] if i["status"] == "DUE")
    # 130.00 due. Burn order: priority 1 first — January's plan credit (expired 1 Feb, but valid through
    # January) 20.00, then February's plan credit (expires 1 Mar) 20.00 — then the prepaid 50.00 (priority 5):
    # 90.00 applied, 40.00 left to pay.
    assert (jan["totalAmount"], jan["creditsApplied"], jan["amountDue"]) == ("130.00", "90.00", "40.00")
    wallet = await call(client, "get_wallet_balance", accountId="acme")
    assert (wallet["balance"], wallet["accruedCharges"], wallet["grants"]) == ("0.00", "0.00", [])

    voided = await call(client, "update_invoice_status", invoiceId=jan["id"], status="VOID")
    assert voided["status"] == "VOID"
    await call(client, "update_invoice_status", invoiceId=jan["id"], status="VOID")  # repeating is a no-op
    wallet = await call(client, "get_wallet_balance", accountId="acme")
    # Given back once: February's 20.00 and the prepaid 50.00; January's 20.00 comes back expired and leaves
    # again at once. Balance 70.00.
    assert wallet["balance"] == "70.00"
    assert sorted(g["remaining"] for g in wallet["grants"]) == ["20.00", "50.00"]
