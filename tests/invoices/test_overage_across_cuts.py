"""Entitlement overage of a cycle cut in two (a version moved IMMEDIATE, a plan change): the invoices bill what
check_entitlement counted over the whole cycle, not a second allowance per period.

Plans here are monthly on the 1st, no grace, no fee: feature `tokens_quota` counts the `tokens` meter with a
limit per cycle, and an overage card prices each unit past it (PER_UNIT), at most maxQuantity 50 per cycle.
Every account starts on 1 January 2026; the cut is on 16 January, so January has two periods:
[1 Jan, 16 Jan) and [16 Jan, 1 Feb). A period's overage is f(cycle usage through its end) - f(cycle usage
before it), f(u) = min(max(0, u - limit), maxQuantity) with the period's plan's limit (invoices README).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from decimal import Decimal
from typing import Any

import pytest
from sqlalchemy import event, select, text

from conftest import row_counts
from helpers import at, break_stored_deal, call, call_error, iso, scalar, tokens_meter
from togai_engine.invoices.late_usage import with_late_events
from togai_engine.invoices.models import InvoiceRow

FEATURE = "tokens_quota"
JAN, CUT, FEB = iso(2026, 1, 1), iso(2026, 1, 16), iso(2026, 2, 1)


def _cards(meter: str, limit: str, rate: str) -> dict[str, Any]:
    return {
        "billingEntitlementRateCards": [{"featureId": FEATURE, "usageMeterId": meter,
                                         "featureConfigs": [{"featureCreditLimit": limit}]}],
        "entitlementOverageRateCards": [{
            "name": "overage", "featureId": FEATURE, "maxQuantity": "50",
            "ratePlan": {"pricingModel": "TIERED", "slabs": [{"order": 1, "startAfter": 0, "priceType": "PER_UNIT"}]},
            "rateValues": [{"currency": "USD", "slabRates": [{"order": 1, "rate": rate}]}]}],
    }


async def _plan(client: Any, name: str, meter: str, limit: str, rate: str) -> str:
    plan = await call(client, "create_price_plan", name=name, pricingCycleConfig={
        "interval": "MONTHLY", "startOffset": {"dayOffset": "1"}, "gracePeriod": 0}, rateCards=_cards(meter, limit, rate))
    return str(plan["id"])


async def _account(client: Any, account: str, plan_id: str) -> None:
    await call(client, "create_customer", id=f"cust_{account}", name=account, account={
        "id": account, "name": account, "pricePlanId": plan_id, "effectiveFrom": JAN})


async def _tokens(client: Any, account: str, event_id: str, when: str, tokens: str) -> None:
    await call(client, "ingest_event", event={"id": event_id, "schemaName": "llm", "timestamp": when,
                                              "accountId": account, "attributes": {"tokens": tokens}})


async def _check(client: Any, account: str) -> tuple[str, str, str | None, str | None]:
    """(used, limit, usedOverage, overageRemaining) of the feature now."""
    r = await call(client, "check_entitlement", accountId=account, featureId=FEATURE, quantity="1")
    return r["used"], r["limit"], r["usedOverage"], r["overageRemaining"]


async def _around_the_cut(client: Any, clock: Any, before: str, cut: Callable[[], Awaitable[None]],
                          after: str) -> tuple[tuple[str, str, str | None, str | None], ...]:
    """acme's `before` tokens on 5 January (seen on the 10th), `cut` on 16 January, its `after` tokens on the 20th
    (seen on the 21st, where the clock is left); returns what _check says on the 10th and on the 21st."""
    clock.set(at(2026, 1, 10))
    await _tokens(client, "acme", "before", iso(2026, 1, 5), before)
    on_the_10th = await _check(client, "acme")
    clock.set(at(2026, 1, 16))
    await cut()
    clock.set(at(2026, 1, 21))
    await _tokens(client, "acme", "after", iso(2026, 1, 20), after)
    return on_the_10th, await _check(client, "acme")


async def _january(client: Any, account: str) -> list[tuple[str, str, Decimal, str, bool]]:
    """(period start, status, overage quantity, overage value, capped) of January's two invoices, in order."""
    page = await call(client, "list_invoices", accountId=account, pageSize=100)
    found = []
    for summary in sorted(page["data"], key=lambda i: i["startDate"]):
        if summary["startDate"] >= FEB:
            continue
        invoice = await call(client, "get_invoice", invoiceId=summary["id"])
        [line] = [li for li in invoice["lineItems"] if li["type"] == "ENTITLEMENT_OVERAGE_AMOUNT"]
        assert invoice["totalAmount"] == line["value"]  # the overage is each invoice's only charge
        found.append((summary["startDate"], invoice["status"], Decimal(line["quantity"]), line["value"],
                      line["details"]["capped"]))
    return found


