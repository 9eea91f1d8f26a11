"""Money at the edges of an account's life, through the MCP tools and `bill --as-of` (run_bill), with the
clock moved across cycles. Every amount is worked out by hand next to it; each story failed before the
application layer and the policies in togai_engine/billing/README.md."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import text

from conftest import row_counts
from helpers import at, break_stored_deal, break_stored_version, call, call_error, iso, tokens_meter
from mcp_server.scenarios.calls import Calls
from mcp_server.scenarios.model import MetricExpect
from mcp_server.scenarios.observe import _metrics as observe_metrics
from test_scenarios import account, fee, invoices, tiered, usage
from togai_engine.billing.close import CloseSummary
from togai_engine.billing.runs import run_bill
from togai_engine.plans import overrides

MONTHLY = {"interval": "MONTHLY", "startOffset": {"dayOffset": "1", "monthOffset": "NIL"}, "gracePeriod": 0}


async def plan(client: Any, name: str, meter: str, monthly_fee: str = "31", **extra: Any) -> str:
    created = await call(client, "create_price_plan", name=name, pricingCycleConfig=MONTHLY, rateCards={
        "usageRateCards": [tiered(meter, ("0", "0.01"))],
        "fixedFeeRateCards": [fee("base", monthly_fee, prorate=False)]}, **extra)
    return str(created["id"])


async def on_pro_from_january(client: Any, *account_ids: str) -> None:
    """Accounts on "Pro" (31.00 a month, 0.01 a token) from 1 January."""
    pro = await plan(client, "Pro", await tokens_meter(client))
    for account_id in account_ids:
        await account(client, account_id, pro, iso(2026, 1, 1))


async def only_bad_fails(client: Any, clock: Any, db: Any, what: str, good_total: str) -> CloseSummary:
    """On 20 January every account's DRAFT lists, good's at `good_total` and bad's with its problem (naming `what`);
    the bill run of 1 February closes good's January and reports bad alone, with its reason."""
    clock.set(at(2026, 1, 20))
    listed = {i["accountId"]: i for i in (await call(client, "list_invoices", pageSize=100))["data"]}  # every account
    assert listed["good"]["totalAmount"] == good_total
    assert listed["bad"]["totalAmount"] is None and "account 'bad'" in listed["bad"]["problem"]
    assert what in listed["bad"]["problem"]
    summary = await run_bill(db, at(2026, 2, 1))
    assert (summary.invoicesDue, [f.accountId for f in summary.failed]) == (1, ["bad"])
    assert "account 'bad'" in summary.failed[0].reason and what in summary.failed[0].reason
    return summary


async def test_a_net_negative_period_bills_zero_usage_and_never_stops_anyones_reads(client, clock, db) -> None:
    await on_pro_from_january(client, "neg", "ok")
    await usage(client, "neg", "2026-01-05T00:00:00Z", "100", "n1")
    await usage(client, "neg", "2026-01-06T00:00:00Z", "-250", "n2")  # a correction larger than the usage
    await usage(client, "ok", "2026-01-05T00:00:00Z", "1000", "o1")

    clock.set(at(2026, 1, 20))
    draft = await call(client, "get_invoice", accountId="neg")
    # usage nets to 100 - 250 = -150: charged as 0 units (0.00), the fee 31.00 stands: total 31.00
    line = draft["lineItems"][0]
    assert (line["quantity"], line["value"], draft["totalAmount"]) == ("-150", "0.00", "31.00")
    assert "net negative" in line["description"] and line["details"]["netNegative"] is True
    listed = await call(client, "list_invoices", pageSize=100)  # every account's DRAFT reads
    assert sorted((i["accountId"], i["totalAmount"]) for i in listed["data"]) == [("neg", "31.00"), ("ok", "41.00")]
    assert (await call(client, "get_account", accountId="neg"))["financial"]["accruedCharges"] == "31.00"

    summary = await run_bill(db, at(2026, 2, 1))  # January closes for both
    assert (summary.invoicesDue, summary.failed) == (2, [])
    jan = (await invoices(client, "neg", status="DUE"))[0]
    assert (jan["sequenceId"], jan["totalAmount"]) == ("INV-000001", "31.00")  # closed before "ok" (id order)
    stored = (await call(client, "get_invoice", invoiceId=jan["id"]))["lineItems"][0]
    assert (stored["quantity"], stored["value"]) == ("-150", "0.00")


async def test_a_poisoned_account_is_reported_and_never_stops_the_others(client, clock, db) -> None:
    await on_pro_from_january(client, "bad", "good")
    await usage(client, "good", "2026-01-05T00:00:00Z", "500", "g1")
    # Data no policy covers: the account's currency changed under its plan behind the engine's back.
    async with db.unit_of_work() as session:
        await session.execute(text("UPDATE accounts SET invoice_currency = 'EUR' WHERE id = 'bad'"))
        await session.execute(text("UPDATE invoices SET currency = 'EUR' WHERE account_id = 'bad'"))

    clock.set(at(2026, 1, 20))
    listed = (await call(client, "list_invoices", pageSize=100))["data"]
    by_account = {i["accountId"]: i for i in listed}
    assert by_account["good"]["totalAmount"] == "36.00"  # 500 × 0.01 = 5.00 + 31.00
    assert by_account["bad"]["totalAmount"] is None and "does not support EUR" in by_account["bad"]["problem"]
    financial = (await call(client, "get_account", accountId="bad"))["financial"]
    assert financial["accruedCharges"] is None and "does not support EUR" in financial["problem"]
    # what credit is left after the charges is unknown too: not the balance, as if nothing were owed
    assert financial["wallet"]["balance"] == "0.00" and financial["wallet"]["availableBalance"] is None
    assert "does not support EUR" in await call_error(client, "get_invoice", accountId="bad")

    summary = await run_bill(db, at(2026, 2, 1))
    assert [f.accountId for f in summary.failed] == ["bad"] and summary.invoicesDue == 1
    assert "does not support EUR" in summary.failed[0].reason
    # good's January closed exactly once; bad's stays open, not half-closed
    assert [i["totalAmount"] for i in await invoices(client, "good", status="DUE")] == ["36.00"]
    assert await invoices(client, "bad", status="DUE") == []


