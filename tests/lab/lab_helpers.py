"""Building blocks for pricing-lab tests: meters, plans and accounts through the MCP tools."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from helpers import call

MONTHLY = {"interval": "MONTHLY", "startOffset": {"dayOffset": "1", "monthOffset": "NIL"}, "gracePeriod": 2}


def at(*parts: int) -> datetime:
    return datetime(*parts, tzinfo=UTC)


def iso(*parts: int) -> str:
    return at(*parts).isoformat().replace("+00:00", "Z")


async def tokens_meter(client: Any, name: str = "tokens") -> str:
    meter = await call(client, "create_usage_meter", name=name, eventSchemaName="llm", aggregation="SUM",
                       computations=[{"computation": "tokens"}])
    return str(meter["id"])


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


def message(error: str) -> str:
    """A tool error's text without the framework's "Error executing tool X: " prefix."""
    return error.split(": ", 1)[1] if error.startswith("Error executing tool ") else error