async def _lab_and_revenue_agree(client: Any, account: str, plan_ids: list[str], totals: list[str],
                                 days: dict[int, str]) -> None:
    """The lab prices each January period's own plan as invoiced, and REVENUE over January is their sum, accrued
    on the `days` of January the usage passed the limit (the others 0.00)."""
    result = await call(client, "simulate_price_plan", candidates=plan_ids, accountIds=[account],
                        startTime=JAN, endTime=FEB)
    [priced] = result["accounts"]
    assert [c["actual"] for c in priced["cycles"]] == totals
    for cycle in priced["cycles"]:  # the candidate that is the period's own plan reproduces its invoice
        own = plan_ids.index(cycle["pricePlanId"])
        assert cycle["candidates"][own]["amount"] == cycle["actual"]
    revenue = await call(client, "get_metrics", startTime=JAN, endTime=FEB, metricQueries=[{
        "id": "r", "name": "REVENUE", "aggregationPeriod": "MONTH",
        "filters": [{"fieldName": "ACCOUNT_ID", "fieldValues": [account]}]}])
    assert Decimal(revenue["results"][0]["data"][0]["metricValues"][0]) == sum(Decimal(t) for t in totals)
    daily = await call(client, "get_metrics", startTime=JAN, endTime=FEB, metricQueries=[{
        "id": "r", "name": "REVENUE", "aggregationPeriod": "DAY",
        "filters": [{"fieldName": "ACCOUNT_ID", "fieldValues": [account]}]}])
    [series] = daily["results"][0]["data"]
    assert {day + 1: value for day, value in enumerate(series["metricValues"]) if Decimal(value)} == days


async def test_a_version_moved_immediate_grants_no_second_allowance(client, clock) -> None:
    meter = await tokens_meter(client)
    plan_id = await _plan(client, "Quota", meter, "100", "1.00")
    await _account(client, "acme", plan_id)

    async def version_2() -> None:  # nothing but the rate changes: the same limit 100 and maxQuantity 50
        await call(client, "update_price_plan", pricePlanId=plan_id, rateCards=_cards(meter, "100", "2.00"))
        await call(client, "finalize_price_plan", pricePlanId=plan_id, migrationMode="IMMEDIATE")

    assert await _around_the_cut(client, clock, "90", version_2, "50") == (
        ("90", "100", "0", "50"),  # 90 < 100: no overage yet, all 50 left
        # the check counts the cycle: 90 + 50 = 140 used, 140 - 100 = 40 overage, 50 - 40 = 10 left
        ("140", "100", "40", "10"))
    clock.set(at(2026, 2, 1))
    assert await _january(client, "acme") == [
        # v1: f(90) - f(0) = 0 - 0 = 0
        (JAN, "DUE", Decimal(0), "0.00", False),
        # v2: f(90 + 50) - f(90) = 40 - 0 = 40 units × 2.00 = 80.00 (each period alone would bill 0: 50 < 100)
        (CUT, "DUE", Decimal(40), "80.00", False),
    ]
    await _lab_and_revenue_agree(client, "acme", [plan_id], ["0.00", "80.00"], {20: "80.00"})


async def test_a_change_between_plans_with_the_same_limit_bills_the_cycle_once(client, clock) -> None:
    meter = await tokens_meter(client)
    plan_a = await _plan(client, "A", meter, "100", "1.00")
    plan_b = await _plan(client, "B", meter, "100", "2.00")
    await _account(client, "acme", plan_a)

    async def to_b() -> None:
        await call(client, "update_account", accountId="acme", pricePlanId=plan_b, effectiveFrom=CUT)

    assert await _around_the_cut(client, clock, "120", to_b, "50") == (
        ("120", "100", "20", "30"),  # on A: 120 - 100 = 20 overage
        # 120 + 50 = 170: 70 past the limit, at most maxQuantity 50 used, none left
        ("170", "100", "50", "0"))
    clock.set(at(2026, 2, 1))
    assert await _january(client, "acme") == [
        # A: f(120) - f(0) = 20 units × 1.00 = 20.00
        (JAN, "DUE", Decimal(20), "20.00", False),
        # B: f(120 + 50) - f(120) = min(70, 50) - 20 = 30 units × 2.00 = 60.00, capped by maxQuantity
        (CUT, "DUE", Decimal(30), "60.00", True),
    ]
    await _lab_and_revenue_agree(client, "acme", [plan_a, plan_b], ["20.00", "60.00"], {5: "20.00", 20: "60.00"})


async def test_a_change_between_plans_with_different_limits_judges_each_unit_under_its_plan(client, clock) -> None:
    meter = await tokens_meter(client)
    high = await _plan(client, "High", meter, "150", "1.00")
    low = await _plan(client, "Low", meter, "100", "2.00")
    await _account(client, "down", high)
    await _account(client, "up", low)
    clock.set(at(2026, 1, 10))
    await _tokens(client, "down", "d1", iso(2026, 1, 5), "120")
    await _tokens(client, "up", "u1", iso(2026, 1, 5), "120")
    clock.set(at(2026, 1, 16))
    await call(client, "update_account", accountId="down", pricePlanId=low, effectiveFrom=CUT)
    await call(client, "update_account", accountId="up", pricePlanId=high, effectiveFrom=CUT)
    clock.set(at(2026, 1, 21))
    await _tokens(client, "down", "d2", iso(2026, 1, 20), "10")
    await _tokens(client, "up", "u2", iso(2026, 1, 20), "10")
    # down, on Low (limit 100) at 130 used: the 20 units past 100 used under High were within High's 150, so only
    # the 10 used on Low are overage; the ceiling is 100 + 50 = 150, 150 - 130 = 20 left
    assert await _check(client, "down") == ("130", "100", "10", "20")
    # up, on High (limit 150) at 130: the 20 units billed as overage under Low stay used overage; the ceiling is
    # 150 + 50 = 200, 200 - max(130, 150) = 50 left
    assert await _check(client, "up") == ("130", "150", "20", "50")
    clock.set(at(2026, 2, 1))
    assert await _january(client, "down") == [
        # High: f150(120) - f150(0) = 0
        (JAN, "DUE", Decimal(0), "0.00", False),
        # Low: f100(130) - f100(120) = 30 - 20 = 10 units × 2.00 = 20.00
        (CUT, "DUE", Decimal(10), "20.00", False),
    ]
    assert await _january(client, "up") == [
        # Low: f100(120) - f100(0) = 20 units × 2.00 = 40.00
        (JAN, "DUE", Decimal(20), "40.00", False),
        # High: f150(130) - f150(120) = 0 - 0 = 0 (a higher limit refunds nothing billed)
        (CUT, "DUE", Decimal(0), "0.00", False),
    ]
    await _lab_and_revenue_agree(client, "down", [high, low], ["0.00", "20.00"], {20: "20.00"})
    await _lab_and_revenue_agree(client, "up", [high, low], ["40.00", "0.00"], {5: "40.00"})


