"""The demo's steps beyond customers and accounts: meter, plan, usage, metrics, invoice, wallet,
entitlements and a pricing-lab comparison. Ids are derived from the current month, so re-running
the demo in the same month replays the same calls (all idempotent) and shows the same numbers.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta
from typing import Any

from mcp import Client

from mcp_server.demo import call, show
from togai_engine.common.validation import instant_text

ACCOUNT = "demo_acme_main"


def _month_start(now: datetime) -> datetime:
    return now.replace(day=1, hour=0, minute=0, second=0, microsecond=0)


def _growth_plan(meter_id: str) -> dict[str, Any]:
    return {
        "name": "Demo Growth",
        "pricingCycleConfig": {"interval": "MONTHLY", "startOffset": {"dayOffset": "1"}, "gracePeriod": 3},
        "supportedCurrencies": ["USD"],
        "rateCards": {
            "usageRateCards": [{
                "usageMeterId": meter_id, "displayName": "LLM tokens",
                "ratePlan": {"pricingModel": "TIERED", "slabs": [
                    {"order": 1, "startAfter": "0", "priceType": "PER_UNIT"},
                    {"order": 2, "startAfter": "100000", "priceType": "PER_UNIT"}]},
                "rateValues": [{"currency": "USD", "slabRates": [
                    {"order": 1, "rate": "0.0002"}, {"order": 2, "rate": "0.0001"}]}],
            }],
            "fixedFeeRateCards": [{"id": "platform", "displayName": "Platform fee", "invoiceTiming": "IN_ARREARS",
                                   "rateValues": [{"currency": "USD", "rate": "49"}]}],
            "billingEntitlementRateCards": [
                {"featureId": "llm_tokens", "displayName": "LLM tokens per month", "usageMeterId": meter_id,
                 "featureConfigs": [{"featureCreditLimit": "500000"}]},
                {"featureId": "sso", "displayName": "Single sign-on"},
            ],
        },
    }


def _volume_candidate(meter_id: str) -> dict[str, Any]:
    return {
        "name": "Demo Volume",
        "pricingCycleConfig": {"interval": "MONTHLY", "startOffset": {"dayOffset": "1"}},
        "supportedCurrencies": ["USD"],
        "rateCards": {"usageRateCards": [{
            "usageMeterId": meter_id,
            "ratePlan": {"pricingModel": "VOLUME", "slabs": [
                {"order": 1, "startAfter": "0", "priceType": "PER_UNIT"},
                {"order": 2, "startAfter": "100000", "priceType": "PER_UNIT"}]},
            "rateValues": [{"currency": "USD", "slabRates": [{"order": 1, "rate": "0.0003"},
                                                              {"order": 2, "rate": "0.00015"}]}],
        }]},
    }


async def metering_and_billing(client: Client, now: datetime) -> None:
    month = _month_start(now)
    meter = await call(client, "create_usage_meter", id="demo_tokens", name="demo_tokens", eventSchemaName="llm_call",
                       aggregation="SUM", computations=[{"computation": "tokens", "order": 1}],
                       billableName="LLM tokens")
    show("create_usage_meter (SUM of the `tokens` attribute of llm_call events)", meter)
    plan = await call(client, "create_price_plan", **_growth_plan(meter["id"]))
    show("create_price_plan", plan, fields=["id", "name", "status", "supportedCurrencies"])
    show("list_rate_cards", await call(client, "list_rate_cards", pricePlanId=plan["id"]), fields=["type", "name"])
    account = await call(client, "update_account", accountId=ACCOUNT, pricePlanId=plan["id"],
                         effectiveFrom=instant_text(month))
    show("update_account (attach the plan from the start of this month)", account)

    # 40 events spread over the month so far (none after `now`: a sandbox would reject it), 3,000 tokens each;
    # ids are stable, so replays dedupe.
    span = max(now - month - timedelta(minutes=1), timedelta(0))
    events = [{"id": f"demo_{month:%Y%m}_{i}", "schemaName": "llm_call", "accountId": "acme",
               "timestamp": instant_text(month + span * i / 40), "attributes": {"tokens": "3000"},
               "dimensions": {"model": "small" if i % 2 else "large"}} for i in range(40)]
    result = await call(client, "ingest_batch_events", events=events)
    show("ingest_batch_events (40 events; accountId given by the alias 'acme')", result)
    retry = await call(client, "ingest_event", event=events[0])
    show("ingest_event (a retry of the first event: counted once)", retry)

    metrics = await call(client, "get_metrics", startTime=instant_text(month), endTime=instant_text(month + timedelta(days=32)),
                         metricQueries=[{"id": "usage", "name": "USAGE", "aggregationPeriod": "MONTH",
                                         "groupBy": "USAGE_METER_ID"},
                                        {"id": "events", "name": "EVENTS", "aggregationPeriod": "MONTH"}])
    show("get_metrics (USAGE and EVENTS this month)", metrics)
    draft = await call(client, "get_invoice", accountId=ACCOUNT)
    show("get_invoice (the open cycle's DRAFT: 120,000 tokens = 100,000 x 0.0002 + 20,000 x 0.0001 = "
         "22.00, plus the 49.00 platform fee)",
         draft, fields=["id", "status", "startDate", "endDate", "totalAmount", "currency"])
    credit = await call(client, "grant_credit", accountId=ACCOUNT, amount="25", purpose="welcome credit",
                        idempotencyKey="demo_welcome_credit")
    show("grant_credit (25.00 USD; the idempotency key makes a re-run return the same grant)", credit)
    show("get_wallet_balance", await call(client, "get_wallet_balance", accountId=ACCOUNT))
    show("check_entitlement (llm_tokens, 1,000 more tokens)",
         await call(client, "check_entitlement", accountId=ACCOUNT, featureId="llm_tokens", quantity="1000"))
    show("check_entitlement (a feature the plan lacks)",
         await call(client, "check_entitlement", accountId=ACCOUNT, featureId="audit_export"))
    show("list_invoices", await call(client, "list_invoices", accountId=ACCOUNT),
         fields=["id", "status", "startDate", "totalAmount"])

    quote = await call(client, "calculate_revenue", pricePlanId=plan["id"], usage={meter["id"]: "1200000"})
    show("calculate_revenue (what do 1.2M tokens cost on Demo Growth?)", quote,
         fields=["pricePlanName", "currency", "subTotal", "trueUp", "total"])
    simulation = await call(client, "simulate_price_plan", candidates=[plan["id"], _volume_candidate(meter["id"])],
                            accountIds=[ACCOUNT], lastCycles=1)
    show("simulate_price_plan (Demo Growth vs an inline Demo Volume plan, this cycle)", simulation,
         fields=["candidates", "totals"])


STEPS: list[Callable[[Client, datetime], Awaitable[None]]] = [metering_and_billing]