async def test_an_account_whose_stored_deal_no_longer_validates_never_stops_the_others(
        client, clock, db, monkeypatch) -> None:
    pro = await plan(client, "Pro", await tokens_meter(client))  # base 31.00 a month (not prorated), 0.01 a token
    await account(client, "good", pro, iso(2026, 1, 1))
    await call(client, "create_customer", id="cust_bad", name="Customer")
    await call(client, "create_account", id="bad", customerId="cust_bad", name="bad", pricePlanId=pro,
               effectiveFrom=iso(2026, 1, 1), rateCardOverrides={"fixedFeeRateCards": [fee("base", "62", prorate=False)]})
    await usage(client, "good", "2026-01-05T00:00:00Z", "500", "g1")
    await usage(client, "bad", "2026-01-05T00:00:00Z", "100", "b1")
    clock.set(at(2026, 2, 2))  # January (no grace period) is DUE for both
    assert sorted((i["accountId"], i["totalAmount"]) for i in (
        await call(client, "list_invoices", status="DUE", pageSize=100))["data"]) == [
        ("bad", "63.00"),  # 100 × 0.01 = 1.00 + the deal's base 62.00
        ("good", "36.00")]  # 500 × 0.01 = 5.00 + base 31.00
    await usage(client, "good", "2026-02-05T00:00:00Z", "200", "g2")
    await usage(client, "bad", "2026-02-05T00:00:00Z", "300", "b2")
    # An upgrade with stricter checks, or a hand edit: bad's stored deal no longer parses; the engine restarts
    # (nothing it priced before is cached)
    await break_stored_deal(db, monkeypatch, "bad", "{fixedFeeRateCards,0,rateValues,0,rate}", '"62 USD"')
    what = "'62 USD' is not a decimal number"

    clock.set(at(2026, 2, 20))
    listed = (await call(client, "list_invoices", pageSize=100))["data"]  # every account
    assert sorted((i["accountId"], i["startDate"], i["status"], i["totalAmount"]) for i in listed) == [
        ("bad", iso(2026, 1, 1), "DUE", "63.00"),  # frozen: it needs no plan to read
        ("bad", iso(2026, 2, 1), "DRAFT", None),  # cannot be computed: see its problem
        ("good", iso(2026, 1, 1), "DUE", "36.00"),
        ("good", iso(2026, 2, 1), "DRAFT", "33.00")]  # 200 × 0.01 = 2.00 + 31.00
    problem = next(i["problem"] for i in listed if i["accountId"] == "bad" and i["status"] == "DRAFT")
    assert "account 'bad'" in problem and "rateCardOverrides.fixedFeeRateCards[0].rateValues[0].rate" in problem
    assert what in problem
    error = await call_error(client, "get_invoice", accountId="bad")  # its own read names it and what is wrong
    assert "account 'bad'" in error and "rateCardOverrides.fixedFeeRateCards[0].rateValues[0].rate" in error
    assert what in error
    # get_account answers with what needs no deal (the plan and its cycle come from the version, what is owed from
    # the DUE invoices); only the charges, and what credit is left after them, are unknown, and `problem` says why
    financial = (await call(client, "get_account", accountId="bad"))["financial"]
    assert financial["pricePlan"] == {"id": pro, "name": "Pro", "effectiveFrom": iso(2026, 1, 1), "effectiveUntil": None,
                                      "version": 1, "isOverridden": True}
    assert financial["currentCycle"] == {"start": iso(2026, 2, 1), "end": iso(2026, 3, 1)}
    assert (financial["accruedCharges"], financial["outstanding"]) == (None, "63.00")  # January's, DUE
    assert "account 'bad'" in financial["problem"] and what in financial["problem"]
    assert financial["wallet"]["balance"] == "0.00" and financial["wallet"]["availableBalance"] is None

    revenue = await call(client, "get_metrics", startTime=iso(2026, 1, 1), endTime=iso(2026, 3, 1), metricQueries=[
        {"id": "q", "name": "REVENUE", "aggregationPeriod": "MONTH", "groupBy": "ACCOUNT_ID"}])
    by_account = {s["groupedBy"]["fieldValue"]: s["metricValues"] for s in revenue["results"][0]["data"]}
    # good as invoiced: January 36.00, February's DRAFT so far 33.00
    assert by_account["good"] == ["36.00", "33.00"]
    # bad: its January invoice still adds up (its usage line cannot be placed as it accrued without the plan: at
    # the period's end, with the fee: 63.00); its February DRAFT cannot be computed and carries none
    assert by_account["bad"] == ["63.00", "0.00"]

    summary = await run_bill(db, at(2026, 3, 1))  # February closes for good; bad is reported with its reason
    assert (summary.invoicesDue, [f.accountId for f in summary.failed]) == (1, ["bad"])
    assert "account 'bad'" in summary.failed[0].reason and what in summary.failed[0].reason
    assert [i["totalAmount"] for i in await invoices(client, "good", status="DUE")] == ["33.00", "36.00"]
    assert [i["startDate"] for i in await invoices(client, "bad", status="DRAFT")] == [iso(2026, 2, 1)]
    financial = (await call(client, "get_account", accountId="bad"))["financial"]  # answers, naming the deal
    assert financial["accruedCharges"] is None and "account 'bad'" in financial["problem"] and what in financial["problem"]
    assert financial["currentCycle"] == {"start": iso(2026, 2, 1), "end": iso(2026, 3, 1)}  # the clock: 20 February

    # the fix the error names: a valid deal from the start of its first period not invoiced (1 February)
    clock.set(at(2026, 3, 2))
    await call(client, "update_account", accountId="bad", pricePlanId=pro, effectiveFrom=iso(2026, 2, 1),
               rateCardOverrides={"fixedFeeRateCards": [fee("base", "62", prorate=False)]})
    assert [(i["startDate"], i["status"], i["totalAmount"]) for i in await invoices(client, "bad")] == [
        (iso(2026, 3, 1), "DRAFT", "62.00"),
        (iso(2026, 2, 1), "DUE", "65.00"),  # 300 × 0.01 = 3.00 + the deal's base 62.00
        (iso(2026, 1, 1), "DUE", "63.00")]


@pytest.mark.parametrize(("stored", "what"), [
    ('[{"fixedFeeRateCards": []}]', "rateCardOverrides: should be an object; got an array"),
    ('"base 62"', "rateCardOverrides: should be an object; got a string"),
    ('{"pricingRules": 5}', "pricingRulesOverride: should be an array; got a number"),
])
async def test_an_account_whose_stored_deal_is_no_object_never_stops_the_others(
        client, clock, db, monkeypatch, stored: str, what: str) -> None:
    pro = await plan(client, "Pro", await tokens_meter(client))  # base 31.00 a month (not prorated), 0.01 a token
    await account(client, "good", pro, iso(2026, 1, 1))
    await call(client, "create_customer", id="cust_bad", name="Customer")
    await call(client, "create_account", id="bad", customerId="cust_bad", name="bad", pricePlanId=pro,
               effectiveFrom=iso(2026, 1, 1), rateCardOverrides={"fixedFeeRateCards": [fee("base", "62", prorate=False)]})
    # A hand edit: bad's stored deal is JSON of another shape than the object every call stores; the engine restarts
    async with db.unit_of_work() as session:
        await session.execute(text("UPDATE plan_associations SET rate_card_overrides = CAST(:stored AS jsonb) "
                                   "WHERE account_id = 'bad'"), {"stored": stored})
    monkeypatch.setattr(overrides, "_EFFECTIVE", {})

    summary = await only_bad_fails(client, clock, db, what, "31.00")
    assert "update_account(pricePlanId, effectiveFrom, rateCardOverrides)" in summary.failed[0].reason

    # the fix the reason names: a valid deal from the start of its first period not invoiced (1 January)
    clock.set(at(2026, 2, 1))
    await call(client, "update_account", accountId="bad", pricePlanId=pro, effectiveFrom=iso(2026, 1, 1),
               rateCardOverrides={"fixedFeeRateCards": [fee("base", "62", prorate=False)]})
    assert [(i["startDate"], i["status"], i["totalAmount"]) for i in await invoices(client, "bad")] == [
        (iso(2026, 2, 1), "DRAFT", "62.00"), (iso(2026, 1, 1), "DUE", "62.00")]


