"""Pricing rules on invoices, through a real MCP client on a sandbox clock.

Every plan here: a meter `api_calls` (SUM of the attribute `calls`), monthly cycles from the 1st with no grace
period (January's invoice is DUE at Feb 1), 0.50 a call on the card `api` and a 100.00 `platform` fee.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
from mcp import Client

from conftest import START, hosted
from helpers import at, call
from mcp_server.server import build_server
from togai_engine.common.clock import FixedClock
from togai_engine.sandbox.service import start
from togai_engine.store.database import Database


@pytest.fixture
async def sandbox(db: Database) -> AsyncIterator[Client]:
    """A sandbox server at 2026-01-01T00:00Z (its wall clock is years away, so only the sandbox time counts)."""
    async with db.unit_of_work() as session:
        await start(session, START)
    async with hosted(Client(build_server(db, clock=FixedClock(at(2031, 7, 4)), sandbox=True),
                             raise_exceptions=False)) as client:
        yield client

TEN_PERCENT_OVER_1000 = {
    "name": "volume discount", "order": 1, "condition": {">": [{"var": "subTotal"}, 1000]},
    "computation": {"*": [{"var": "subTotal"}, -0.1]}, "action": {"type": "ADD", "description": "10% off over 1000"}}


async def api_meter(client: Client) -> str:
    """The api_calls meter's id (um_...): rules read its usage as usage.<that id>."""
    meters = await call(client, "list_usage_meters")
    meter = next((m for m in meters["data"] if m["name"] == "api_calls"), None) or await call(
        client, "create_usage_meter", name="api_calls", eventSchemaName="api", aggregation="SUM",
        computations=[{"computation": "calls"}])
    return meter["id"]


async def plan_with(client: Client, name: str, rules: list[dict[str, Any]], **extra: Any) -> dict[str, Any]:
    meter = {"id": await api_meter(client)}
    return await call(client, "create_price_plan", name=name, pricingCycleConfig={
        "interval": "MONTHLY", "startOffset": {"dayOffset": "1"}, "gracePeriod": 0}, rateCards={
        "usageRateCards": [{"name": "api", "usageMeterId": meter["id"], "ratePlan": {"pricingModel": "TIERED", "slabs": [
            {"order": 1, "startAfter": "0", "priceType": "PER_UNIT"}]},
            "rateValues": [{"currency": "USD", "slabRates": [{"order": 1, "rate": "0.5"}]}]}],
        "fixedFeeRateCards": [{"id": "platform", "rateValues": [{"currency": "USD", "rate": "100"}]}]},
        pricingRules=rules, **extra)


async def account_on(client: Client, account: str, plan: dict[str, Any]) -> None:
    await call(client, "create_customer", id=f"cust_{account}", name=account,
               account={"id": account, "name": account, "pricePlanId": plan["id"]})


async def use(client: Client, account: str, calls: str, event_id: str) -> None:
    now = (await call(client, "get_clock"))["now"]
    await call(client, "ingest_event", event={"id": event_id, "schemaName": "api", "accountId": account,
                                              "timestamp": now, "attributes": {"calls": calls}})


async def invoices(client: Client, account: str) -> list[dict[str, Any]]:
    """The account's invoices, oldest first, each read whole with get_invoice."""
    listed = (await call(client, "list_invoices", accountId=account, pageSize=100))["data"]
    return [await call(client, "get_invoice", invoiceId=i["id"]) for i in reversed(listed)]


def rule_lines(invoice: dict[str, Any]) -> list[tuple[str, str]]:
    return [(line["description"], line["value"]) for line in invoice["lineItems"]
            if line["type"] == "PRICING_RULE_AMOUNT"]


def totals(invoice: dict[str, Any]) -> tuple[str, str, str]:
    return invoice["subTotalAmount"], invoice["trueUpAmount"], invoice["totalAmount"]


