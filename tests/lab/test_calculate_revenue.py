"""calculate_revenue through the MCP client: quotes worked out by hand, stored and inline plans, errors."""

from __future__ import annotations

from typing import Any

from conftest import row_counts
from helpers import call, call_error
from lab_helpers import MONTHLY, message, requests_meter, tokens_meter


def growth(tokens: str, requests: str) -> dict[str, Any]:
    """Growth: tokens TIERED (0.00002 up to 1M, 0.000015 up to 5M, then packages of 1M at 10 + a 5 flat fee
    on entering), requests VOLUME (0.01, or 0.008 for all of them above 100) with a 5.00 minimum, a 49
    platform fee and a 100 minimum commitment. EUR prices are separate."""
    return {
        "name": "Growth", "pricingCycleConfig": MONTHLY, "supportedCurrencies": ["USD", "EUR"],
        "rateCards": {
            "usageRateCards": [
                {"name": "tokens", "displayName": "LLM tokens", "usageMeterId": tokens,
                 "ratePlan": {"pricingModel": "TIERED", "slabs": [
                     {"order": 1, "startAfter": 0, "priceType": "PER_UNIT"},
                     {"order": 2, "startAfter": "1000000", "priceType": "PER_UNIT"},
                     {"order": 3, "startAfter": "5000000", "priceType": "PACKAGE",
                      "slabConfig": {"packageSize": "1000000"}}]},
                 "rateValues": [
                     {"currency": "USD", "slabRates": [{"order": 1, "rate": "0.00002"}, {"order": 2, "rate": "0.000015"},
                                                       {"order": 3, "rate": "10", "flatRate": "5"}]},
                     {"currency": "EUR", "slabRates": [{"order": 1, "rate": "0.000018"}, {"order": 2, "rate": "0.000014"},
                                                       {"order": 3, "rate": "9"}]}]},
                {"name": "requests", "usageMeterId": requests,
                 "ratePlan": {"pricingModel": "VOLUME", "slabs": [
                     {"order": 1, "startAfter": 0, "priceType": "PER_UNIT"},
                     {"order": 2, "startAfter": 100, "priceType": "PER_UNIT"}]},
                 "rateValues": [
                     {"currency": "USD", "slabRates": [{"order": 1, "rate": "0.01"}, {"order": 2, "rate": "0.008"}],
                      "rateConfig": {"minimumRate": "5"}},
                     {"currency": "EUR", "slabRates": [{"order": 1, "rate": "0.01"}, {"order": 2, "rate": "0.008"}]}]}],
            "fixedFeeRateCards": [{"id": "platform", "displayName": "Platform fee",
                                   "rateValues": [{"currency": "USD", "rate": "49"}, {"currency": "EUR", "rate": "45"}]}],
        },
        "minimumCommitment": {"rateValues": [{"currency": "USD", "rate": "100"}, {"currency": "EUR", "rate": "90"}]},
    }


async def test_quote_of_a_stored_plan_with_every_line_worked_out(client, db) -> None:
    tokens, requests = await tokens_meter(client), await requests_meter(client)
    plan = await call(client, "create_price_plan", **growth(tokens, requests))
    before = await row_counts(db)

    quote = await call(client, "calculate_revenue", pricePlanId=plan["id"],
                       usage={tokens: "1234567", requests: 120})
    assert (quote["pricePlanId"], quote["pricePlanName"], quote["currency"]) == (plan["id"], "Growth", "USD")
    token_card, request_card = quote["usageRateCards"]
    # tokens, TIERED: 1,000,000 × 0.00002 = 20 ; 234,567 × 0.000015 = 3.518505 ; subtotal 23.518505 -> 23.52
    assert [(s["order"], s["quantity"], s["rate"], s["amount"]) for s in token_card["slabs"]] == [
        (1, "1000000", "0.00002", "20.00000"), (2, "234567", "0.000015", "3.518505")]
    assert (token_card["displayName"], token_card["quantity"], token_card["subtotal"], token_card["amount"]) == (
        "LLM tokens", "1234567", "23.518505", "23.52")
    # requests, VOLUME: all 120 at the second slab's 0.008 = 0.96, below the 5.00 minimum: +4.04 -> 5.00
    assert [(s["order"], s["quantity"], s["amount"]) for s in request_card["slabs"]] == [(2, "120", "0.960")]
    assert (request_card["pricingModel"], request_card["subtotal"], request_card["adjustment"]) == (
        "VOLUME", "0.960", "4.040")
    assert (request_card["minimumApplied"], request_card["maximumApplied"], request_card["amount"]) == (
        True, False, "5.00")
    # the platform fee for a full cycle: 49.00; subtotal 23.52 + 5.00 + 49.00 = 77.52
    assert quote["fixedFees"] == [{"name": "platform", "displayName": "Platform fee", "amount": "49.00"}]
    # commitment 100: true-up 100 - 77.52 = 22.48, total 100.00
    assert (quote["subTotal"], quote["minimumCommitment"], quote["trueUp"], quote["total"]) == (
        "77.52", "100", "22.48", "100.00")
    assert quote["unpricedMeters"] == []

    # Above 5M tokens the PACKAGE slab: 7,500,001 tokens = 20 + 4,000,000 × 0.000015 (60) + ceil(2.500001) = 3
    # packages × 10 + the 5 flat = 35 -> 115.00. 50 requests × 0.01 = 0.50 -> 5.00 minimum. 115 + 5 + 49 = 169.00,
    # above the commitment: no true-up.
    big = await call(client, "calculate_revenue", pricePlanId=plan["id"], usage={tokens: 7500001, requests: "50"})
    package = big["usageRateCards"][0]["slabs"][2]
    assert (package["priceType"], package["quantity"], package["packageCount"], package["flatAmount"],
            package["amount"]) == ("PACKAGE", "2500001", 3, "5", "35")
    assert (big["usageRateCards"][0]["amount"], big["usageRateCards"][1]["amount"]) == ("115.00", "5.00")
    assert (big["subTotal"], big["trueUp"], big["total"]) == ("169.00", "0.00", "169.00")

    # In EUR, with a meter the plan does not price: 2,000,000 tokens = 1,000,000 × 0.000018 (18) + 1,000,000 ×
    # 0.000014 (14) = 32.00; no requests: VOLUME 0 -> 0.00 (no EUR minimum); fee 45; 77.00 < 90: true-up 13.00
    eur = await call(client, "calculate_revenue", pricePlanId=plan["id"], currency="eur",
                     usage={tokens: "2000000", "um_unknown": "5"})
    assert (eur["currency"], eur["usageRateCards"][0]["amount"], eur["usageRateCards"][1]["amount"]) == (
        "EUR", "32.00", "0.00")
    assert (eur["subTotal"], eur["trueUp"], eur["total"], eur["unpricedMeters"]) == (
        "77.00", "13.00", "90.00", ["um_unknown"])
    assert await row_counts(db) == before  # quotes write nothing