async def _a_then_b_billing_late_usage(client: Any, clock: Any, on_a: str = "120",
                                       rates: tuple[str, str] = ("1.00", "2.00")) -> list[str]:
    """Acme on A (limit 100, overage `rates[0]`, 1.00) from 1 January with `on_a` tokens on the 5th, then on B (limit
    100, overage `rates[1]`, 2.00) from the cut; both bill late usage on the next invoice. The clock is left on 21
    January."""
    meter = await tokens_meter(client)
    plans = []
    for name, rate in zip(("A", "B"), rates, strict=True):
        plan = await call(client, "create_price_plan", name=name, lateUsage="BILL_ON_NEXT_INVOICE", pricingCycleConfig={
            "interval": "MONTHLY", "startOffset": {"dayOffset": "1"}, "gracePeriod": 0},
            rateCards=_cards(meter, "100", rate))
        plans.append(str(plan["id"]))
    await _account(client, "acme", plans[0])
    clock.set(at(2026, 1, 10))
    await _tokens(client, "acme", "on-a", iso(2026, 1, 5), on_a)
    clock.set(at(2026, 1, 16))
    await call(client, "update_account", accountId="acme", pricePlanId=plans[1], effectiveFrom=CUT)
    clock.set(at(2026, 1, 21))
    return plans


async def test_late_usage_recomposes_each_part_from_the_cycle_usage_it_was_billed_on(client, clock) -> None:
    await _a_then_b_billing_late_usage(client, clock)
    await _tokens(client, "acme", "on-b", iso(2026, 1, 20), "10")
    clock.set(at(2026, 2, 3))
    assert await _january(client, "acme") == [
        (JAN, "DUE", Decimal(20), "20.00", False),  # A: f(120) - f(0) = 20 × 1.00
        (CUT, "DUE", Decimal(10), "20.00", False),  # B: f(130) - f(120) = 30 - 20 = 10 × 2.00
    ]
    # late: 10 more on A's part, 5 more on B's
    await _tokens(client, "acme", "late-a", iso(2026, 1, 10), "10")
    await _tokens(client, "acme", "late-b", iso(2026, 1, 25), "5")
    page = await call(client, "list_invoices", accountId="acme", pageSize=100)
    draft = await call(client, "get_invoice", invoiceId=next(i["id"] for i in page["data"] if i["startDate"] == FEB))
    late = sorted((li["details"]["periodStart"], li["value"]) for li in draft["lineItems"]
                  if li["type"] == "LATE_USAGE_AMOUNT")
    assert late == [
        # A again: f(130) - f(0) = 30 × 1.00 = 30.00, 20.00 invoiced: 10.00
        ("2026-01-01T00:00:00+00:00", "10.00"),
        # B again, on the cycle's usage now: f(130 + 15) - f(130) = 45 - 30 = 15 × 2.00 = 30.00, 20.00 invoiced:
        # 10.00 (the cycle's 45 overage units are billed once: 30 on A, 15 on B)
        ("2026-01-16T00:00:00+00:00", "10.00"),
    ]


async def test_late_usage_of_a_part_billed_before_its_overage_counted_the_cycle_keeps_the_period_alone(
        client, clock, db) -> None:
    await _a_then_b_billing_late_usage(client, clock)
    await _tokens(client, "acme", "on-b", iso(2026, 1, 20), "95")
    clock.set(at(2026, 2, 3))
    page = await call(client, "list_invoices", accountId="acme", pageSize=100)
    part_b = next(i["id"] for i in page["data"] if i["startDate"] == CUT)
    # B's invoice as closed before overage counted the cycle: its line names no cycle usage, and it billed its
    # period alone, f(95) = 0
    async with db.unit_of_work() as session:
        await session.execute(text(
            "UPDATE invoice_lines SET details = details - 'cycleStart' - 'cycleUsageBefore' - 'cycleUsage', "
            "quantity = 0, value = 0 WHERE invoice_id = :id AND line_type = 'ENTITLEMENT_OVERAGE_AMOUNT' "
            "AND parent_position IS NULL"), {"id": part_b})
    await _tokens(client, "acme", "late-b", iso(2026, 1, 25), "10")
    page = await call(client, "list_invoices", accountId="acme", pageSize=100)
    draft = await call(client, "get_invoice", invoiceId=next(i["id"] for i in page["data"] if i["startDate"] == FEB))
    # B again, on its period alone as it was billed: f(95 + 10) - f(95) = 5 - 0 = 5 × 2.00 = 10.00 (on the cycle's
    # usage it would be f(120 + 105) - f(120) = 50 - 20 = 30 × 2.00 = 60.00)
    assert [(li["details"]["periodStart"], li["value"]) for li in draft["lineItems"]
            if li["type"] == "LATE_USAGE_AMOUNT"] == [("2026-01-16T00:00:00+00:00", "10.00")]