async def test_a_discount_fires_over_its_threshold_and_not_at_it(sandbox: Client) -> None:
    plan = await plan_with(sandbox, "Discount", [TEN_PERCENT_OVER_1000])
    assert plan["pricingRules"] == [{
        "name": "volume discount", "order": 1, "invoiceTiming": "IN_ARREARS",
        "condition": '{">":[{"var":"subTotal"},1000]}', "computation": '{"*":[{"var":"subTotal"},-0.1]}',
        "action": {"type": "ADD", "target": None, "description": "10% off over 1000"}}]
    await account_on(sandbox, "acme", plan)
    await call(sandbox, "advance_clock", to="2026-01-20")
    await use(sandbox, "acme", "2000.5", "jan")   # 2000.5 x 0.50 = 1000.25, + 100.00 fee = 1100.25
    await call(sandbox, "advance_clock", to="2026-02-20")
    await use(sandbox, "acme", "1800", "feb")     # 1800 x 0.50 = 900.00, + 100.00 = 1000.00: not over 1000
    await call(sandbox, "advance_clock", to="2026-03-01")
    january, february, march = await invoices(sandbox, "acme")
    # 1100.25 x -0.1 = -110.025, half-up (away from zero) -110.03; 1100.25 - 110.03 = 990.22
    assert rule_lines(january) == [("10% off over 1000", "-110.03")]
    assert (january["status"], *totals(january)) == ("DUE", "990.22", "0.00", "990.22")
    assert january["pricingRuleLogs"] == [{
        "name": "volume discount", "order": 1, "action": "ADD", "target": None, "status": "APPLIED", "reason": None,
        "computedAmount": "-110.03", "amount": "-110.03", "previousAmount": None, "change": "-110.03",
        "clamped": False, "totalBefore": "1100.25", "totalAfter": "990.22"}]
    revenue = await call(sandbox, "get_metrics", startTime="2026-01-01T00:00:00Z", endTime="2026-02-01T00:00:00Z",
                         metricQueries=[{"id": "r", "name": "REVENUE", "aggregationPeriod": "MONTH"}])
    assert revenue["results"][0]["data"][0]["metricValues"] == ["990.22"]  # REVENUE is the invoice, rules and all
    assert rule_lines(february) == []
    assert (february["status"], february["totalAmount"]) == ("DUE", "1000.00")
    (skipped,) = february["pricingRuleLogs"]
    assert (skipped["status"], skipped["reason"], skipped["change"]) == ("SKIPPED", "its condition is false", None)
    # the open month's DRAFT logs its rules too: 100.00 alone is not over 1000
    assert (march["status"], march["totalAmount"], march["pricingRuleLogs"][0]["status"]) == ("DRAFT", "100.00",
                                                                                               "SKIPPED")


async def test_update_caps_a_card_and_a_percentage_fee_is_added_on_the_capped_total(sandbox: Client) -> None:
    plan = await plan_with(sandbox, "Cap and fee", [
        {"name": "processing fee", "order": 20, "computation": {"*": [{"var": "total"}, 0.029]},
         "action": {"type": "ADD", "description": "card processing 2.9%"}},
        {"name": "api cap", "order": 10, "computation": {"min": [{"var": "rateCards.api"}, 500]},
         "action": {"type": "UPDATE", "target": "api"}},
    ])
    assert [r["name"] for r in plan["pricingRules"]] == ["api cap", "processing fee"]  # stored in the order they run
    await account_on(sandbox, "capped", plan)
    await call(sandbox, "advance_clock", to="2026-01-31")
    await use(sandbox, "capped", "1500", "jan")   # 1500 x 0.50 = 750.00 on the api card
    await call(sandbox, "advance_clock", to="2026-02-01")
    january, _ = await invoices(sandbox, "capped")
    api, platform, fee = january["lineItems"]
    # the cap sets the api line to min(750.00, 500) = 500.00; the fee is 2.9% of 500.00 + 100.00 = 17.40
    assert (api["value"], api["details"]["valueBeforeRule"], api["details"]["pricingRule"]) == ("500.00", "750.00",
                                                                                                "api cap")
    assert api["description"] == "api: 1500 units — set by pricing rule 'api cap' (was 750.00)"
    assert (platform["value"], fee["type"], fee["description"], fee["value"]) == (
        "100.00", "PRICING_RULE_AMOUNT", "card processing 2.9%", "17.40")
    assert totals(january) == ("617.40", "0.00", "617.40")  # 500.00 + 100.00 + 17.40
    cap, processing = january["pricingRuleLogs"]
    assert (cap["action"], cap["target"], cap["previousAmount"], cap["amount"], cap["change"], cap["totalAfter"]) == (
        "UPDATE", "api", "750.00", "500.00", "-250.00", "600.00")
    assert (processing["totalBefore"], processing["computedAmount"], processing["totalAfter"]) == (
        "600.00", "17.40", "617.40")