async def test_inline_plan_quotes_like_the_stored_one_and_is_never_stored(client, db) -> None:
    tokens, requests = await tokens_meter(client), await requests_meter(client)
    before = await row_counts(db)
    inline = await call(client, "calculate_revenue", pricePlan=growth(tokens, requests),
                        usage={tokens: "1234567", requests: 120})
    assert (inline["pricePlanId"], inline["total"], inline["trueUp"]) == (None, "100.00", "22.48")
    assert await row_counts(db) == before
    stored = await call(client, "create_price_plan", **growth(tokens, requests))
    again = await call(client, "calculate_revenue", pricePlanId=stored["id"], usage={tokens: "1234567", requests: 120})
    assert {**again, "pricePlanId": None} == inline


async def test_a_quote_is_an_associations_first_cycle_setup_fee_included(client) -> None:
    def fee(name: str, rate: str, **fields: Any) -> dict[str, Any]:
        return {"id": name, "displayName": name, "rateValues": [{"currency": "USD", "rate": rate}], **fields}

    quote = await call(client, "calculate_revenue", usage={}, pricePlan={
        "name": "Fees", "pricingCycleConfig": MONTHLY, "rateCards": {"fixedFeeRateCards": [
            fee("setup", "100", type="ONE_TIME"), fee("base", "30", invoiceTiming="IN_ADVANCE"),
            fee("review", "50", recurrenceConfig={"interval": 3, "offset": 1})]}})
    # cycle 0: the setup fee 100.00 and the base fee once (30.00); the review starts at cycle 1: total 130.00
    assert [(f["name"], f["amount"]) for f in quote["fixedFees"]] == [("setup", "100.00"), ("base", "30.00")]
    assert quote["total"] == "130.00"


async def test_quote_errors_name_the_field(client, db) -> None:
    tokens, requests = await tokens_meter(client), await requests_meter(client)
    plan = await call(client, "create_price_plan", **growth(tokens, requests))
    before = await row_counts(db)
    error = message(await call_error(client, "calculate_revenue", pricePlanId=plan["id"], usage={tokens: "-1"}))
    assert error.startswith(f"usage.{tokens}: must be 0 or more"), error
    error = message(await call_error(client, "calculate_revenue", pricePlanId=plan["id"], usage={tokens: "lots"}))
    assert error.startswith(f"usage.{tokens}:") and "not a decimal" in error
    error = message(await call_error(client, "calculate_revenue", pricePlanId=plan["id"], usage={}, currency="JPY"))
    assert error.startswith("currency:") and "USD, EUR" in error
    assert "list_price_plans" in await call_error(client, "calculate_revenue", pricePlanId="pp_nope", usage={})
    assert "pricePlanId" in await call_error(client, "calculate_revenue", usage={})
    assert "not both" in await call_error(client, "calculate_revenue", pricePlanId=plan["id"],
                                          pricePlan=growth(tokens, requests), usage={})
    bad = growth(tokens, requests)
    bad["rateCards"]["usageRateCards"][0]["ratePlan"]["slabs"][1]["startAfter"] = "0"
    error = message(await call_error(client, "calculate_revenue", pricePlan=bad, usage={}))
    assert error.startswith("pricePlan.rateCards.usageRateCards[0].ratePlan.slabs[1].startAfter: startAfter must be "
                            "greater than"), error
    assert await row_counts(db) == before