async def test_a_deal_that_no_longer_validates_before_the_cut_fails_only_its_account_check(
        client, clock, db, monkeypatch) -> None:
    meter = await tokens_meter(client)
    cycle = {"interval": "MONTHLY", "startOffset": {"dayOffset": "1"}, "gracePeriod": 0}
    fee = {"id": "base", "rateValues": [{"currency": "USD", "rate": "10"}]}
    plan_a = str((await call(client, "create_price_plan", name="A", pricingCycleConfig=cycle,
                             rateCards={**_cards(meter, "100", "1.00"), "fixedFeeRateCards": [fee]}))["id"])
    plan_b = await _plan(client, "B", meter, "100", "2.00")
    await call(client, "create_customer", id="cust_acme", name="acme", account={
        "id": "acme", "name": "acme", "pricePlanId": plan_a, "effectiveFrom": JAN,
        "rateCardOverrides": {"fixedFeeRateCards": [{**fee, "rateValues": [{"currency": "USD", "rate": "5"}]}]}})
    await _account(client, "other", plan_b)
    clock.set(at(2026, 1, 10))
    await _tokens(client, "acme", "on-a", iso(2026, 1, 5), "120")
    clock.set(at(2026, 1, 16))
    await call(client, "update_account", accountId="acme", pricePlanId=plan_b, effectiveFrom=CUT)  # no deal on B
    clock.set(at(2026, 1, 21))
    await _tokens(client, "acme", "on-b", iso(2026, 1, 20), "10")
    await _tokens(client, "other", "other", iso(2026, 1, 20), "110")
    # A: f(120) = 20, B: f(130) - f(120) = 10
    assert await _check(client, "acme") == ("130", "100", "30", "20")
    # the deal on A (before the cut) no longer validates: usedOverage reads A's plan, so acme's check says why,
    # naming A's association and its part of the cycle; that part is invoiced (DUE on the 16th, no grace), so
    # update_account cannot mend it: the error says when the check works again rather than sending the caller there
    await break_stored_deal(db, monkeypatch, "acme", "{fixedFeeRateCards,0,rateValues,0,rate}", '"0.05 USD"')
    association_a = await scalar(db, "SELECT id FROM plan_associations WHERE account_id = 'acme' "
                                     "AND effective_from = '2026-01-01T00:00:00Z'")
    for tool, arguments in (("check_entitlement", {"featureId": FEATURE, "quantity": "1"}), ("get_entitlements", {})):
        error = await call_error(client, tool, accountId="acme", **arguments)
        assert "account 'acme' has a deal" in error and "'0.05 USD' is not a decimal" in error
        assert f"plan association {association_a} of account 'acme'" in error
        assert "its part [2026-01-01T00:00:00+00:00, 2026-01-16T00:00:00+00:00)" in error
        assert "invoiced already" in error and "works again when the cycle ends at 2026-02-01T00:00:00+00:00" in error
        assert "update_account(pricePlanId" not in error
    assert await _check(client, "other") == ("110", "100", "10", "40")  # 110 - 100 = 10; 150 - 110 = 40 left


async def _late_lines(client: Any, account: str, start: str) -> list[tuple[str, str, int, list[str]]]:
    """(period start, value, eventCount, eventIds) of the late-usage lines of `account`'s invoice starting `start`."""
    page = await call(client, "list_invoices", accountId=account, pageSize=100)
    invoice = await call(client, "get_invoice", invoiceId=next(i["id"] for i in page["data"] if i["startDate"] == start))
    return [(li["details"]["periodStart"], li["value"], li["details"]["eventCount"], li["details"]["eventIds"])
            for li in invoice["lineItems"] if li["type"] == "LATE_USAGE_AMOUNT"]


async def _eighty_then_thirty_billed(client: Any, clock: Any) -> list[str]:
    """A with 80 tokens, B with 30, both parts of January DUE on 3 February (the clock is left there). -> the plans"""
    plans = await _a_then_b_billing_late_usage(client, clock, on_a="80")
    await _tokens(client, "acme", "on-b", iso(2026, 1, 20), "30")
    clock.set(at(2026, 2, 3))
    assert await _january(client, "acme") == [
        (JAN, "DUE", Decimal(0), "0.00", False),  # A: f(80) - f(0) = 0 - 0 = 0
        (CUT, "DUE", Decimal(10), "20.00", False),  # B: f(80 + 30) - f(80) = 10 - 0 = 10 × 2.00
    ]
    return plans


