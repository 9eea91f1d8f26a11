"""Every paged list refuses a nextToken that decodes but was not issued by it (edited by hand, or
of another list or account) with a nextToken error, never an internal error, and writes nothing."""

from __future__ import annotations

import base64
import json
from typing import Any

from conftest import row_counts
from helpers import call, call_error
from togai_engine.audit.service import page_kind as audit_page_kind


def _token(body: Any) -> str:
    return base64.urlsafe_b64encode(json.dumps(body).encode()).decode().rstrip("=")


async def test_edited_tokens_are_refused_by_every_paged_list(client, db):
    await call(client, "create_customer", id="c1", name="C", account={"id": "a1", "name": "A"})
    await call(client, "create_customer", id="c2", name="D", account={"id": "a2", "name": "B"})
    await call(client, "grant_credit", accountId="a1", amount="5.00", idempotencyKey="k")
    await call(client, "grant_credit", accountId="a1", amount="6.00", idempotencyKey="l")
    meter = await call(client, "create_usage_meter", name="calls", eventSchemaName="api", aggregation="COUNT")
    await call(client, "create_usage_meter", name="jobs", eventSchemaName="batch", aggregation="COUNT")
    for n, schema in enumerate(("api", "batch")):
        await call(client, "ingest_event", event={"id": f"e{n}", "schemaName": schema, "accountId": "a1",
                                                  "timestamp": f"2026-01-0{n + 1}T00:00:00Z"})
    cycle = {"interval": "MONTHLY", "startOffset": {"dayOffset": "1", "monthOffset": "NIL"}, "gracePeriod": 0}
    cards = {"usageRateCards": [{"usageMeterId": meter["id"], "ratePlan": {"pricingModel": "TIERED", "slabs": [
        {"order": 1, "startAfter": "0", "priceType": "PER_UNIT"}]},
        "rateValues": [{"currency": "USD", "slabRates": [{"order": 1, "rate": "1"}]}]}]}
    plan = await call(client, "create_price_plan", name="P", pricingCycleConfig=cycle, rateCards=cards)
    await call(client, "create_price_plan", name="Q", pricingCycleConfig=cycle, rateCards=cards)
    lists: list[tuple[str, str, dict[str, Any]]] = [
        ("list_customers", "customers", {}), ("list_accounts", "accounts", {}), ("list_audit_log", audit_page_kind(None, None, None), {}),
        ("list_events", "events", {}), ("list_event_schemas", "event_schemas", {}),
        ("list_usage_meters", "usage_meters", {}), ("list_price_plans", "price_plans", {}),
        ("list_rate_cards", "rate_cards", {"pricePlanId": plan["id"]}), ("list_invoices", "invoices", {}),
        ("list_wallet_entries", "wallet_entries:a1", {"accountId": "a1"}),
    ]
    # keys of several parts: a good first part, then a bad one; a time without its offset
    composite = {
        "events": [["2026-01-01T00:00:00+00:00", 5, "e0"], ["2026-01-01T00:00:00+00:00", "a1", {"x": 1}],
                   ["2026-01-01T00:00:00", "a1", "e0"], ["2026-01-01T00:00:00+00:00", "a1"]],
        "invoices": [["2026-01-01T00:00:00+00:00", 10**30], ["2026-01-01T00:00:00+00:00", True],
                     ["2026-01-01T00:00:00", 1], ["2026-01-01T00:00:00+00:00", 1, 2]],
        "rate_cards": [[plan["id"], True], [plan["id"], 10**30], [plan["id"], -1], [plan["id"], "USAGE", 5],
                       [plan["id"], "NOT_A_TYPE", "x"], [plan["id"], {"x": 1}, "x"], ["pp_other", "USAGE", "x"]],
    }
    before = await row_counts(db)
    for tool, kind, arguments in lists:
        first = await call(client, tool, pageSize=1, **arguments)
        if first["nextToken"] is not None:  # every list but the invoices (none) and rate cards (one) has two rows
            # the real token is of the kind forged below, and it works
            assert json.loads(base64.urlsafe_b64decode(first["nextToken"] + "==="))["k"] == kind
            assert (await call(client, tool, pageSize=1, nextToken=first["nextToken"], **arguments))["data"]
        else:
            assert tool in ("list_invoices", "list_rate_cards"), tool
        edited = [["abc"], [None], [10**30], [], [True], [1.5], [{"x": 1}], "3", *composite.get(kind, [])]
        for after in edited:
            error = await call_error(client, tool, nextToken=_token({"k": kind, "after": after}), **arguments)
            assert "nextToken" in error and "internal error" not in error, (tool, after, error)
        for body in ([1], "x", None, {"k": "another_list", "after": [1]}):
            error = await call_error(client, tool, nextToken=_token(body), **arguments)
            assert "nextToken" in error and "internal error" not in error, (tool, body, error)
    assert await row_counts(db) == before