async def test_first_three_months_twenty_percent_off(sandbox: Client) -> None:
    plan = await plan_with(sandbox, "Welcome offer", [
        {"name": "welcome offer", "order": 1, "condition": {"<": [{"var": "cycleIndex"}, 3]},
         "computation": {"*": [{"var": "total"}, -0.2]}, "action": {"type": "ADD", "description": "20% off"}}])
    await account_on(sandbox, "newco", plan)
    for month, next_month in (("01", "02"), ("02", "03"), ("03", "04"), ("04", "05")):
        await call(sandbox, "advance_clock", to=f"2026-{month}-15")
        await use(sandbox, "newco", "200", f"m{month}")     # 200 x 0.50 = 100.00, + 100.00 fee = 200.00
        await call(sandbox, "advance_clock", to=f"2026-{next_month}-01")
    due = [i for i in await invoices(sandbox, "newco") if i["status"] == "DUE"]
    # January, February and March (cycleIndex 0, 1, 2): 200.00 - 20% = 160.00; April (cycleIndex 3): 200.00
    assert [(i["startDate"][:10], i["totalAmount"]) for i in due] == [
        ("2026-01-01", "160.00"), ("2026-02-01", "160.00"), ("2026-03-01", "160.00"), ("2026-04-01", "200.00")]
    assert [rule_lines(i) for i in due] == [[("20% off", "-40.00")]] * 3 + [[]]
    assert [i["pricingRuleLogs"][0]["status"] for i in due] == ["APPLIED"] * 3 + ["SKIPPED"]


async def test_a_discount_larger_than_the_total_stops_at_zero_and_a_failing_rule_changes_nothing(
        sandbox: Client) -> None:
    calls = f"usage.{await api_meter(sandbox)}"
    plan = await plan_with(sandbox, "Launch credit", [
        {"name": "average", "order": 1, "computation": {"/": [{"var": "subTotal"}, {"var": calls}]},
         "action": {"type": "ADD"}},
        {"name": "launch credit", "order": 2, "computation": "-1000", "action": {"type": "ADD"}},
        {"name": "lower the fee", "order": 3, "computation": -5, "action": {"type": "UPDATE", "target": "platform"}},
    ])
    await account_on(sandbox, "quiet", plan)
    await call(sandbox, "advance_clock", to="2026-02-01")  # no usage: api 0.00, platform 100.00
    january, _ = await invoices(sandbox, "quiet")
    average, credit, fee = january["pricingRuleLogs"]
    # 100.00 / 0 calls: the rule fails and changes nothing
    assert (average["status"], average["reason"], average["totalAfter"]) == (
        "FAILED", 'division by zero ("/" at pricingRules[0].computation); the rule was not applied', "100.00")
    # -1000.00 would take the total to -900.00: the line is -100.00 and the total 0.00
    assert (credit["status"], credit["computedAmount"], credit["amount"], credit["clamped"], credit["totalAfter"]) == (
        "APPLIED", "-1000.00", "-100.00", True, "0.00")
    # the fee cannot go to -5 (a card's line is at least 0), nor below 100.00 while the credit stands (the total
    # would be negative): it stays 100.00
    assert (fee["computedAmount"], fee["amount"], fee["change"], fee["clamped"]) == ("-5.00", "100.00", "0.00", True)
    assert rule_lines(january) == [("launch credit", "-100.00")]
    assert totals(january) == ("0.00", "0.00", "0.00")
    (content,) = (await sandbox.read_resource(f"togai://invoices/{january['id']}")).contents
    assert "## Pricing rules" in content.text
    assert "| 2 | launch credit | ADD | APPLIED | -1000.00 | -100.00 | 0.00 | clamped: neither a line nor the total " \
           "goes below 0 |" in content.text
    assert "| 1 | average | ADD | FAILED |  |  | 100.00 | division by zero" in content.text