@pytest.mark.parametrize(("path", "what"), [
    # a metered feature without its limit
    ("{billingEntitlementRateCards,0,featureConfigs}", "billingEntitlementRateCards[0].featureConfigs: feature "
                                                       "'quota' is metered"),
    # the overage card's feature made BOOLEAN
    ("{billingEntitlementRateCards,0,usageMeterId}", "entitlementOverageRateCards[0].featureId: feature 'quota' has "
                                                     "no usageMeterId"),
])
async def test_an_account_whose_stored_deal_leaves_an_overage_card_nothing_to_price_never_stops_the_others(
        client, clock, db, monkeypatch, path: str, what: str) -> None:
    meter = await tokens_meter(client)
    quota = {"featureId": "quota", "usageMeterId": meter, "featureConfigs": [{"featureCreditLimit": "100"}]}
    pro = (await call(client, "create_price_plan", name="Pro", pricingCycleConfig=MONTHLY, rateCards={
        "usageRateCards": [tiered(meter, ("0", "0.01"))], "fixedFeeRateCards": [fee("base", "31", prorate=False)],
        "billingEntitlementRateCards": [quota],
        "entitlementOverageRateCards": [{
            "name": "quota_overage", "featureId": "quota",
            "ratePlan": {"pricingModel": "TIERED", "slabs": [{"order": 1, "startAfter": 0, "priceType": "PER_UNIT"}]},
            "rateValues": [{"currency": "USD", "slabRates": [{"order": 1, "rate": "0.05"}]}]}]}))["id"]
    await account(client, "good", pro, iso(2026, 1, 1))
    await call(client, "create_customer", id="cust_bad", name="Customer")
    await call(client, "create_account", id="bad", customerId="cust_bad", name="bad", pricePlanId=pro,
               effectiveFrom=iso(2026, 1, 1), rateCardOverrides={"billingEntitlementRateCards": [
                   {**quota, "name": "quota", "featureConfigs": [{"featureCreditLimit": "200"}]}]})
    await usage(client, "good", "2026-01-05T00:00:00Z", "500", "g1")
    # A hand edit: the deal's card of the feature the overage card prices loses what that card needs (its limit,
    # or its meter); it still parses, as a BOOLEAN feature's card does
    await break_stored_deal(db, monkeypatch, "bad", path, "null")

    # good: 500 tokens x 0.01 = 5.00, 400 past the limit of 100 x 0.05 = 20.00, base 31.00
    await only_bad_fails(client, clock, db, what, "56.00")


async def test_credit_held_for_an_account_whose_stored_deal_no_longer_validates_is_never_expired(
        client, clock, db, monkeypatch) -> None:
    pro = await plan(client, "Pro", await tokens_meter(client))  # base 31.00 a month (not prorated), 0.01 a token
    await call(client, "create_customer", id="cust_bad", name="Customer")
    await call(client, "create_account", id="bad", customerId="cust_bad", name="bad", pricePlanId=pro,
               effectiveFrom=iso(2026, 1, 1), rateCardOverrides={"fixedFeeRateCards": [fee("base", "62", prorate=False)]})
    clock.set(at(2026, 1, 10))
    # valid through January's end: it pays January's invoice when that becomes DUE (wallets README, rule 2)
    await call(client, "grant_credit", accountId="bad", amount="50", effectiveUntil=iso(2026, 2, 1))
    await break_stored_deal(db, monkeypatch, "bad", "{fixedFeeRateCards,0,rateValues,0,rate}", '"62 USD"')

    clock.set(at(2026, 2, 2))  # January is due, but no bill run can close it: its invoice is not DUE yet
    # its unclosed periods are unknown, not none: the wallet's read names the deal rather than expire the grant
    # that may pay January (it read "no period waits", and the 50.00 expired)
    error = await call_error(client, "list_wallet_entries", accountId="bad", pageSize=100)
    assert "account 'bad'" in error and "'62 USD' is not a decimal number" in error

    # the fix the error names: a valid deal from the start of its first period not invoiced (1 January)
    await call(client, "update_account", accountId="bad", pricePlanId=pro, effectiveFrom=iso(2026, 1, 1),
               rateCardOverrides={"fixedFeeRateCards": [fee("base", "62", prorate=False)]})
    # January: the deal's base 62.00, of which the grant pays 50.00: 12.00 due; nothing expired
    assert [(i["totalAmount"], i["amountDue"]) for i in await invoices(client, "bad", status="DUE")] == [
        ("62.00", "12.00")]
    entries = (await call(client, "list_wallet_entries", accountId="bad", pageSize=100))["data"]
    assert sorted((e["kind"], e["amount"]) for e in entries) == [("APPLICATION", "-50.00"), ("GRANT", "50.00")]


async def test_a_plan_version_that_no_longer_validates_stops_only_its_accounts(client, clock, db, monkeypatch) -> None:
    meter = await tokens_meter(client)
    pro = await plan(client, "Pro", meter)  # base 31.00 a month (not prorated), 0.01 a token
    basic = await plan(client, "Basic", meter, monthly_fee="10")
    await account(client, "good", pro, iso(2026, 1, 1))
    await account(client, "bad", basic, iso(2026, 1, 1))
    await usage(client, "good", "2026-01-05T00:00:00Z", "500", "g1")
    await usage(client, "bad", "2026-01-05T00:00:00Z", "100", "b1")
    # An upgrade with stricter checks, or a hand edit: Basic's stored version no longer parses; the engine restarts
    await break_stored_version(db, monkeypatch, basic, 1, "{rateCards,fixedFeeRateCards,0,rateValues,0,rate}",
                               '"10 USD"')
    what = "rateCards.fixedFeeRateCards[0].rateValues[0].rate: '10 USD' is not a decimal number"

    clock.set(at(2026, 1, 20))
    listed = {i["accountId"]: i for i in (await call(client, "list_invoices", pageSize=100))["data"]}
    assert listed["good"]["totalAmount"] == "36.00"  # 500 × 0.01 = 5.00 + 31.00
    problem = listed["bad"]["problem"]
    assert listed["bad"]["totalAmount"] is None and f"version 1 of price plan {basic!r} no longer validates" in problem
    assert what in problem

    summary = await run_bill(db, at(2026, 2, 1))  # January closes for good; bad is reported with its reason
    assert (summary.invoicesDue, [f.accountId for f in summary.failed]) == (1, ["bad"])
    assert what in summary.failed[0].reason
    assert [i["totalAmount"] for i in await invoices(client, "good", status="DUE")] == ["36.00"]

    # the way out the reason names: another plan from the start of its first period not invoiced (1 January)
    await call(client, "update_account", accountId="bad", pricePlanId=pro, effectiveFrom=iso(2026, 1, 1))
    assert [(i["startDate"], i["totalAmount"]) for i in await invoices(client, "bad")] == [
        (iso(2026, 1, 1), "32.00")]  # 100 × 0.01 = 1.00 + Pro's 31.00


