"""Known billing data for the prompt, resource, completion and subscription tests.

Plan "Growth" (monthly from the 1st, gracePeriod 1 day): meter um_tokens (SUM of `tokens`) TIERED 0.10 for the
first 100 tokens and 0.05 above; meter um_requests (COUNT) not priced; fixed fee "platform" 10 USD in arrears;
feature beta_search, metered on um_tokens, limit 1000 per cycle. Plan "Starter": the fee alone, no feature.

acme (account acme-main, alias acme-eu) is on Growth from 1 January 2026 and sends 80 + 40 + 100 = 220 tokens
in January; globex (account globex-main) is on Starter and sends 50 tokens. The story ends on 5 February: the
January invoices are DUE (closed on 2 February), the February ones DRAFT.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import anyio
import mcp_types

from helpers import call

JAN_1 = "2026-01-01T00:00:00Z"
FEB_5 = datetime(2026, 2, 5, tzinfo=UTC)


class UpdatedUris:
    """A client's message_handler that collects the URIs of the resource updates it hears (the 2025 wire's
    notifications/resources/updated); `arrived` is set by the first."""

    def __init__(self) -> None:
        self.uris: list[str] = []
        self.arrived = anyio.Event()

    async def __call__(self, message: Any) -> None:
        if isinstance(message, mcp_types.ResourceUpdatedNotification):
            self.uris.append(str(message.params.uri))
            self.arrived.set()


@dataclass(frozen=True)
class Story:
    growth: str  # plan ids
    starter: str
    acme_january: str  # invoice ids
    acme_february: str
    globex_february: str


async def tell(client: Any, clock: Any) -> Story:
    await call(client, "create_usage_meter", id="um_tokens", name="tokens", eventSchemaName="llm", aggregation="SUM",
               computations=[{"computation": "tokens"}])
    await call(client, "create_usage_meter", id="um_requests", name="requests", eventSchemaName="llm",
               aggregation="COUNT")
    cycle = {"interval": "MONTHLY", "startOffset": {"dayOffset": "1"}, "gracePeriod": 1}
    fee = {"id": "platform", "rateValues": [{"currency": "USD", "rate": "10"}], "invoiceTiming": "IN_ARREARS"}
    growth = await call(client, "create_price_plan", name="Growth", pricingCycleConfig=cycle, rateCards={
        "usageRateCards": [{"usageMeterId": "um_tokens", "ratePlan": {"pricingModel": "TIERED", "slabs": [
            {"order": 1, "startAfter": 0, "priceType": "PER_UNIT"},
            {"order": 2, "startAfter": 100, "priceType": "PER_UNIT"}]},
            "rateValues": [{"currency": "USD", "slabRates": [{"order": 1, "rate": "0.10"},
                                                             {"order": 2, "rate": "0.05"}]}]}],
        "fixedFeeRateCards": [fee],
        "billingEntitlementRateCards": [{"featureId": "beta_search", "usageMeterId": "um_tokens",
                                         "featureConfigs": [{"featureCreditLimit": "1000"}]}]})
    starter = await call(client, "create_price_plan", name="Starter", pricingCycleConfig=cycle,
                         rateCards={"fixedFeeRateCards": [fee]})
    await call(client, "create_customer", id="acme", name="Acme Corp", account={
        "id": "acme-main", "name": "Acme main", "aliases": ["acme-eu"], "pricePlanId": growth["id"],
        "effectiveFrom": JAN_1})
    await call(client, "create_customer", id="globex", name="Globex", account={
        "id": "globex-main", "name": "Globex main", "pricePlanId": starter["id"], "effectiveFrom": JAN_1})
    for day, tokens in ((2, "80"), (3, "40"), (5, "100")):
        await call(client, "ingest_event", event={"id": f"acme-jan-{day}", "schemaName": "llm", "accountId": "acme-eu",
                                                  "timestamp": f"2026-01-0{day}T12:00:00Z",
                                                  "attributes": {"tokens": tokens}})
    await call(client, "ingest_event", event={"id": "globex-jan-1", "schemaName": "llm", "accountId": "globex-main",
                                              "timestamp": "2026-01-10T12:00:00Z", "attributes": {"tokens": "50"}})
    clock.set(FEB_5)
    acme = (await call(client, "list_invoices", accountId="acme-main"))["data"]
    globex = (await call(client, "list_invoices", accountId="globex-main"))["data"]
    assert [(i["status"], i["startDate"]) for i in acme] == [("DRAFT", "2026-02-01T00:00:00Z"),
                                                            ("DUE", "2026-01-01T00:00:00Z")]
    return Story(growth=growth["id"], starter=starter["id"], acme_january=acme[1]["id"],
                 acme_february=acme[0]["id"], globex_february=globex[0]["id"])