async def test_rules_are_checked_against_the_plan(sandbox: Client) -> None:
    async def refused(rules: list[dict[str, Any]]) -> str:
        result = await sandbox.call_tool("create_price_plan", {
            "name": "Bad", "pricingCycleConfig": {"interval": "MONTHLY"}, "pricingRules": rules,
            "rateCards": {"fixedFeeRateCards": [{"id": "platform", "rateValues": [{"currency": "USD", "rate": "1"}]}]}})
        assert result.is_error
        return result.content[0].text

    add = {"name": "r", "order": 1, "computation": 1, "action": {"type": "ADD"}}
    assert 'pricingRules[1].computation.if[2]: unknown operator "foo"' in await refused(
        [add, {**add, "name": "s", "order": 2, "computation": {"if": [True, 1, {"foo": [1]}]}}])
    assert 'pricingRules[0].condition.>[0]: variable "usage.api_calls" is not a meter of this plan; the plan has none' \
        in await refused([{**add, "condition": {">": [{"var": "usage.api_calls"}, 1]}}])
    assert "pricingRules[0].invoiceTiming: only IN_ARREARS is supported" in await refused(
        [{**add, "invoiceTiming": "IN_ADVANCE"}])
    assert "pricingRules[1].order: 1 is already the order of pricingRules[0]" in await refused(
        [add, {**add, "name": "s"}])
    assert "pricingRules[1].name: 'r' is already the name of pricingRules[0]" in await refused(
        [add, {**add, "order": 2}])
    assert "pricingRules[0].action.target: 'api' is not a rate card of this plan that bills a line; its cards: " \
        "platform" in await refused([{**add, "action": {"type": "UPDATE", "target": "api"}}])
    assert "pricingRules[0].action.target: UPDATE needs the name of the rate card" in await refused(
        [{**add, "action": {"type": "UPDATE"}}])
    assert "pricingRules[0].action.target: ADD adds a line of its own and takes no target" in await refused(
        [{**add, "action": {"type": "ADD", "target": "platform"}}])
    assert "pricingRules[0].condition: gives a number, but it must give true or false" in await refused(
        [{**add, "condition": {"var": "total"}}])
    assert "pricingRules[0].computation" in await refused([{**add, "computation": {"+": [0.30000000000000004, 1]}}])


async def test_first_three_months_count_from_the_plans_start_across_a_new_version_and_a_deal(
        sandbox: Client) -> None:
    """A version migration and a new deal split the account's association, but its months on the plan go on:
    the offer still ends after March."""
    welcome = {"name": "welcome offer", "order": 1, "condition": {"<": [{"var": "cycleIndex"}, 3]},
               "computation": {"*": [{"var": "total"}, -0.2]}, "action": {"type": "ADD", "description": "20% off"}}
    plan = await plan_with(sandbox, "Welcome offer v", [welcome])
    await account_on(sandbox, "steady", plan)
    await call(sandbox, "advance_clock", to="2026-01-20")
    # version 2 from February: the fee goes up to 120.00; the account moves at its next cycle
    version_two = (await call(sandbox, "get_price_plan", pricePlanId=plan["id"]))["rateCards"]
    version_two["fixedFeeRateCards"][0]["rateValues"][0]["rate"] = "120"
    await call(sandbox, "update_price_plan", pricePlanId=plan["id"], rateCards=version_two)
    await call(sandbox, "finalize_price_plan", pricePlanId=plan["id"], migrationMode="NEXT_CYCLE")
    # a deal from March 1: the fee at 110.00 for this account
    await call(sandbox, "advance_clock", to="2026-02-20")
    await call(sandbox, "update_account", accountId="steady", pricePlanId=plan["id"], effectiveFrom="2026-03-01",
               rateCardOverrides={"fixedFeeRateCards": [
                   {"id": "platform", "rateValues": [{"currency": "USD", "rate": "110"}]}]})
    await call(sandbox, "advance_clock", to="2026-05-01")
    due = [i for i in await invoices(sandbox, "steady") if i["status"] == "DUE"]
    # no usage: January 100.00 - 20% = 80.00 (v1); February 120.00 - 20% = 96.00 (v2);
    # March 110.00 - 20% = 88.00 (the deal, still the plan's third month); April 110.00 (the offer is over)
    assert [(i["startDate"][:10], i["pricePlanVersion"], i["totalAmount"]) for i in due] == [
        ("2026-01-01", 1, "80.00"), ("2026-02-01", 2, "96.00"), ("2026-03-01", 2, "88.00"),
        ("2026-04-01", 2, "110.00")]


