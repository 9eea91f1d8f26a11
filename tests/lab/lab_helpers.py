"""Building blocks for pricing-lab tests: meters, plans and accounts through the MCP tools."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from helpers import at, call, iso, tokens_meter

MONTHLY = {"interval": "MONTHLY", "startOffset": {"dayOffset": "1", "monthOffset": "NIL"}, "gracePeriod": 2}


async def requests_meter(client: Any, name: str = "requests") -> str:
    meter = await call(client, "create_usage_meter", name=name, eventSchemaName="api", aggregation="COUNT")
    return str(meter["id"])


def per_unit_card(meter_id: str, model: str, rates: dict[str, list[tuple[str, str]]],
                  rate_config: dict[str, dict[str, str]] | None = None) -> dict[str, Any]:
    """A usage card of PER_UNIT slabs: rates = {currency: [(startAfter, rate), ...]}."""
    first = next(iter(rates.values()))
    return {
        "usageMeterId": meter_id,
        "ratePlan": {"pricingModel": model, "slabs": [
            {"order": i, "startAfter": start, "priceType": "PER_UNIT"} for i, (start, _) in enumerate(first, start=1)]},
        "rateValues": [
            {"currency": currency, "slabRates": [{"order": i, "rate": rate} for i, (_, rate) in enumerate(slabs, 1)],
             **({"rateConfig": rate_config[currency]} if rate_config and currency in rate_config else {})}
            for currency, slabs in rates.items()],
    }


def fee(name: str, amounts: dict[str, str], *, prorate: bool = False) -> dict[str, Any]:
    return {"id": name, "rateValues": [{"currency": c, "rate": a} for c, a in amounts.items()],
            "enableProration": prorate}


async def account(client: Any, account_id: str, plan_id: str | None = None, since: str | None = None,
                  currency: str = "USD", customer_id: str | None = None) -> None:
    fields: dict[str, Any] = {"id": account_id, "name": account_id, "invoiceCurrency": currency}
    if plan_id:
        fields |= {"pricePlanId": plan_id, "effectiveFrom": since}
    if customer_id is None:
        await call(client, "create_customer", id=f"cust_{account_id}", name="Customer", account=fields)
    else:
        await call(client, "create_account", customerId=customer_id, **fields)


async def tokens(client: Any, account_id: str, when: str, amount: str, event_id: str) -> None:
    result = await call(client, "ingest_event", event={
        "id": event_id, "schemaName": "llm", "timestamp": when, "accountId": account_id,
        "attributes": {"tokens": amount}})
    assert result["status"] == "ACCEPTED", result


async def invoices_of(client: Any, account_ids: tuple[str, ...]) -> dict[tuple[str, str], dict[str, Any]]:
    """(account id, period start) -> the period's invoice, of every invoice of the accounts, its totalAmount net of
    its credit notes (the notes billing issued at plan changes: no caller issues one by hand). An advance invoice
    (the in-advance charges of an association's first period, issued as it started) counts in the total of the
    period it pays for, as the lab prices a period with both: every one of the period's, net of its notes (one a
    change from the association's first instant replaced was credited whole)."""
    invoices: dict[tuple[str, str], dict[str, Any]] = {}
    advance: dict[tuple[str, str], Decimal] = {}
    for account_id in account_ids:
        for invoice in (await call(client, "list_invoices", accountId=account_id, pageSize=100))["data"]:
            key = (account_id, invoice["startDate"])
            net = Decimal(invoice["totalAmount"]) - Decimal(invoice["creditNotesTotal"])
            if invoice["invoiceType"] == "STANDARD_ADVANCED":
                advance[key] = advance.get(key, Decimal(0)) + net
            else:
                invoices[key] = {**invoice, "totalAmount": str(net)}
    for key, total in advance.items():
        invoices[key] = {**invoices[key], "totalAmount": str(Decimal(invoices[key]["totalAmount"]) + total)}
    return invoices


def assert_own_plan_reproduces(result: dict[str, Any], invoices: dict[tuple[str, str], dict[str, Any]]) -> None:
    """In a simulate_price_plan result, the candidate that is each period's own plan charges exactly its invoice
    (the stored one, or the DRAFT computed by invoicing), and every invoice, and nothing else, was compared."""
    seen = set()
    for simulated in result["accounts"]:
        for cycle in simulated["cycles"]:
            key = (simulated["accountId"], cycle["startDate"])
            seen.add(key)
            invoice = invoices[key]
            own = next(c for c in cycle["candidates"] if result["candidates"][c["candidate"]]["pricePlanId"]
                       == invoice["pricePlanId"])
            assert (cycle["status"], cycle["endDate"], cycle["pricePlanId"]) == (
                invoice["status"], invoice["endDate"], invoice["pricePlanId"])
            assert own["amount"] == cycle["actual"] == invoice["totalAmount"], (key, own, cycle, invoice)
            assert own["difference"] == "0.00"
    assert seen == set(invoices)


def message(error: str) -> str:
    """A tool error's text without the framework's "Error executing tool X: " prefix."""
    return error.split(": ", 1)[1] if error.startswith("Error executing tool ") else error


# --- the two-plan story of test_simulate_price_plan.py (also used by the CLI tests) ---


def starter(meter: str) -> dict[str, Any]:
    """Starter (USD and EUR): tokens TIERED 0.002 up to 10,000 then 0.001 (EUR 0.0018 / 0.0009); fee 10 (EUR 9)."""
    return {"name": "Starter", "pricingCycleConfig": MONTHLY, "supportedCurrencies": ["USD", "EUR"],
            "rateCards": {"usageRateCards": [per_unit_card(meter, "TIERED", {
                "USD": [("0", "0.002"), ("10000", "0.001")], "EUR": [("0", "0.0018"), ("10000", "0.0009")]})],
                "fixedFeeRateCards": [fee("platform", {"USD": "10", "EUR": "9"})]}}


def scale(meter: str) -> dict[str, Any]:
    """Scale (USD only), inline, monthly: tokens VOLUME 0.0015, or 0.0008 for all above 20,000; fee 25; commitment
    40."""
    return {"name": "Scale", "pricingCycleConfig": {"interval": "MONTHLY"},
            "rateCards": {"usageRateCards": [per_unit_card(meter, "VOLUME", {
                "USD": [("0", "0.0015"), ("20000", "0.0008")]})],
                "fixedFeeRateCards": [fee("platform", {"USD": "25"})]},
            "minimumCommitment": {"rateValues": [{"currency": "USD", "rate": "40"}]}}


async def setup(client: Any, clock: Any) -> tuple[str, str]:
    meter = await tokens_meter(client)
    plan = await call(client, "create_price_plan", **starter(meter))
    await account(client, "acc_a", plan["id"], iso(2026, 1, 1))
    await account(client, "acc_b", plan["id"], iso(2026, 1, 1), customer_id="cust_acc_a")
    await account(client, "acc_c", plan["id"], iso(2026, 1, 1), currency="EUR")
    await account(client, "acc_d")  # no plan
    clock.set(at(2026, 1, 2))
    await tokens(client, "acc_a", iso(2026, 1, 10), "5000", "a1")
    await tokens(client, "acc_a", iso(2026, 2, 10), "30000", "a2")
    await tokens(client, "acc_b", iso(2026, 1, 31, 23, 59), "15000", "b1")
    await tokens(client, "acc_c", iso(2026, 1, 3), "12000", "c1")
    await tokens(client, "acc_c", iso(2026, 2, 3), "2000", "c2")
    await tokens(client, "acc_a", iso(2026, 3, 2), "1000", "a3")  # March, still open at the simulation
    clock.set(at(2026, 3, 5))  # January and February are past their 2-day grace
    await call(client, "list_invoices")  # reading catches billing up: January and February become DUE
    return meter, plan["id"]