async def test_billing_progress_behind_its_final_invoices_stops_only_its_account(client, clock, db) -> None:
    await on_pro_from_january(client, "bad", "good")  # 31.00 a month, no grace period
    clock.set(at(2026, 2, 2))
    assert [i["totalAmount"] for i in await invoices(client, "bad", status="DUE")] == ["31.00"]  # January
    # A hand edit: bad's billing progress forgets its invoiced January, so a run would close January again
    async with db.unit_of_work() as session:
        await session.execute(text("UPDATE account_billing SET billed_until = NULL WHERE account_id = 'bad'"))

    clock.set(at(2026, 3, 2))
    listed = (await call(client, "list_invoices", pageSize=100))["data"]  # every account's read still answers
    assert sorted((i["accountId"], i["startDate"], i["status"], i["totalAmount"]) for i in listed) == [
        ("bad", iso(2026, 1, 1), "DUE", "31.00"),
        ("bad", iso(2026, 2, 1), "DRAFT", "31.00"),  # left as it was: not closed until the progress is fixed
        ("good", iso(2026, 1, 1), "DUE", "31.00"),
        ("good", iso(2026, 2, 1), "DUE", "31.00"),
        ("good", iso(2026, 3, 1), "DRAFT", "31.00")]
    summary = await run_bill(db, at(2026, 3, 2))
    assert [f.accountId for f in summary.failed] == ["bad"]
    reason = summary.failed[0].reason
    assert "account 'bad'" in reason and "already DUE" in reason and "billed_until" in reason
    assert "2026-02-01T00:00:00+00:00" in reason  # the fix: the end of its last final invoice

    async with db.unit_of_work() as session:  # the fix the reason names
        await session.execute(text(
            "UPDATE account_billing SET billed_until = '2026-02-01T00:00:00Z' WHERE account_id = 'bad'"))
    assert sorted((i["startDate"], i["status"], i["totalAmount"]) for i in await invoices(client, "bad")) == [
        (iso(2026, 1, 1), "DUE", "31.00"), (iso(2026, 2, 1), "DUE", "31.00"), (iso(2026, 3, 1), "DRAFT", "31.00")]
    assert (await run_bill(db, at(2026, 3, 2))).failed == []


async def test_an_account_bill_runs_cannot_bill_is_named_with_its_reason_in_get_account(client, clock, db) -> None:
    """An account whose close fails every time (here its billing progress edited behind its invoices) never stops the
    others and is listed in the bill run's `failed`; its own get_account says so too (`billingProblem`: since when its
    run is due, and the run's reason), although its DRAFT and accruedCharges still compute. It said nothing: an
    operator reading the account saw a DRAFT past its grace period and no hint that billing was stuck."""
    await on_pro_from_january(client, "bad", "good")  # 31.00 a month, no grace period
    clock.set(at(2026, 2, 2))
    assert [i["totalAmount"] for i in await invoices(client, "bad", status="DUE")] == ["31.00"]  # January
    async with db.unit_of_work() as session:  # a hand edit: bad's billing progress forgets its invoiced January
        await session.execute(text("UPDATE account_billing SET billed_until = NULL WHERE account_id = 'bad'"))

    clock.set(at(2026, 3, 2))
    summary = await run_bill(db, at(2026, 3, 2))
    assert [f.accountId for f in summary.failed] == ["bad"]
    financial = (await call(client, "get_account", accountId="bad"))["financial"]
    problem = financial["billingProblem"]
    # its run has been due since February's end (1 March), and fails with the run's reason, naming the fix
    assert problem.startswith("account 'bad' cannot be billed: its bill run has been due since "
                              "2026-03-01T00:00:00+00:00 and fails")
    assert summary.failed[0].reason in problem
    # its February DRAFT still computes (31.00): the charges are known, only billing is stuck
    assert (financial["accruedCharges"], financial["problem"], financial["outstanding"]) == ("31.00", None, "31.00")
    assert (await call(client, "get_account", accountId="good"))["financial"]["billingProblem"] is None

    async with db.unit_of_work() as session:  # the fix the reason names
        await session.execute(text(
            "UPDATE account_billing SET billed_until = '2026-02-01T00:00:00Z' WHERE account_id = 'bad'"))
    financial = (await call(client, "get_account", accountId="bad"))["financial"]
    # billed again: February DUE (31.00 more outstanding: 62.00), March's DRAFT open
    assert (financial["billingProblem"], financial["outstanding"], financial["accruedCharges"]) == (
        None, "62.00", "31.00")


async def test_a_plan_or_currency_change_keeps_when_a_stuck_accounts_run_has_been_due(client, clock, db) -> None:
    """billingProblem's "due since" is when the stuck run became due; a plan change or a currency change reruns the
    account's bill run at the change, and used to reset that instant to the change's, so the account seemed stuck
    only since then."""
    cards = {"fixedFeeRateCards": [{"id": "base", "rateValues": [{"currency": "USD", "rate": "31"},
                                                                   {"currency": "EUR", "rate": "29"}]}]}
    pro, other = [str((await call(client, "create_price_plan", name=name, pricingCycleConfig=MONTHLY,
                                  supportedCurrencies=["USD", "EUR"], rateCards=cards))["id"]) for name in ("Pro", "Other")]
    await account(client, "bad", pro, iso(2026, 1, 1))
    clock.set(at(2026, 2, 2))
    assert [i["totalAmount"] for i in await invoices(client, "bad", status="DUE")] == ["31.00"]  # January
    async with db.unit_of_work() as session:  # a hand edit: bad's billing progress forgets its invoiced January
        await session.execute(text("UPDATE account_billing SET billed_until = NULL WHERE account_id = 'bad'"))
    stuck = "account 'bad' cannot be billed: its bill run has been due since 2026-03-01T00:00:00+00:00 and fails"
    clock.set(at(2026, 3, 2))
    assert (await call(client, "get_account", accountId="bad"))["financial"]["billingProblem"].startswith(stuck)
    clock.set(at(2026, 3, 5))
    await call(client, "update_account", accountId="bad", pricePlanId=other, effectiveFrom=iso(2026, 4, 1))
    problem = (await call(client, "get_account", accountId="bad"))["financial"]["billingProblem"]
    assert problem.startswith(stuck), problem  # not since 5 March, the change
    clock.set(at(2026, 3, 6))
    await call(client, "update_account", accountId="bad", invoiceCurrency="EUR")
    problem = (await call(client, "get_account", accountId="bad"))["financial"]["billingProblem"]
    assert problem.startswith(stuck), problem  # not since 6 March, the change


async def test_a_plan_whose_first_invoice_cannot_be_composed_is_named_with_its_reason(client, clock, db) -> None:
    pro = await plan(client, "Pro", await tokens_meter(client))
    await account(client, "bad", pro, iso(2026, 2, 1))  # Pro from 1 February: no invoice row before that
    # Data no policy covers: the account's currency changed under its plan behind the engine's back.
    async with db.unit_of_work() as session:
        await session.execute(text("UPDATE accounts SET invoice_currency = 'EUR' WHERE id = 'bad'"))

    clock.set(at(2026, 2, 10))  # Pro is in effect, but its first period's DRAFT cannot be opened
    summary = await run_bill(db, at(2026, 2, 10))
    assert [f.accountId for f in summary.failed] == ["bad"] and "does not support EUR" in summary.failed[0].reason
    assert await invoices(client, "bad") == []  # no DRAFT row: the run leaves the account as it was
    error = await call_error(client, "get_invoice", accountId="bad")
    # the truth: Pro is in effect, its first invoice cannot be composed, and why (not "no price plan in effect")
    assert "no price plan in effect" not in error
    assert f"price plan {pro!r} in effect since 2026-02-01T00:00:00+00:00" in error
    assert "its first invoice cannot be composed" in error
    assert f"currency: price plan {pro!r} does not support EUR; it supports USD. Fix what that names" in error
    financial = (await call(client, "get_account", accountId="bad"))["financial"]
    # no DRAFT to add up: its charges are unknown, not 0.00, and the account says why, as get_invoice does
    assert (financial["pricePlan"]["id"], financial["accruedCharges"]) == (pro, None)
    assert "its first invoice cannot be composed" in financial["problem"]
    assert f"price plan {pro!r} does not support EUR" in financial["problem"]
    # and that its bill run, due since its plan started, fails with that reason
    assert financial["billingProblem"].startswith(
        "account 'bad' cannot be billed: its bill run has been due since 2026-02-01T00:00:00+00:00 and fails")
    assert f"price plan {pro!r} does not support EUR" in financial["billingProblem"]
    # the wallet's read says the same: not accruedCharges 0.00 and the whole balance available, as if nothing were owed
    error = await call_error(client, "get_wallet_balance", accountId="bad")
    assert "its first invoice cannot be composed" in error and f"price plan {pro!r} does not support EUR" in error