async def test_a_total_past_60_digits_keeps_its_rules_and_every_digit(sandbox: Client) -> None:
    # Two usage cards at 9 × 10^39 a call (a plan accepts magnitudes up to 10^40) on 10^18 calls: each line
    # 9 × 10^57, 60 digits with its cents, as rating keeps them; with the 100.00 fee the total has 61.
    meter = await api_meter(sandbox)
    huge = "9" + "0" * 39

    def card(name: str) -> dict[str, Any]:
        return {"name": name, "usageMeterId": meter, "ratePlan": {"pricingModel": "TIERED", "slabs": [
            {"order": 1, "startAfter": "0", "priceType": "PER_UNIT"}]},
            "rateValues": [{"currency": "USD", "slabRates": [{"order": 1, "rate": huge}]}]}
    plan = await call(sandbox, "create_price_plan", name="Huge", pricingCycleConfig={
        "interval": "MONTHLY", "startOffset": {"dayOffset": "1"}, "gracePeriod": 0}, rateCards={
        "usageRateCards": [card("api"), card("api_again")],
        "fixedFeeRateCards": [{"id": "platform", "rateValues": [{"currency": "USD", "rate": "100"}]}]}, pricingRules=[
        {"name": "one off", "order": 1, "computation": "-1", "action": {"type": "ADD"}},
        {"name": "a tenth of a cent", "order": 2, "computation": {"+": [{"var": "subTotal"}, 0.001]},
         "action": {"type": "ADD"}}])
    await account_on(sandbox, "huge", plan)
    await call(sandbox, "advance_clock", to="2026-01-20")
    await use(sandbox, "huge", "1" + "0" * 18, "jan")
    await call(sandbox, "advance_clock", to="2026-02-01")
    january, _ = await invoices(sandbox, "huge")
    line = "9" + "0" * 57 + ".00"  # 10^18 × 9 × 10^39 = 9 × 10^57
    total = "18" + "0" * 54 + "100.00"  # 2 × 9 × 10^57 + 100.00 = 1.8 × 10^58 + 100.00
    assert [i["value"] for i in january["lineItems"]] == [line, line, "100.00", "-1.00"]
    assert (january["status"], january["totalAmount"]) == ("DUE", "18" + "0" * 55 + "99.00")  # - 1.00
    one_off, tenth = january["pricingRuleLogs"]
    assert (one_off["status"], one_off["totalBefore"], one_off["totalAfter"]) == (
        "APPLIED", total, "18" + "0" * 55 + "99.00")
    # subTotal + 0.001 = 1.8 × 10^58 + 100.001: 62 digits, past the 60 a rule computes with: FAILED, named, and
    # nothing changed
    assert tenth["status"] == "FAILED" and "pricingRules[1].computation" in tenth["reason"]
    assert tenth["totalAfter"] == "18" + "0" * 55 + "99.00"


async def test_a_second_discount_on_a_total_already_at_zero_adds_a_plain_zero_not_minus_zero(sandbox: Client) -> None:
    plan = await plan_with(sandbox, "Two credits", [
        {"name": "launch credit", "order": 1, "computation": "-1000", "action": {"type": "ADD"}},
        {"name": "loyalty credit", "order": 2, "computation": "-50", "action": {"type": "ADD"}},
    ])
    await account_on(sandbox, "twice", plan)
    await call(sandbox, "advance_clock", to="2026-01-20")  # no usage: api 0.00, platform 100.00
    (draft,) = await invoices(sandbox, "twice")
    await call(sandbox, "advance_clock", to="2026-02-01")
    january, _ = await invoices(sandbox, "twice")
    for invoice in (draft, january):  # the open month's DRAFT, and the same month once DUE (its logs stored)
        # launch credit: max(-1000.00, -100.00) = -100.00, the total 100.00 - 100.00 = 0.00;
        # loyalty credit: max(-50.00, -0.00) must be 0.00 (nothing left to take off), never shown as "-0.00"
        launch, loyalty = invoice["pricingRuleLogs"]
        assert (launch["amount"], launch["totalAfter"]) == ("-100.00", "0.00")
        assert (loyalty["status"], loyalty["computedAmount"], loyalty["amount"], loyalty["change"],
                loyalty["clamped"], loyalty["totalAfter"]) == ("APPLIED", "-50.00", "0.00", "0.00", True, "0.00")
        assert rule_lines(invoice) == [("launch credit", "-100.00"), ("loyalty credit", "0.00")]
        assert totals(invoice) == ("0.00", "0.00", "0.00")
