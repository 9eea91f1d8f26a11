"""calculate_revenue applies a plan's pricing rules as an invoice does, for the cycle it is told (cycleIndex)."""

from __future__ import annotations

from helpers import call
from lab_helpers import MONTHLY, fee, per_unit_card, tokens_meter


async def test_a_quote_applies_the_rules_for_the_cycle_asked(client) -> None:
    tokens = await tokens_meter(client)
    plan = await call(client, "create_price_plan", name="Offer", pricingCycleConfig=MONTHLY, rateCards={
        "usageRateCards": [{**per_unit_card(tokens, "TIERED", {"USD": [("0", "0.001")]}), "name": "tokens"}],
        "fixedFeeRateCards": [fee("platform", {"USD": "49"})]},
        minimumCommitment={"rateValues": [{"currency": "USD", "rate": "100"}]},
        pricingRules=[
            {"name": "first 3 months 20% off", "order": 1, "condition": {"<": [{"var": "cycleIndex"}, 3]},
             "computation": {"*": [{"var": "total"}, -0.2]}, "action": {"type": "ADD"}},
            {"name": "token cap", "order": 2, "computation": {"min": [{"var": "rateCards.tokens"}, 80]},
             "action": {"type": "UPDATE", "target": "tokens"}}])
    usage = {tokens: "125000"}  # 125,000 x 0.001 = 125.00 on the tokens card, + 49.00 = 174.00
    first = await call(client, "calculate_revenue", pricePlanId=plan["id"], usage=usage)
    # cycle 0: 20% off 174.00 = -34.80 (total 139.20); then the cap sets tokens 125.00 -> 80.00 (-45.00):
    # subTotal 80.00 + 49.00 - 34.80 = 94.20, under the 100.00 commitment: a true-up of 5.80 to 100.00
    assert (first["subTotal"], first["trueUp"], first["total"]) == ("94.20", "5.80", "100.00")
    assert [(log["name"], log["status"], log["change"]) for log in first["pricingRuleLogs"]] == [
        ("first 3 months 20% off", "APPLIED", "-34.80"), ("token cap", "APPLIED", "-45.00")]
    assert first["usageRateCards"][0]["amount"] == "80.00"
    fourth = await call(client, "calculate_revenue", pricePlanId=plan["id"], usage=usage, cycleIndex=3)
    # cycle 3: no offer; the cap alone: 80.00 + 49.00 = 129.00, over the commitment
    assert (fourth["subTotal"], fourth["trueUp"], fourth["total"]) == ("129.00", "0.00", "129.00")
    assert [log["status"] for log in fourth["pricingRuleLogs"]] == ["SKIPPED", "APPLIED"]


async def test_a_quote_charges_the_fees_of_the_cycle_asked(client) -> None:
    """cycleIndex is the cycle quoted: its fixed fees are that cycle's (a setup fee only in cycle 0, a
    recurrenceConfig's beat), not cycle 0's beside cycle N's pricing rules."""
    plan = await call(client, "create_price_plan", name="Fees", pricingCycleConfig=MONTHLY, rateCards={
        "fixedFeeRateCards": [{**fee("setup", {"USD": "100"}), "type": "ONE_TIME"}, fee("base", {"USD": "30"}),
                              {**fee("review", {"USD": "90"}), "recurrenceConfig": {"interval": 3, "offset": 1}}]})

    async def total(cycle: int) -> tuple[str, list[str | None]]:
        quote = await call(client, "calculate_revenue", pricePlanId=plan["id"], usage={}, cycleIndex=cycle)
        return quote["total"], [f["name"] for f in quote["fixedFees"]]

    assert await total(0) == ("130.00", ["setup", "base"])  # setup 100 + base 30; review starts at cycle 1
    assert await total(1) == ("120.00", ["base", "review"])  # base 30 + review 90 (1 >= 1, (1 - 1) % 3 == 0)
    assert await total(3) == ("30.00", ["base"])  # (3 - 1) % 3 == 2: no review
    assert await total(4) == ("120.00", ["base", "review"])  # (4 - 1) % 3 == 0
