"""simulate_price_plan through the MCP client: two plans over several accounts, every number by hand."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from conftest import row_counts
from helpers import at, break_stored_deal, call, call_error, tokens_meter
from lab_helpers import MONTHLY, account, fee, iso, message, per_unit_card, scale, setup, starter, tokens
from togai_engine.lab.compare import percent


def cycles(result: dict[str, Any], account_id: str) -> list[tuple[Any, ...]]:
    found = next(a for a in result["accounts"] if a["accountId"] == account_id)
    return [(c["startDate"], c["status"], c["actual"], [(x["candidate"], x["amount"], x["difference"])
                                                       for x in c["candidates"]]) for c in found["cycles"]]


async def test_two_plans_over_several_accounts(client, clock, db) -> None:
    meter, starter_id = await setup(client, clock)
    jan_a = (await call(client, "list_invoices", accountId="acc_a", status="DUE"))["data"][-1]
    await call(client, "update_invoice_status", invoiceId=jan_a["id"], status="PAID")
    before = await row_counts(db)

    result = await call(client, "simulate_price_plan", candidates=[starter_id, scale(meter)],
                        startTime=iso(2026, 1, 1), endTime=iso(2026, 3, 1))
    assert await row_counts(db) == before  # a simulation writes nothing, inline plans included
    assert [(c["candidate"], c["pricePlanId"], c["name"], c["unsupportedAccounts"]) for c in result["candidates"]] == [
        (0, starter_id, "Starter", 0), (1, None, "Scale", 1)]
    assert result["skipped"] == [{"accountId": "acc_d", "reason": result["skipped"][0]["reason"]}]
    assert "no price plan" in result["skipped"][0]["reason"]
    assert (result["accountsSimulated"], result["accountsShown"], result["startTime"]) == (3, 3, iso(2026, 1, 1))

    # acc_a. Starter: Jan 5,000 × 0.002 = 10.00 + fee 10 = 20.00 (PAID). Feb 10,000 × 0.002 = 20 + 20,000 × 0.001
    # = 20 -> 40 + 10 = 50.00. Scale: Jan 5,000 × 0.0015 = 7.50 + 25 = 32.50 < 40: true-up 7.50 -> 40.00 (+20.00);
    # Feb VOLUME: all 30,000 × 0.0008 = 24.00 + 25 = 49.00 (-1.00).
    assert cycles(result, "acc_a") == [
        (iso(2026, 1, 1), "PAID", "20.00", [(0, "20.00", "0.00"), (1, "40.00", "20.00")]),
        (iso(2026, 2, 1), "DUE", "50.00", [(0, "50.00", "0.00"), (1, "49.00", "-1.00")])]
    # acc_b. Starter: Jan 10,000 × 0.002 = 20 + 5,000 × 0.001 = 5 -> 25 + 10 = 35.00; Feb no usage: 10.00.
    # Scale: Jan 15,000 × 0.0015 = 22.50 + 25 = 47.50 (+12.50); Feb 0 + 25 -> true-up 15 -> 40.00 (+30.00).
    assert cycles(result, "acc_b") == [
        (iso(2026, 1, 1), "DUE", "35.00", [(0, "35.00", "0.00"), (1, "47.50", "12.50")]),
        (iso(2026, 2, 1), "DUE", "10.00", [(0, "10.00", "0.00"), (1, "40.00", "30.00")])]
    # acc_c pays in EUR, which Scale does not price. Starter: Jan 10,000 × 0.0018 = 18 + 2,000 × 0.0009 = 1.80 ->
    # 19.80 + 9 = 28.80; Feb 2,000 × 0.0018 = 3.60 + 9 = 12.60.
    assert cycles(result, "acc_c") == [
        (iso(2026, 1, 1), "DUE", "28.80", [(0, "28.80", "0.00")]),
        (iso(2026, 2, 1), "DUE", "12.60", [(0, "12.60", "0.00")])]
    acc_c = next(a for a in result["accounts"] if a["accountId"] == "acc_c")
    assert [(u["candidate"], u["currency"]) for u in acc_c["unsupported"]] == [(1, "EUR")]
    assert "does not price EUR" in acc_c["unsupported"][0]["reason"]

    totals = {(t["candidate"], t["currency"]): t for t in result["totals"]}
    assert sorted(totals) == [(0, "EUR"), (0, "USD"), (1, "USD")]
    # Starter reproduces the invoices: USD 20 + 50 + 35 + 10 = 115.00, EUR 28.80 + 12.60 = 41.40
    assert [(t["actual"], t["amount"], t["difference"]) for t in (totals[(0, "USD")], totals[(0, "EUR")])] == [
        ("115.00", "115.00", "0.00"), ("41.40", "41.40", "0.00")]
    scale_usd = totals[(1, "USD")]
    # Scale: 40 + 49 + 47.50 + 40 = 176.50 against 115.00: +61.50, 61.50 / 115 = 53.478..% -> 53.48
    assert (scale_usd["accounts"], scale_usd["cycles"], scale_usd["actual"], scale_usd["amount"],
            scale_usd["difference"], scale_usd["differencePercent"]) == (2, 4, "115.00", "176.50", "61.50", "53.48")
    # acc_b gains 12.50 + 30.00 = 42.50 of revenue, acc_a 20.00 - 1.00 = 19.00; nobody pays less
    assert [(m["accountId"], m["difference"]) for m in scale_usd["biggestIncreases"]] == [
        ("acc_b", "42.50"), ("acc_a", "19.00")]
    assert scale_usd["biggestDecreases"] == []
    assert any("pricingCycleConfig" in note for note in result["notes"])  # a candidate's cycle must be the account's


async def test_range_with_the_open_cycle_and_account_filters(client, clock) -> None:
    meter, starter_id = await setup(client, clock)
    # February (DUE) and March: open, so its actual is the DRAFT: 1,000 × 0.002 = 2.00 + 10 = 12.00.
    # Scale for March: 1,000 × 0.0015 = 1.50 + 25 = 26.50, true-up to 40.00 as on a DRAFT.
    result = await call(client, "simulate_price_plan", candidates=[scale(meter)], accountIds=["acc_a"],
                        startTime=iso(2026, 2, 15), endTime=iso(2026, 6, 1))
    assert cycles(result, "acc_a") == [
        (iso(2026, 2, 1), "DUE", "50.00", [(0, "49.00", "-1.00")]),
        (iso(2026, 3, 1), "DRAFT", "12.00", [(0, "40.00", "28.00")])]
    march = result["accounts"][0]["cycles"][1]
    assert (march["invoiceId"], march["endDate"]) == (None, iso(2026, 4, 1))  # April and later have not started
    assert result["totals"][0]["biggestDecreases"] == []  # -1.00 + 28.00 = +27.00 overall

    # lastCycles counts the open period too: the last 2 of acc_a are the same February and March
    last_two = await call(client, "simulate_price_plan", candidates=[scale(meter)], accountIds=["acc_a"],
                          lastCycles=2)
    assert cycles(last_two, "acc_a") == cycles(result, "acc_a")

    by_customer = await call(client, "simulate_price_plan", candidates=[starter_id], customerId="cust_acc_a",
                             lastCycles=1, accountDetails=1)
    assert [a["accountId"] for a in by_customer["accounts"]] == ["acc_a"]  # trimmed to 1 of 2
    assert (by_customer["accountsSimulated"], by_customer["accountsShown"]) == (2, 1)
    assert by_customer["totals"][0]["actual"] == "22.00"  # March so far: acc_a 12.00 + acc_b's fee 10.00

    default = await call(client, "simulate_price_plan", candidates=[starter_id])
    assert default["lastCycles"] == 3 and any("last 3" in note for note in default["notes"])
    assert [c["startDate"] for c in default["accounts"][0]["cycles"]] == [
        iso(2026, 1, 1), iso(2026, 2, 1), iso(2026, 3, 1)]


async def test_an_account_whose_stored_deal_no_longer_validates_is_skipped_not_fatal(client, clock, db,
                                                                                     monkeypatch) -> None:
    _, starter_id = await setup(client, clock)
    await call(client, "create_customer", id="cust_acc_e", name="Customer", account={
        "id": "acc_e", "name": "acc_e", "invoiceCurrency": "USD", "pricePlanId": starter_id,
        "effectiveFrom": iso(2026, 1, 1), "rateCardOverrides": {"fixedFeeRateCards": [fee("platform", {"USD": "20", "EUR": "18"})]}})
    # An upgrade with stricter checks, or a hand edit: acc_e's stored deal no longer parses; the engine restarts
    await break_stored_deal(db, monkeypatch, "acc_e", "{fixedFeeRateCards,0,rateValues,0,rate}", '"20 USD"')

    result = await call(client, "simulate_price_plan", candidates=[starter_id], startTime=iso(2026, 1, 1),
                        endTime=iso(2026, 3, 1))
    # acc_e cannot be billed either (its bill runs report it): skipped with the reason, the others compared
    assert [s["accountId"] for s in result["skipped"]] == ["acc_d", "acc_e"]
    reason = result["skipped"][1]["reason"]
    assert "account 'acc_e'" in reason and "rateCardOverrides.fixedFeeRateCards[0].rateValues[0].rate" in reason
    assert [a["accountId"] for a in result["accounts"]] == ["acc_a", "acc_b", "acc_c"]
    # Starter reproduces the others' invoices (test_two_plans_over_several_accounts): USD 115.00
    assert next(t for t in result["totals"] if t["currency"] == "USD")["actual"] == "115.00"


async def test_argument_errors(client, clock, db) -> None:
    meter, starter_id = await setup(client, clock)
    before = await row_counts(db)

    async def error(**arguments: Any) -> str:
        return message(await call_error(client, "simulate_price_plan", **arguments))

    assert (await error(candidates=[starter_id], accountIds=["acc_a", "nope"])).startswith(
        "accountIds[1]: account 'nope' does not exist")
    assert "not both" in await error(candidates=[starter_id], accountIds=["acc_a"], customerId="cust_acc_a")
    assert "list_customers" in await error(candidates=[starter_id], customerId="cust_nope")
    assert (await error(candidates=[starter_id], startTime=iso(2026, 1, 1))).startswith("endTime:")
    assert (await error(candidates=[starter_id], startTime=iso(2026, 2, 1), endTime=iso(2026, 1, 1))).startswith(
        "endTime: must be after startTime")
    assert "not both" in await error(candidates=[starter_id], lastCycles=2, startTime=iso(2026, 1, 1),
                                     endTime=iso(2026, 2, 1))
    assert (await error(candidates=["pp_nope"])).startswith("candidates[0]: price plan 'pp_nope' does not exist")
    assert (await error(candidates=[starter_id, starter(meter)])).startswith(
        "candidates[1].name: 'Starter' is also the name of candidates[0]")
    assert "candidates" in await error(candidates=[])
    assert "candidates" in await error(candidates=[starter_id] * 6)
    assert (await error(candidates=[starter_id, 5])).startswith("candidates[1]")
    assert await row_counts(db) == before


async def test_totals_past_28_digits_are_exact(client, clock) -> None:
    # A fee of 10^27 (28 digits; a plan accepts rates of 40) beside 0.01 per token, against a candidate charging
    # 0.02 per token. One token in January, none in February.
    meter = await tokens_meter(client)
    big = "1000000000000000000000000000"
    plan = await call(client, "create_price_plan", name="Big", pricingCycleConfig=MONTHLY, rateCards={
        "usageRateCards": [per_unit_card(meter, "TIERED", {"USD": [("0", "0.01")]})],
        "fixedFeeRateCards": [fee("platform", {"USD": big})]})
    await account(client, "acc_big", plan["id"], iso(2026, 1, 1))
    clock.set(at(2026, 1, 2))
    await tokens(client, "acc_big", iso(2026, 1, 10), "1", "t1")
    clock.set(at(2026, 3, 5))
    await call(client, "list_invoices")  # reading catches billing up: January and February become DUE
    candidate = {"name": "Dearer tokens", "pricingCycleConfig": MONTHLY, "rateCards": {
        "usageRateCards": [per_unit_card(meter, "TIERED", {"USD": [("0", "0.02")]})],
        "fixedFeeRateCards": [fee("platform", {"USD": big})]}}
    result = await call(client, "simulate_price_plan", candidates=[candidate], startTime=iso(2026, 1, 1),
                        endTime=iso(2026, 3, 1))
    # January: 1000000000000000000000000000.01 invoiced, 1000000000000000000000000000.02 by the candidate (+0.01);
    # February: the fee alone, 1000000000000000000000000000.00, both.
    assert cycles(result, "acc_big") == [
        (iso(2026, 1, 1), "DUE", f"{big}.01", [(0, f"{big}.02", "0.01")]),
        (iso(2026, 2, 1), "DUE", f"{big}.00", [(0, f"{big}.00", "0.00")])]
    # Totals: 2 × 10^27 + 0.01 against 2 × 10^27 + 0.02, 31 digits, which the default context (28) rounds to
    # 2 × 10^27 both, hiding the 0.01 difference.
    [total] = result["totals"]
    assert (total["actual"], total["amount"], total["difference"]) == (
        "2000000000000000000000000000.01", "2000000000000000000000000000.02", "0.01")
    [account_total] = next(a for a in result["accounts"] if a["accountId"] == "acc_big")["totals"]
    assert (account_total["actual"], account_total["amount"], account_total["difference"]) == (
        "2000000000000000000000000000.01", "2000000000000000000000000000.02", "0.01")


async def test_a_huge_difference_over_a_tiny_actual_is_a_percentage_not_a_crash(client, clock) -> None:
    # Invoiced: 0.01 per token, one token in January: 0.01. The candidate adds a fee of 10^39 (a plan accepts
    # magnitudes up to 10^40): 10^39 + 0.01. The difference over the actual is 10^39 × 100 / 0.01 = 10^43 percent,
    # 46 digits with its 2 decimals, past the default context's 28.
    meter = await tokens_meter(client)
    usage_only = {"usageRateCards": [per_unit_card(meter, "TIERED", {"USD": [("0", "0.01")]})]}
    plan = await call(client, "create_price_plan", name="Tokens", pricingCycleConfig=MONTHLY, rateCards=usage_only)
    await account(client, "acc_tiny", plan["id"], iso(2026, 1, 1))
    clock.set(at(2026, 1, 2))
    await tokens(client, "acc_tiny", iso(2026, 1, 10), "1", "t1")
    clock.set(at(2026, 2, 5))
    huge = "1" + "0" * 39
    candidate = {"name": "Huge fee", "pricingCycleConfig": MONTHLY,
                 "rateCards": {**usage_only, "fixedFeeRateCards": [fee("platform", {"USD": huge})]}}
    result = await call(client, "simulate_price_plan", candidates=[candidate], startTime=iso(2026, 1, 1),
                        endTime=iso(2026, 2, 1))
    [total] = result["totals"]
    assert (total["actual"], total["amount"], total["difference"]) == ("0.01", f"{huge}.01", f"{huge}.00")
    assert total["differencePercent"] == "1" + "0" * 43 + ".00"


def test_a_percentage_is_rounded_once_from_the_exact_quotient() -> None:
    # 10^26 × 100 / (2 × 10^30 + 0.01) = 0.0049999999999999999999999999999999750…%: 0.00 half-up. Rounded first to
    # the default context's 28 digits it is 0.005000…, which half-up makes 0.01.
    assert percent(Decimal("100000000000000000000000000.00"), Decimal("2000000000000000000000000000000.01")) == (
        Decimal("0.00"))
    assert percent(Decimal("-1"), Decimal("3")) == Decimal("-33.33")  # -33.333…
    assert percent(Decimal("1"), Decimal("-8")) == Decimal("-12.50")  # -12.5 exactly: 2 decimals
    assert percent(Decimal("1"), Decimal("0")) is None


async def test_a_candidate_on_another_pricing_cycle_is_refused_for_those_periods_not_charged_per_period(
        client, clock) -> None:
    meter, _ = await setup(client, clock)
    quarterly = {**scale(meter), "name": "Scale quarterly", "pricingCycleConfig": {"interval": "QUARTERLY"}}
    result = await call(client, "simulate_price_plan", candidates=[quarterly, scale(meter)], accountIds=["acc_a"],
                        startTime=iso(2026, 1, 1), endTime=iso(2026, 3, 1))
    # Scale on acc_a's monthly periods (test_two_plans_over_several_accounts): 40.00 and 49.00. Quarterly, its fee
    # of 25 and commitment of 40 are per quarter: priced per month they would be charged three times a quarter, so
    # it is left out of those periods, and its totals, with the reason naming the field and the fix
    assert cycles(result, "acc_a") == [
        (iso(2026, 1, 1), "DUE", "20.00", [(1, "40.00", "20.00")]),
        (iso(2026, 2, 1), "DUE", "50.00", [(1, "49.00", "-1.00")])]
    [acc_a] = result["accounts"]
    [unsupported] = acc_a["unsupported"]
    assert (unsupported["candidate"], unsupported["currency"]) == (0, "USD")
    assert unsupported["reason"].startswith(
        "pricingCycleConfig: 'Scale quarterly' bills QUARTERLY cycles, [2026-01-01T00:00:00+00:00, "
        "2026-04-01T00:00:00+00:00) here, and this account's periods on 'Starter' are MONTHLY cycles")
    assert "give it this account's pricingCycleConfig {'interval': 'MONTHLY'" in unsupported["reason"]
    assert [(c["name"], c["unsupportedAccounts"]) for c in result["candidates"]] == [
        ("Scale quarterly", 1), ("Scale", 0)]
    assert [t["candidate"] for t in result["totals"]] == [1]