async def test_undoing_a_scheduled_change_restores_one_period_and_one_fee(client, clock) -> None:
    meter = await tokens_meter(client)
    normal = await plan(client, "Normal", meter)
    other = await plan(client, "Other", meter, monthly_fee="62")
    await account(client, "acme", normal, iso(2026, 1, 1))
    await call(client, "update_account", accountId="acme", pricePlanId=other, effectiveFrom=iso(2026, 1, 16))
    await call(client, "update_account", accountId="acme", pricePlanId=normal, effectiveFrom=iso(2026, 1, 16))

    clock.set(at(2026, 1, 20))
    listed = await invoices(client, "acme")
    # one January period on Normal with its one 31.00 fee (not 31.00 + 31.00 over two halves)
    assert [(i["startDate"], i["endDate"], i["totalAmount"]) for i in listed] == [
        (iso(2026, 1, 1), iso(2026, 2, 1), "31.00")]
    financial = (await call(client, "get_account", accountId="acme"))["financial"]
    assert financial["pricePlan"]["effectiveFrom"] == iso(2026, 1, 1)


async def test_a_mid_cycle_change_prorates_both_parts(client, clock) -> None:
    meter = await tokens_meter(client)
    small = await plan(client, "Small", meter, monthly_fee="31")
    large = await plan(client, "Large", meter, monthly_fee="62")
    # enableProration false on both (plan()): a change still charges each part only its share
    await account(client, "acme", small, iso(2026, 1, 1))
    await call(client, "update_account", accountId="acme", pricePlanId=large, effectiveFrom=iso(2026, 1, 11))
    clock.set(at(2026, 2, 2))
    due = sorted((i["startDate"], i["totalAmount"]) for i in await invoices(client, "acme", status="DUE"))
    # Small for 10 of 31 days: 31 × 10/31 = 10.00; Large for 21 of 31 days: 62 × 21/31 = 42.00
    assert due == [(iso(2026, 1, 1), "10.00"), (iso(2026, 1, 11), "42.00")]


async def test_ending_a_plan_bills_the_last_part_and_nothing_after(client, clock, db) -> None:
    meter = await tokens_meter(client)
    pro = await plan(client, "Pro", meter)
    await account(client, "acme", pro, iso(2026, 1, 1))
    await usage(client, "acme", "2026-01-03T00:00:00Z", "200", "e1")
    ended = await call(client, "update_account", accountId="acme", effectiveUntil=iso(2026, 1, 11))
    assert ended["id"] == "acme"
    late = await usage(client, "acme", "2026-01-20T00:00:00Z", "999", "e2")  # after the plan ended
    assert late["status"] == "NOT_BILLED_NO_PLAN"  # stored and metered, billed by no invoice

    await run_bill(db, at(2026, 6, 1))
    listed = await invoices(client, "acme")
    # 10 of 31 days: 31 × 10/31 = 10.00, usage 200 × 0.01 = 2.00 -> 12.00; no invoice after 11 January
    assert [(i["startDate"], i["endDate"], i["status"], i["totalAmount"]) for i in listed] == [
        (iso(2026, 1, 1), iso(2026, 1, 11), "DUE", "12.00")]
    clock.set(at(2026, 6, 1))
    financial = (await call(client, "get_account", accountId="acme"))["financial"]
    assert financial.get("pricePlan") is None and financial["outstanding"] == "12.00"
    # a second end is a no-op; ending inside the invoiced period is refused with the instant to use
    await call(client, "update_account", accountId="acme", effectiveUntil=iso(2026, 1, 11))
    assert "already invoiced" in await call_error(client, "update_account", accountId="acme", pricePlanId=pro,
                                                  effectiveFrom=iso(2026, 1, 5))


async def test_a_plan_attached_after_its_predecessor_was_invoiced_waits_for_its_due_date(client, clock) -> None:
    # Invoices become DUE in order: a period is due at max(its end + grace, the previous period's due instant),
    # also when the next plan is attached only after the previous period was invoiced.
    meter = await tokens_meter(client)
    slow = await call(client, "create_price_plan", name="Slow", pricingCycleConfig=MONTHLY | {"gracePeriod": 20},
                      rateCards={"usageRateCards": [tiered(meter, ("0", "0.01"))],
                                 "fixedFeeRateCards": [fee("base", "31", prorate=False)]})
    weekly = await call(client, "create_price_plan", name="Weekly", pricingCycleConfig={
        "interval": "WEEKLY", "startOffset": {"dayOffset": "1"}, "gracePeriod": 0}, rateCards={
        "usageRateCards": [tiered(meter, ("0", "0.01"))], "fixedFeeRateCards": [fee("base", "7", prorate=False)]})
    # "early" has Weekly scheduled from Monday 5 January before anything is invoiced; "late" ends Slow on 5 January
    # and gets Weekly from then on only after Slow's period was invoiced (the change starts at billed_until)
    await account(client, "early", slow["id"], iso(2026, 1, 1))
    await call(client, "update_account", accountId="early", pricePlanId=weekly["id"], effectiveFrom=iso(2026, 1, 5))
    await account(client, "late", slow["id"], iso(2026, 1, 1))
    await call(client, "update_account", accountId="late", effectiveUntil=iso(2026, 1, 5))

    clock.set(at(2026, 1, 26))  # Slow's [1 Jan, 5 Jan) is due 5 Jan + 20 days = 25 Jan: 31 × 4/31 = 4.00
    assert [(i["startDate"], i["status"], i["totalAmount"], i["invoiceDate"]) for i in await invoices(client, "late")] \
        == [(iso(2026, 1, 1), "DUE", "4.00", iso(2026, 1, 25))]
    await call(client, "update_account", accountId="late", pricePlanId=weekly["id"], effectiveFrom=iso(2026, 1, 5))

    def dated(listed: list[dict[str, Any]]) -> list[tuple[str, str, str, str, str | None]]:
        return sorted((i["startDate"], i["endDate"], i["status"], i["totalAmount"], i["invoiceDate"]) for i in listed)

    expected = [
        (iso(2026, 1, 1), iso(2026, 1, 5), "DUE", "4.00", iso(2026, 1, 25)),
        # the weeks ending 12 and 19 January (no grace) wait for Slow's period: due 25 January, 7.00 each
        (iso(2026, 1, 5), iso(2026, 1, 12), "DUE", "7.00", iso(2026, 1, 25)),
        (iso(2026, 1, 12), iso(2026, 1, 19), "DUE", "7.00", iso(2026, 1, 25)),
        (iso(2026, 1, 19), iso(2026, 1, 26), "DUE", "7.00", iso(2026, 1, 26)),  # due at its own end
        (iso(2026, 1, 26), iso(2026, 2, 2), "DRAFT", "7.00", None),
    ]
    assert dated(await invoices(client, "early")) == expected
    assert dated(await invoices(client, "late")) == expected


