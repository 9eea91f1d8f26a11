"""Every paged list refuses a nextToken that decodes but was not issued by it (edited by hand, or
of another list or account) with a nextToken error, never an internal error, and writes nothing."""

from __future__ import annotations

import base64
import json
from typing import Any

from conftest import row_counts
from helpers import call, call_error


def _token(body: Any) -> str:
    return base64.urlsafe_b64encode(json.dumps(body).encode()).decode().rstrip("=")


async def test_edited_tokens_are_refused_by_every_paged_list(client, db):
    await call(client, "create_customer", id="c1", name="C", account={"id": "a1", "name": "A"})
    await call(client, "grant_credit", accountId="a1", amount="5.00", idempotencyKey="k")
    meter = await call(client, "create_usage_meter", name="calls", eventSchemaName="api", aggregation="COUNT")
    plan = await call(client, "create_price_plan", name="P", pricingCycleConfig={
        "interval": "MONTHLY", "startOffset": {"dayOffset": "1", "monthOffset": "NIL"}, "gracePeriod": 0},
        rateCards={"usageRateCards": [{"usageMeterId": meter["id"], "ratePlan": {"pricingModel": "TIERED", "slabs": [
            {"order": 1, "startAfter": "0", "priceType": "PER_UNIT"}]},
            "rateValues": [{"currency": "USD", "slabRates": [{"order": 1, "rate": "1"}]}]}]})
    lists: list[tuple[str, str, dict[str, Any]]] = [
        ("list_customers", "customers", {}), ("list_accounts", "accounts", {}), ("list_audit_log", "audit", {}),
        ("list_events", "events", {}), ("list_event_schemas", "event_schemas", {}),
        ("list_usage_meters", "usage_meters", {}), ("list_price_plans", "price_plans", {}),
        ("list_rate_cards", "rate_cards", {"pricePlanId": plan["id"]}), ("list_invoices", "invoices", {}),
        ("list_wallet_entries", "wallet_entries:a1", {"accountId": "a1"}),
    ]
    before = await row_counts(db)
    for tool, kind, arguments in lists:
        # each list's own first page works, and its token works
        assert "data" in await call(client, tool, pageSize=1, **arguments)
        for after in (["abc"], [None], [10**30], [], [True], [1.5], [{"x": 1}], "3"):
            error = await call_error(client, tool, nextToken=_token({"k": kind, "after": after}), **arguments)
            assert "nextToken" in error and "internal error" not in error, (tool, after, error)
        for body in ([1], "x", None, {"k": "another_list", "after": [1]}):
            error = await call_error(client, tool, nextToken=_token(body), **arguments)
            assert "nextToken" in error and "internal error" not in error, (tool, body, error)
    assert await row_counts(db) == before
