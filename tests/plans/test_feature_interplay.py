"""Where the card kinds of issue #16 meet: what a plan may say about them together, refused where it would be
ambiguous or ignored, with the field named."""

from __future__ import annotations

from typing import Any

import pytest

from togai_engine.errors import InvalidInput
from togai_engine.plans.schemas import PricePlanCreate
from togai_engine.plans.validation import normalize_plan

PER_UNIT = {"pricingModel": "TIERED", "slabs": [{"order": 1, "startAfter": 0, "priceType": "PER_UNIT"}]}


def plan(rate_cards: dict[str, Any], rules: list[dict[str, Any]] | None = None) -> PricePlanCreate:
    return normalize_plan(PricePlanCreate.model_validate({
        "name": "p", "pricingCycleConfig": {"interval": "MONTHLY"}, "rateCards": rate_cards,
        "pricingRules": rules or []}))


SEATS = {"id": "seats", "ratePlan": PER_UNIT, "rateValues": [{"currency": "USD", "slabRates": [{"order": 1, "rate": 10}]}]}
OVERAGE_PLAN = {
    "billingEntitlementRateCards": [{"featureId": "calls", "usageMeterId": "um_calls",
                                     "featureConfigs": [{"featureCreditLimit": 100}]}],
    "entitlementOverageRateCards": [{"featureId": "calls", "ratePlan": PER_UNIT, "rateValues": [
        {"currency": "USD", "slabRates": [{"order": 1, "rate": "0.01"}]}]}],
}


def test_a_rule_may_read_and_update_a_seat_card_and_read_an_overage_meter() -> None:
    stored = plan({"licenseRateCards": [SEATS], **OVERAGE_PLAN}, [
        {"name": "cap seats", "order": 1, "computation": {"min": [{"var": "rateCards.seats"}, 50]},
         "action": {"type": "UPDATE", "target": "seats"}},
        {"name": "heavy user", "order": 2, "condition": {">": [{"var": "usage.um_calls"}, 1000]},
         "computation": -5, "action": {"type": "ADD"}}])
    assert [rule.name for rule in stored.pricingRules] == ["cap seats", "heavy user"]


def test_a_grant_may_pay_only_a_seat_card() -> None:
    stored = plan({"licenseRateCards": [SEATS], "creditGrantRateCards": [{
        "id": "seat_credit", "grantDetails": {"applicableEntityIds": ["seats"]},
        "rateDetails": {"currencySlabRateDetails": [{"currency": "USD", "creditAmount": 20}]}}]})
    assert stored.rateCards.creditGrantRateCards[0].grantDetails.applicableEntityIds == ["seats"]


def test_a_rule_may_not_update_an_in_advance_fee() -> None:
    with pytest.raises(InvalidInput) as refused:
        plan({"fixedFeeRateCards": [{"id": "base", "invoiceTiming": "IN_ADVANCE",
                                     "rateValues": [{"currency": "USD", "rate": 30}]}]},
             [{"name": "free first month", "order": 1, "computation": 0,
               "action": {"type": "UPDATE", "target": "base"}}])
    assert refused.value.field == "pricingRules[0].action.target"
    assert "IN_ADVANCE" in refused.value.reason and "ADD" in refused.value.reason