async def test_archiving_ends_the_plan_and_reactivating_reattaches(client, clock, db) -> None:
    meter = await tokens_meter(client)
    pro = await plan(client, "Pro", meter)
    await account(client, "acme", pro, iso(2026, 1, 1))
    clock.set(at(2026, 1, 11))
    await call(client, "update_account", accountId="acme", status="ARCHIVED")
    assert "ARCHIVED" in await call_error(client, "update_account", accountId="acme", pricePlanId=pro)

    await run_bill(db, at(2026, 4, 1))
    clock.set(at(2026, 4, 1))
    # the archive instant ends the plan: 31 × 10/31 = 10.00 for 1-11 January, and no recurring fee after it
    assert [(i["startDate"], i["totalAmount"]) for i in await invoices(client, "acme")] == [
        (iso(2026, 1, 1), "10.00")]

    await call(client, "update_account", accountId="acme", status="ACTIVE", pricePlanId=pro,
               effectiveFrom=iso(2026, 4, 1))
    draft = await call(client, "get_invoice", accountId="acme")
    assert (draft["startDate"], draft["totalAmount"]) == (iso(2026, 4, 1), "31.00")


async def test_archiving_with_a_later_plan_end_is_refused_not_billed_past_the_archive(client, clock, db) -> None:
    meter = await tokens_meter(client)
    pro = await plan(client, "Pro", meter)
    await account(client, "acme", pro, iso(2026, 1, 1))
    clock.set(at(2026, 1, 11))
    # ARCHIVED ends the plan at the archive instant; an effectiveUntil after it asks for another end. Taking that one
    # billed an archived account 31.00 for all of January and 31.00 for February (no usage possible meanwhile).
    before, shown = await row_counts(db), await call(client, "get_account", accountId="acme")
    error = await call_error(client, "update_account", accountId="acme", status="ARCHIVED",
                             effectiveUntil=iso(2026, 3, 1))
    assert error.startswith("Error executing tool update_account: effectiveUntil:") and "ARCHIVED" in error, error
    assert (await call(client, "get_account", accountId="acme"))["status"] == "ACTIVE"  # nothing changed
    # neither the plan's end nor anything else: the account reads as before, no row added
    assert await call(client, "get_account", accountId="acme") == shown and await row_counts(db) == before

    # An end at or before the archive instant agrees with it: 1-6 January, 31 × 5/31 = 5.00, nothing after.
    await call(client, "update_account", accountId="acme", status="ARCHIVED", effectiveUntil=iso(2026, 1, 6))
    await run_bill(db, at(2026, 4, 1))
    clock.set(at(2026, 4, 1))
    assert [(i["startDate"], i["totalAmount"]) for i in await invoices(client, "acme")] == [
        (iso(2026, 1, 1), "5.00")]


async def test_a_net_terms_change_leaves_the_invoices_issued_before_it_on_the_old_terms(client, clock, db) -> None:
    meter = await tokens_meter(client)
    pro = await plan(client, "Pro", meter)  # grace 0: January is issued (DUE) on 1 February
    await call(client, "create_customer", id="cust_acme", name="Acme", account={
        "id": "acme", "name": "Acme", "netTermDays": 10, "pricePlanId": pro, "effectiveFrom": iso(2026, 1, 1)})
    # No bill run or read between 1 February and the change: January was issued on its terms all the same,
    # as a bill run on 1 February would have issued it (due 1 February + 10 days), not 30 days after that.
    clock.set(at(2026, 2, 10))
    await call(client, "update_account", accountId="acme", netTermDays=30)
    await run_bill(db, at(2026, 3, 1))
    clock.set(at(2026, 3, 1))
    assert [(i["startDate"], i["invoiceDate"], i["dueDate"]) for i in await invoices(client, "acme", status="DUE")] == [
        (iso(2026, 2, 1), iso(2026, 3, 1), iso(2026, 3, 31)),  # issued after the change: 1 March + 30 days
        (iso(2026, 1, 1), iso(2026, 2, 1), iso(2026, 2, 11))]  # 1 February + 10 days


async def test_a_currency_the_plan_cannot_price_is_refused(client) -> None:
    meter = await tokens_meter(client)
    pro = await plan(client, "Pro", meter)  # USD only
    await account(client, "acme", pro, iso(2026, 1, 1))
    error = await call_error(client, "update_account", accountId="acme", invoiceCurrency="EUR")
    assert error.startswith("Error executing tool update_account: invoiceCurrency:") and "does not support EUR" in error
    assert (await call(client, "get_account", accountId="acme"))["invoiceCurrency"] == "USD"
    await call(client, "list_invoices", accountId="acme")  # still reads


async def test_a_bill_run_ahead_of_the_clock_leaves_every_listing_readable(client, clock, db) -> None:
    meter = await tokens_meter(client)
    pro = await plan(client, "Pro", meter)
    await account(client, "acme", pro, iso(2026, 1, 1))
    clock.set(at(2026, 1, 20))
    await run_bill(db, at(2026, 2, 1))  # `togai-engine bill --as-of 2026-02-01T00:00:00Z`, on 20 January
    for filters in ({}, {"status": "DRAFT"}, {"customerId": "cust_acme"}, {"accountId": "acme"}):
        page = await call(client, "list_invoices", pageSize=100, **filters)
        assert page["data"], filters
    feb = (await call(client, "list_invoices", status="DRAFT"))["data"][0]
    assert (feb["startDate"], feb["totalAmount"], feb["closesAt"]) == (iso(2026, 2, 1), "31.00", iso(2026, 3, 1))
    assert (await call(client, "get_invoice", invoiceId=feb["id"]))["totalAmount"] == "31.00"


async def anniversary_pro(client: Any) -> str:
    """Pro, billed on the anniversary of each account's start: usage at 0.01 a token and a 31.00 base fee, not
    prorated in a first partial period (a change still prorates it); no grace period."""
    meter = await tokens_meter(client)
    anniversary = {"interval": "MONTHLY", "anniversaryCycle": True, "gracePeriod": 0}
    return (await call(client, "create_price_plan", name="Pro", pricingCycleConfig=anniversary, rateCards={
        "usageRateCards": [tiered(meter, ("0", "0.01"))],
        "fixedFeeRateCards": [fee("base", "31", prorate=False)]}))["id"]