async def test_late_usage_of_an_earlier_part_corrects_a_later_part_it_moves(client, clock) -> None:
    plans = await _eighty_then_thirty_billed(client, clock)
    # 20 tokens late in A's part: the cycle's usage before B is 100 now, so all 30 of B's units are past the limit
    await _tokens(client, "acme", "late-a", iso(2026, 1, 10), "20")
    assert await _late_lines(client, "acme", FEB) == [
        # A again: f(100) - f(0) = 0, 0.00 invoiced: unchanged
        ("2026-01-01T00:00:00+00:00", "0.00", 1, ["late-a"]),
        # B again, on the cycle's usage now: f(130) - f(100) = 30 × 2.00 = 60.00, 20.00 invoiced: 40.00, though B
        # received no late event (the cycle's 30 overage units are billed once: 0 on A, 30 on B)
        ("2026-01-16T00:00:00+00:00", "40.00", 0, []),
    ]
    page = await call(client, "list_invoices", accountId="acme", pageSize=100)
    ids = {i["startDate"]: i["id"] for i in page["data"]}
    draft = await call(client, "get_invoice", invoiceId=ids[FEB])
    [moved] = [li for li in draft["lineItems"] if li["type"] == "LATE_USAGE_AMOUNT" and li["details"]["eventCount"] == 0]
    assert moved["details"]["sourceInvoiceId"] == ids[CUT] and moved["details"]["movedBy"] == [ids[JAN]]
    assert moved["description"] == (
        "Period 2026-01-16 – 2026-02-01 (invoice INV-000002) recomposed: late usage of an earlier period of its "
        "quota cycle (invoice INV-000001) changed the cycle's usage before it; no late events of its own")
    # get_account owes what the DRAFT bills: 0.00 + 40.00
    pending = (await call(client, "get_account", accountId="acme"))["financial"]["pendingLateUsage"]
    assert [(p["invoiceId"], p["eventCount"], p["amount"]) for p in pending["periods"]] == [
        (ids[JAN], 1, "0.00"), (ids[CUT], 0, "40.00")]
    assert (pending["total"], pending["billedOn"]) == ("40.00", ids[FEB])
    # REVENUE: B's period never shows more than its invoice charged (20.00 on the 20th); the 40.00 is February's
    daily = await call(client, "get_metrics", startTime=JAN, endTime=FEB, metricQueries=[{
        "id": "r", "name": "REVENUE", "aggregationPeriod": "DAY",
        "filters": [{"fieldName": "ACCOUNT_ID", "fieldValues": ["acme"]}]}])
    [series] = daily["results"][0]["data"]
    assert {day + 1: value for day, value in enumerate(series["metricValues"]) if Decimal(value)} == {20: "20.00"}

    # February closes with both lines: its own overage 0.00 (no February usage) + 0.00 + 40.00
    clock.set(at(2026, 3, 3))
    february = await call(client, "get_invoice", invoiceId=ids[FEB])
    assert (february["status"], february["totalAmount"]) == ("DUE", "40.00")
    # the lab compares B on what was charged for it, its own 20.00 and February's 40.00 line: 60.00, what B's plan
    # prices on all its usage, f(130) - f(100) = 30 × 2.00, whether A's period is selected too or not
    for start, actual in ((JAN, ["0.00", "60.00"]), (CUT, ["60.00"])):
        result = await call(client, "simulate_price_plan", candidates=plans, accountIds=["acme"], startTime=start,
                            endTime=FEB)
        [priced] = result["accounts"]
        assert [c["actual"] for c in priced["cycles"]] == actual
        assert [c["candidates"][plans.index(c["pricePlanId"])]["amount"] for c in priced["cycles"]] == actual
    # late-a is billed now and cannot be voided: the refusal names both lines its usage is charged on, A's 0.00
    # (line 2, after February's overage line) and B's 40.00 (line 3), and a credit note on line 3, the one above zero
    error = await call_error(client, "void_event", accountId="acme", eventId="late-a", reason="sent twice")
    assert f"invoice {ids[FEB]!r}" in error and "lines 2 and 3" in error and "nothing was voided" in error
    assert (f"Correct the charge with a credit note on line 3 (create_credit_note, invoiceId {ids[FEB]!r}, "
            "lineNumber 3); nothing was voided") in error, error
    # 5 tokens late in B's own part: B again, f(135) - f(100) = 35 × 2.00 = 70.00, less the 20.00 invoiced and the
    # 40.00 February's line settled: 10.00 (that line billed A's events, not B's, and still counts as settled)
    await _tokens(client, "acme", "late-b", iso(2026, 1, 25), "5")
    assert await _late_lines(client, "acme", iso(2026, 3, 1)) == [("2026-01-16T00:00:00+00:00", "10.00", 1, ["late-b"])]


async def test_voiding_a_later_parts_own_late_event_keeps_what_an_earlier_parts_moves(client, clock) -> None:
    await _eighty_then_thirty_billed(client, clock)
    await _tokens(client, "acme", "late-a", iso(2026, 1, 10), "20")
    await _tokens(client, "acme", "late-b", iso(2026, 1, 25), "5")
    assert await _late_lines(client, "acme", FEB) == [
        ("2026-01-01T00:00:00+00:00", "0.00", 1, ["late-a"]),  # A: f(100) - f(0) = 0
        ("2026-01-16T00:00:00+00:00", "50.00", 1, ["late-b"]),  # B: f(135) - f(100) = 35 × 2.00 = 70.00 - 20.00
    ]
    await call(client, "void_event", accountId="acme", eventId="late-b", reason="sent twice")
    # B keeps a line for what A's late usage moves: f(130) - f(100) = 30 × 2.00 = 60.00 - 20.00 = 40.00
    assert await _late_lines(client, "acme", FEB) == [
        ("2026-01-01T00:00:00+00:00", "0.00", 1, ["late-a"]),
        ("2026-01-16T00:00:00+00:00", "40.00", 0, []),
    ]
    await call(client, "void_event", accountId="acme", eventId="late-a", reason="sent twice")
    # nothing late is left: January's parts are as invoiced
    assert await _late_lines(client, "acme", FEB) == []
    assert (await call(client, "get_account", accountId="acme"))["financial"]["pendingLateUsage"] is None


@pytest.mark.parametrize(("rates", "late", "total", "b_note"), [
    # the same rate on both parts: 20 units move from B to A, the cycle still bills its 50 units, nothing is owed
    (("1.00", "1.00"), [("2026-01-01T00:00:00+00:00", "20.00"), ("2026-01-16T00:00:00+00:00", "-20.00")], "0.00",
     "it lowers that period's charge by 20.00 USD, offset by the other parts of its quota cycle on this invoice "
     "(invoice INV-000001)"),
    # the units move to the cheaper part: B's 40.00 less is 20.00 offset against A's 20.00 more, 20.00 overbilled
    (("1.00", "2.00"), [("2026-01-01T00:00:00+00:00", "20.00"), ("2026-01-16T00:00:00+00:00", "-20.00")], "0.00",
     "it lowers that period's charge by 40.00 USD, of which 20.00 USD is offset by the other parts of its quota "
     "cycle on this invoice (invoice INV-000001); the other 20.00 USD is not credited automatically: "
     "create_credit_note against INV-000002 if it should be"),
    # the units move to the dearer part: A's 40.00 more less B's 20.00 less, 20.00 owed
    (("2.00", "1.00"), [("2026-01-01T00:00:00+00:00", "40.00"), ("2026-01-16T00:00:00+00:00", "-20.00")], "20.00",
     "it lowers that period's charge by 20.00 USD, offset by the other parts of its quota cycle on this invoice "
     "(invoice INV-000001)"),
])
async def test_late_usage_moving_overage_between_parts_at_the_cap_bills_the_cycles_net(
        client, clock, rates: tuple[str, str], late: list[tuple[str, str]], total: str, b_note: str) -> None:
    rate_a, rate_b = Decimal(rates[0]), Decimal(rates[1])
    plans = await _a_then_b_billing_late_usage(client, clock, on_a="120", rates=rates)
    await _tokens(client, "acme", "on-b", iso(2026, 1, 20), "40")
    assert await _check(client, "acme") == ("160", "100", "50", "0")  # 160 - 100 = 60 past the limit, at most 50
    clock.set(at(2026, 2, 3))
    assert await _january(client, "acme") == [
        # A: f(120) - f(0) = 20 units
        (JAN, "DUE", Decimal(20), str(20 * rate_a), False),
        # B: f(120 + 40) - f(120) = min(60, 50) - 20 = 30 units, capped by maxQuantity
        (CUT, "DUE", Decimal(30), str(30 * rate_b), True),
    ]
    # 20 tokens late in A's part: A's overage rises by 20 units, B's falls by 20, the cycle's stays at its cap of 50
    await _tokens(client, "acme", "late-a", iso(2026, 1, 10), "20")
    # A again: f(140) - f(0) = 40 units, 20 invoiced: +20 units × rate A
    # B again: f(180) - f(140) = 50 - 40 = 10 units, 30 invoiced: -20 units × rate B, which offsets A's line (the
    # cycle's 50 units are billed once: 40 on A, 10 on B); only what is left below zero goes to a credit note
    page = await call(client, "list_invoices", accountId="acme", pageSize=100)
    ids = {i["startDate"]: i["id"] for i in page["data"]}
    draft = await call(client, "get_invoice", invoiceId=ids[FEB])
    lines = [li for li in draft["lineItems"] if li["type"] == "LATE_USAGE_AMOUNT"]
    assert [(li["details"]["periodStart"], li["value"]) for li in lines] == late
    assert draft["totalAmount"] == total  # February has no usage of its own: 0.00 overage
    assert b_note in lines[1]["description"]
    assert (lines[1]["details"]["difference"], lines[1]["details"]["offsetBy"]) == (
        str(-20 * rate_b), [ids[JAN]])
    pending = (await call(client, "get_account", accountId="acme"))["financial"]["pendingLateUsage"]
    assert [p["amount"] for p in pending["periods"]] == [value for _, value in late]
    assert pending["total"] == total

    clock.set(at(2026, 3, 3))
    february = await call(client, "get_invoice", invoiceId=ids[FEB])
    assert (february["status"], february["totalAmount"]) == ("DUE", total)
    # REVENUE is the invoices: January's two parts, and February's late lines on its last day
    revenue = await call(client, "get_metrics", startTime=JAN, endTime=iso(2026, 3, 1), metricQueries=[{
        "id": "r", "name": "REVENUE", "aggregationPeriod": "MONTH",
        "filters": [{"fieldName": "ACCOUNT_ID", "fieldValues": ["acme"]}]}])
    assert [Decimal(v) for v in revenue["results"][0]["data"][0]["metricValues"]] == [
        20 * rate_a + 30 * rate_b, Decimal(total)]
    # the lab compares each part on what was charged for it, its invoice and February's line: A 20 + 20 units, what A
    # prices now (f(140) = 40); B 30 units less its line, 10 units as B prices now (f(180) - f(140)) but for what is
    # left to a credit note (20.00 when B's rate is the higher)
    result = await call(client, "simulate_price_plan", candidates=plans, accountIds=["acme"], startTime=JAN,
                        endTime=FEB)
    [priced] = result["accounts"]
    assert [Decimal(c["actual"]) for c in priced["cycles"]] == [40 * rate_a, 30 * rate_b + Decimal(late[1][1])]
    assert 30 * rate_b + Decimal(late[1][1]) == 10 * rate_b + (Decimal("20.00") if rate_b > rate_a else 0)

    # 5 more tokens late in A's part: what February's lines settled counts, so nothing is billed twice or forgotten
    # A: f(145) - f(0) = 45 units, 20 invoiced, 20 settled: +5 units; B: f(185) - f(145) = 5 units, 30 invoiced,
    # -20 settled: -5 units, offset up to A's +5 units (the rest, when B's rate is the higher, to a credit note)
    await _tokens(client, "acme", "late-a2", iso(2026, 1, 11), "5")
    assert [(start, value) for start, value, _, _ in await _late_lines(client, "acme", iso(2026, 3, 1))] == [
        ("2026-01-01T00:00:00+00:00", str(5 * rate_a)), ("2026-01-16T00:00:00+00:00", str(-min(5 * rate_a, 5 * rate_b)))]