async def test_reattaching_an_anniversary_plan_where_its_invoiced_end_was_keeps_its_billing_day(client, clock) -> None:
    pro = await anniversary_pro(client)
    clock.set(at(2026, 1, 10))
    await account(client, "acme", pro, iso(2026, 1, 10))  # cycles from the 10th: [10 Jan, 10 Feb) is 31 days
    await call(client, "update_account", accountId="acme", effectiveUntil=iso(2026, 1, 21))
    clock.set(at(2026, 1, 22))  # [10 Jan, 21 Jan) is invoiced, cut by the end: 31 × 11/31 = 11.00
    assert [(i["startDate"], i["status"], i["totalAmount"]) for i in await invoices(client, "acme")] == [
        (iso(2026, 1, 10), "DUE", "11.00")]
    # the end is undone: Pro again from 21 January, on the cycle it had (the 10th), its first part cut the same
    # way: [21 Jan, 10 Feb) is 20 of 31 days: 31 × 20/31 = 20.00, and the next cycle starts 10 February
    await call(client, "update_account", accountId="acme", pricePlanId=pro, effectiveFrom=iso(2026, 1, 21))
    draft = await call(client, "get_invoice", accountId="acme")
    assert (draft["startDate"], draft["endDate"], draft["totalAmount"]) == (iso(2026, 1, 21), iso(2026, 2, 10), "20.00")


async def test_a_new_deal_on_an_anniversary_plan_keeps_its_billing_day(client, clock) -> None:
    # a new deal on the plan the account is on is new prices on the same plan (as a version migration): the cycles
    # stay on the account's billing day (Stripe keeps billing_cycle_anchor on a price change; Togai edits the deal
    # on the same schedule)
    pro = await anniversary_pro(client)
    clock.set(at(2026, 1, 10))
    await account(client, "acme", pro, iso(2026, 1, 10))  # billed on the 10th: [10 Jan, 10 Feb) is 31 days
    clock.set(at(2026, 1, 21))
    # from 21 January acme's deal on Pro: its base fee is 62.00 a month
    await call(client, "update_account", accountId="acme", pricePlanId=pro, effectiveFrom=iso(2026, 1, 21),
               rateCardOverrides={"fixedFeeRateCards": [fee("base", "62", prorate=False)]})
    await usage(client, "acme", "2026-01-25T00:00:00Z", "500", "e1")  # 500 × 0.01 = 5.00, never prorated

    clock.set(at(2026, 3, 10))
    listed = sorted((i["startDate"], i["endDate"], i["status"], i["totalAmount"]) for i in await invoices(client, "acme"))
    assert listed == [
        # the old price for 11 of 31 days, cut by the change: 31 × 11/31 = 11.00
        (iso(2026, 1, 10), iso(2026, 1, 21), "DUE", "11.00"),
        # the deal for the rest of that cycle, 20 of 31 days: 62 × 20/31 = 40.00, + usage 5.00 = 45.00
        (iso(2026, 1, 21), iso(2026, 2, 10), "DUE", "45.00"),
        # then whole cycles on the 10th at the deal's price: 62.00 (28 days, not prorated)
        (iso(2026, 2, 10), iso(2026, 3, 10), "DUE", "62.00"),
        (iso(2026, 3, 10), iso(2026, 4, 10), "DRAFT", "62.00"),
    ]


def in_usd_and_eur(meter: str) -> dict[str, Any]:
    """0.01 a token and a 49.00 monthly fee in arrears, both in USD and EUR."""
    currencies = ("USD", "EUR")
    usage_card = tiered(meter, ("0", "0.01")) | {"rateValues": [
        {"currency": c, "slabRates": [{"order": 1, "rate": "0.01"}]} for c in currencies]}
    base = fee("base", "49", prorate=False) | {"rateValues": [{"currency": c, "rate": "49"} for c in currencies]}
    return {"usageRateCards": [usage_card], "fixedFeeRateCards": [base]}


async def test_outstanding_never_adds_two_currencies_after_a_currency_change(client, clock) -> None:
    pro = await call(client, "create_price_plan", name="Pro", pricingCycleConfig=MONTHLY,
                     supportedCurrencies=["USD", "EUR"], rateCards=in_usd_and_eur(await tokens_meter(client)))
    await account(client, "acme", pro["id"], iso(2026, 1, 1))
    await usage(client, "acme", "2026-01-10T00:00:00Z", "3000", "jan")
    clock.set(at(2026, 2, 2))
    # January (no grace period) is DUE: 3000 × 0.01 = 30.00 + base 49.00 = 79.00 USD
    assert [(i["currency"], i["amountDue"]) for i in await invoices(client, "acme", status="DUE")] == [
        ("USD", "79.00")]
    await call(client, "update_account", accountId="acme", invoiceCurrency="EUR")  # no wallet entries: allowed
    await usage(client, "acme", "2026-02-10T00:00:00Z", "1000", "feb")

    clock.set(at(2026, 3, 2))
    # February, invoiced in EUR: 1000 × 0.01 = 10.00 + base 49.00 = 59.00 EUR
    assert [(i["currency"], i["amountDue"]) for i in await invoices(client, "acme", status="DUE")] == [
        ("EUR", "59.00"), ("USD", "79.00")]
    financial = (await call(client, "get_account", accountId="acme"))["financial"]
    # what is owed in the account's currency is EUR 59.00, never 59.00 + 79.00 = 138.00 "EUR";
    # the USD 79.00 is still owed, in its own currency
    assert (financial["currency"], financial["outstanding"]) == ("EUR", "59.00")
    assert financial["outstandingByCurrency"] == [{"currency": "EUR", "amount": "59.00"},
                                                  {"currency": "USD", "amount": "79.00"}]


async def test_outstanding_by_currency_is_empty_when_nothing_is_due(client) -> None:
    pro = await plan(client, "Pro", await tokens_meter(client))
    await account(client, "acme", pro, iso(2026, 1, 1))
    await call(client, "create_customer", id="plain", name="Plain", account={"id": "bare", "name": "Bare"})
    for account_id, outstanding in (("acme", "0.00"), ("bare", None)):  # on a plan, nothing DUE; no plan at all
        financial = (await call(client, "get_account", accountId=account_id))["financial"]
        assert (financial["outstanding"], financial["outstandingByCurrency"]) == (outstanding, [])


async def test_a_currency_change_after_a_grace_period_ended_leaves_that_invoice_in_the_old_currency(
        client, clock) -> None:
    pro = await call(client, "create_price_plan", name="Pro", pricingCycleConfig=MONTHLY,
                     supportedCurrencies=["USD", "EUR"], rateCards=in_usd_and_eur(await tokens_meter(client)))
    await account(client, "acme", pro["id"], iso(2026, 1, 1))
    await usage(client, "acme", "2026-01-30T00:00:00Z", "3000", "jan")
    # 1 February 01:00: January (no grace period) was due at midnight, in USD; no read or bill run has closed it yet
    clock.set(at(2026, 2, 1, 1))
    await call(client, "update_account", accountId="acme", invoiceCurrency="EUR")
    await usage(client, "acme", "2026-02-01T02:00:00Z", "1000", "feb")
    clock.set(at(2026, 3, 2))
    # January is owed in USD: 3000 × 0.01 = 30.00 + base 49.00 = 79.00; only February, open at the change, is in
    # EUR: 1000 × 0.01 = 10.00 + 49.00 = 59.00
    assert [(i["startDate"], i["currency"], i["totalAmount"]) for i in await invoices(client, "acme", status="DUE")] \
        == [(iso(2026, 2, 1), "EUR", "59.00"), (iso(2026, 1, 1), "USD", "79.00")]


async def test_revenue_of_an_account_never_adds_two_currencies_nor_fails_the_others_after_a_currency_change(
        client, clock) -> None:
    pro = await call(client, "create_price_plan", name="Pro", pricingCycleConfig=MONTHLY,
                     supportedCurrencies=["USD", "EUR"], rateCards=in_usd_and_eur(await tokens_meter(client)))
    await account(client, "acme", pro["id"], iso(2026, 1, 1))
    await account(client, "steady", pro["id"], iso(2026, 1, 1))  # stays in USD
    await usage(client, "acme", "2026-01-30T00:00:00Z", "3000", "jan")
    await usage(client, "steady", "2026-01-27T00:00:00Z", "500", "s-jan")
    clock.set(at(2026, 2, 1, 1))  # January is DUE in USD: 3000 × 0.01 = 30.00 + base 49.00 = 79.00
    await call(client, "update_account", accountId="acme", invoiceCurrency="EUR")
    await usage(client, "acme", "2026-02-01T02:00:00Z", "1000", "feb")  # February in EUR: 10.00 + 49.00 = 59.00
    await usage(client, "steady", "2026-02-03T00:00:00Z", "200", "s-feb")
    clock.set(at(2026, 3, 2))

    def revenue(start: str, end: str, period: str, group_by: str | None = "ACCOUNT_ID") -> dict[str, Any]:
        return {"startTime": start, "endTime": end, "metricQueries": [
            {"id": "r", "name": "REVENUE", "aggregationPeriod": period, "groupBy": group_by}]}

    # Weeks of 26 January and 2 February. acme's first week holds January's USD 30.00 + 49.00 and February's EUR
    # 10.00 of 1 February: no one number is both (79.00 + 10.00 = 89.00 is neither), so acme has one series per
    # currency, each labelled; February's EUR 49.00 falls on 28 February, past the range. steady (USD) reads as
    # usual: 500 × 0.01 = 5.00 + base 49.00 on 31 January = 54.00, then 200 × 0.01 = 2.00. One account's currency
    # change never fails the query for the others.
    result = await call(client, "get_metrics", **revenue(iso(2026, 1, 26), iso(2026, 2, 9), "WEEK"))
    assert [(s["groupedBy"]["fieldValue"], s["currency"], s["metricValues"]) for s in result["results"][0]["data"]] \
        == [("acme", "EUR", ["10.00", "0.00"]), ("acme", "USD", ["79.00", "0.00"]),  # no USD amount that week
            ("steady", "USD", ["54.00", "2.00"])]
    # A scenario file's expectations name such an account's series with their currency, so neither hides the other.
    observed = await observe_metrics(Calls(client), MetricExpect(values={}, **revenue(iso(2026, 1, 26), iso(2026, 2, 9),
                                                                                     "WEEK")), ())
    assert {group: list(buckets.values()) for group, buckets in observed["r"].items()} == {
        "acme (EUR)": ["10.00", "0.00"], "acme (USD)": ["79.00", "0.00"], "steady": ["54.00", "2.00"]}
    # Not grouped by account, the series would add two currencies: refused, pointing to ACCOUNT_ID
    error = await call_error(client, "get_metrics", **revenue(iso(2026, 1, 26), iso(2026, 2, 9), "WEEK", None))
    assert "several currencies (EUR, USD)" in error and "group by ACCOUNT_ID" in error
    # Each side of the change reads, in its own currency.
    for (start, end), value, currency in (((iso(2026, 1, 1), iso(2026, 2, 1)), "79.00", "USD"),
                                          ((iso(2026, 2, 1), iso(2026, 3, 1)), "59.00", "EUR")):
        result = await call(client, "get_metrics", **revenue(start, end, "MONTH"))
        acme = result["results"][0]["data"][0]
        assert (acme["groupedBy"]["fieldValue"], acme["currency"], acme["metricValues"]) == ("acme", currency, [value])


async def test_a_due_invoice_with_a_rate_past_28_digits_reads_whole(client, clock) -> None:
    # A plan accepts rates of up to 40 digits. PostgreSQL hands a stored 10^30 back as 1E+30, which an invoice shows
    # written out; written out in Python's default context (28 digits) it raised, and get_invoice failed.
    meter = await tokens_meter(client)
    rate = "1" + "0" * 30
    created = await call(client, "create_price_plan", name="Dear", pricingCycleConfig=MONTHLY,
                         rateCards={"usageRateCards": [tiered(meter, ("0", rate))]})
    await account(client, "dear", created["id"], iso(2026, 1, 1))
    await usage(client, "dear", "2026-01-05T00:00:00Z", "2", "d1")
    clock.set(at(2026, 2, 2))  # January is DUE (no grace period): read back from its stored lines
    [due] = await invoices(client, "dear", status="DUE")
    shown = await call(client, "get_invoice", invoiceId=due["id"])
    [slab] = shown["lineItems"][0]["lineItems"]
    # 2 tokens × 10^30 = 2 × 10^30
    assert (slab["valuePerQuantity"], slab["value"], shown["totalAmount"]) == (rate, "2" + "0" * 30, f"2{'0' * 30}.00")


async def test_an_invoice_past_60_digits_reads_whole_and_never_stops_anyones_reads(client, clock) -> None:
    # A plan accepts rates up to 10^40: two usage cards at 9 × 10^39 a token on 10^18 tokens bill 9 × 10^57 each,
    # 60 digits with the cents (as rating keeps a line); with the 31.00 fee the total has 61.
    meter = await tokens_meter(client)
    huge = "9" + "0" * 39
    created = await call(client, "create_price_plan", name="Huge", pricingCycleConfig=MONTHLY, rateCards={
        "usageRateCards": [{**tiered(meter, ("0", huge)), "name": "tokens"},
                           {**tiered(meter, ("0", huge)), "name": "tokens_again"}],
        "fixedFeeRateCards": [fee("base", "31", prorate=False)]})
    await account(client, "huge", created["id"], iso(2026, 1, 1))
    await on_pro_from_january(client, "good")
    await usage(client, "huge", "2026-01-05T00:00:00Z", "1" + "0" * 18, "h1")
    await usage(client, "good", "2026-01-05T00:00:00Z", "500", "g1")
    line = "9" + "0" * 57 + ".00"  # 10^18 × 9 × 10^39 = 9 × 10^57
    total = "18" + "0" * 55 + "31.00"  # 2 × 9 × 10^57 + 31.00 = 1.8 × 10^58 + 31.00: 61 digits

    clock.set(at(2026, 1, 20))
    listed = (await call(client, "list_invoices", pageSize=100))["data"]  # every account's DRAFT
    assert sorted((i["accountId"], i["totalAmount"]) for i in listed) == [("good", "36.00"), ("huge", total)]
    assert (await call(client, "get_account", accountId="huge"))["financial"]["accruedCharges"] == total

    clock.set(at(2026, 2, 2))  # January is DUE for both (no grace period)
    [due] = await invoices(client, "huge", status="DUE")
    shown = await call(client, "get_invoice", invoiceId=due["id"])
    assert (shown["totalAmount"], [i["value"] for i in shown["lineItems"]]) == (total, [line, line, "31.00"])
    assert (await call(client, "get_account", accountId="huge"))["financial"]["outstanding"] == total
    assert [i["totalAmount"] for i in await invoices(client, "good", status="DUE")] == ["36.00"]