async def test_revenue_reads_the_late_usage_of_accounts_with_late_events_only(client, clock, db) -> None:
    plans = await _a_then_b_billing_late_usage(client, clock, on_a="80")
    # quiet: the same two parts of January as acme (A 80, B 30), no late event ever
    await call(client, "create_customer", id="cust_quiet", name="quiet", account={
        "id": "quiet", "name": "quiet", "pricePlanId": plans[0], "effectiveFrom": JAN})
    await _tokens(client, "quiet", "q-on-a", iso(2026, 1, 5), "80")
    await call(client, "update_account", accountId="quiet", pricePlanId=plans[1], effectiveFrom=CUT)
    for account in ("acme", "quiet"):
        await _tokens(client, account, f"{account}-on-b", iso(2026, 1, 20), "30")
    clock.set(at(2026, 2, 3))
    for account in ("acme", "quiet"):
        assert await _january(client, account) == [
            (JAN, "DUE", Decimal(0), "0.00", False),  # A: f(80) - f(0) = 0
            (CUT, "DUE", Decimal(10), "20.00", False)]  # B: f(80 + 30) - f(80) = 10 units × 2.00
    await _tokens(client, "acme", "late-a", iso(2026, 1, 10), "20")  # acme's A has late events, and moves B

    statements: list[str] = []

    def record(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        statements.append(statement)

    async with db.unit_of_work() as session:
        rows = list(await session.scalars(select(InvoiceRow).where(InvoiceRow.status != "DRAFT")))
        january = {(row.account_id, row.period_start.isoformat()): row.id for row in rows}
        event.listen(db.engine.sync_engine, "before_cursor_execute", record)
        try:
            # acme's A (its own late events) and B (its overage was based on A's part of the cycle)
            assert await with_late_events(session, rows) == {
                january[("acme", "2026-01-01T00:00:00+00:00")], january[("acme", "2026-01-16T00:00:00+00:00")]}
            statements.clear()
            # an account that never had late usage: one probe, and the invoices' lines are not read
            assert await with_late_events(session, [row for row in rows if row.account_id == "quiet"]) == set()
            assert len(statements) == 1 and "invoice_lines" not in statements[0], statements
        finally:
            event.remove(db.engine.sync_engine, "before_cursor_execute", record)
    # REVENUE over both: each January part is what its invoice charged (acme's B capped at its 20.00, its late
    # line being February's), 20.00 + 20.00
    revenue = await call(client, "get_metrics", startTime=JAN, endTime=FEB, metricQueries=[{
        "id": "r", "name": "REVENUE", "aggregationPeriod": "DAY", "groupBy": "ACCOUNT_ID"}])
    assert {s["groupedBy"]["fieldValue"]: {d + 1: v for d, v in enumerate(s["metricValues"]) if Decimal(v)}
            for s in revenue["results"][0]["data"]} == {"acme": {20: "20.00"}, "quiet": {20: "20.00"}}


async def test_a_broken_deal_on_an_association_before_the_cycle_fails_no_check(client, clock, db, monkeypatch) -> None:
    """A's deal breaks after A ended in January: February's cycle has no part under A, so the checks never read it."""
    meter = await tokens_meter(client)
    cycle = {"interval": "MONTHLY", "startOffset": {"dayOffset": "1"}, "gracePeriod": 0}
    fee = {"id": "base", "rateValues": [{"currency": "USD", "rate": "10"}]}
    plan_a = str((await call(client, "create_price_plan", name="A", pricingCycleConfig=cycle,
                             rateCards={**_cards(meter, "100", "1.00"), "fixedFeeRateCards": [fee]}))["id"])
    plan_b = await _plan(client, "B", meter, "100", "2.00")
    await call(client, "create_customer", id="cust_acme", name="acme", account={
        "id": "acme", "name": "acme", "pricePlanId": plan_a, "effectiveFrom": JAN,
        "rateCardOverrides": {"fixedFeeRateCards": [{**fee, "rateValues": [{"currency": "USD", "rate": "5"}]}]}})
    clock.set(at(2026, 1, 10))
    await _tokens(client, "acme", "on-a", iso(2026, 1, 5), "120")
    clock.set(at(2026, 1, 16))
    await call(client, "update_account", accountId="acme", pricePlanId=plan_b, effectiveFrom=CUT)  # no deal on B
    clock.set(at(2026, 2, 10))
    await _tokens(client, "acme", "feb", iso(2026, 2, 5), "120")
    await break_stored_deal(db, monkeypatch, "acme", "{fixedFeeRateCards,0,rateValues,0,rate}", '"0.05 USD"')
    # February alone, under B: 120 used, 120 - 100 = 20 overage, 150 - 120 = 30 left
    assert await _check(client, "acme") == ("120", "100", "20", "30")
    entitlements = await call(client, "get_entitlements", accountId="acme")
    assert [(e["used"], e["usedOverage"]) for e in entitlements["data"]] == [("120", "20")]


async def test_a_negative_late_usage_line_is_credited_by_amount_and_void_event_names_only_creditable_lines(
        client, clock, db) -> None:
    """A late-usage line below zero (a later part of a cut cycle that late usage of an earlier part moved overage out
    of) is no discount: create_credit_note on it says what it is and to credit by amount, and void_event of the late
    event names as line credits only the lines that can take one."""
    await _a_then_b_billing_late_usage(client, clock, on_a="120", rates=("1.00", "2.00"))
    await _tokens(client, "acme", "on-b", iso(2026, 1, 20), "40")
    clock.set(at(2026, 2, 3))
    await _tokens(client, "acme", "late-a", iso(2026, 1, 10), "20")
    clock.set(at(2026, 3, 3))
    page = await call(client, "list_invoices", accountId="acme", pageSize=100)
    ids = {i["startDate"]: i["id"] for i in page["data"]}
    february = await call(client, "get_invoice", invoiceId=ids[FEB])
    # line 1 February's own overage 0.00; line 2 A's late line +20 units × 1.00 = 20.00; line 3 B's -20 units × 2.00
    # = -40.00, of which 20.00 offsets A's line: -20.00 (total 0.00)
    assert [li["value"] for li in february["lineItems"]] == ["0.00", "20.00", "-20.00"]
    assert february["status"] == "DUE"
    before = await row_counts(db)
    error = await call_error(client, "create_credit_note", invoiceId=ids[FEB], reason="DUPLICATE",
                             lines=[{"lineNumber": 3, "amount": "1.00"}])
    assert "discount" not in error, error
    # B's fall is 40.00, 20.00 of it offset: the other 20.00 is left to a note by amount on B's invoice
    assert error.endswith(
        "lines[0].lineNumber: line 3 is -20.00, the late-usage line of period 2026-01-16 – 2026-02-01 (invoice "
        "INV-000002): that period's charge fell when it was recomposed, and this line is the part of the fall offset "
        "against the other late-usage lines of its quota cycle on this invoice, so it lowers the invoice and has "
        "nothing to credit line by line; credit by amount instead (create_credit_note with amount, not lines); the "
        "other 20.00 of the fall is not offset: credit it by amount on invoice INV-000002"), error
    assert await row_counts(db) == before
    # late-a's usage is charged on lines 2 and 3; only line 2 can take a line credit, line 3 is credited by amount
    error = await call_error(client, "void_event", accountId="acme", eventId="late-a", reason="sent twice")
    assert f"invoice {ids[FEB]!r} (INV-000003, DUE), lines 2 and 3" in error, error
    assert (f"Correct the charge with a credit note on line 2 (create_credit_note, invoiceId {ids[FEB]!r}, "
            f"lineNumber 2), or by amount (line 3 is -20.00 and takes no line credit); nothing was voided") in error, error


async def test_void_event_of_a_late_event_on_one_zero_line_does_not_say_that_line_takes_a_line_credit(
        client, clock) -> None:
    """A late event within the cycle's included usage is billed on one late-usage line of 0.00 (f(60) - f(50) = 0):
    void_event's refusal must not point at a line credit for it, nor say that its line takes one."""
    meter = await tokens_meter(client)
    plan = await call(client, "create_price_plan", name="A", lateUsage="BILL_ON_NEXT_INVOICE", pricingCycleConfig={
        "interval": "MONTHLY", "startOffset": {"dayOffset": "1"}, "gracePeriod": 0},
        rateCards=_cards(meter, "100", "1.00"))
    await _account(client, "acme", str(plan["id"]))
    clock.set(at(2026, 1, 10))
    await _tokens(client, "acme", "on-a", iso(2026, 1, 5), "50")
    clock.set(at(2026, 2, 3))
    await _tokens(client, "acme", "late-a", iso(2026, 1, 10), "10")
    clock.set(at(2026, 3, 3))
    page = await call(client, "list_invoices", accountId="acme", pageSize=100)
    ids = {i["startDate"]: i["id"] for i in page["data"]}
    february = await call(client, "get_invoice", invoiceId=ids[FEB])
    # line 1 February's own overage 0.00; line 2 January's late line: f(50 + 10) - f(50) = 0 (within the 100 included)
    assert [(li["type"], li["value"]) for li in february["lineItems"]][1:] == [("LATE_USAGE_AMOUNT", "0.00")]
    error = await call_error(client, "void_event", accountId="acme", eventId="late-a", reason="sent twice")
    assert f"invoice {ids[FEB]!r} (INV-000002, DUE), line 2" in error, error
    assert "lineNumber" not in error, error
    assert error.endswith(f"Correct the charge with a credit note on the invoice by amount (create_credit_note, "
                          f"invoiceId {ids[FEB]!r}, amount): its line takes no line credit; nothing was voided"), error
