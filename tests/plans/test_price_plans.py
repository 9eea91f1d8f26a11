"""create_price_plan and friends through the MCP tools: validation with exact field paths, immutability."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from conftest import row_counts
from helpers import call, call_error

CYCLE = {"interval": "MONTHLY", "startOffset": {"dayOffset": "1", "monthOffset": "NIL"}, "gracePeriod": 2}


async def meter(client: Any, name: str = "api_calls") -> str:
    created = await call(client, "create_usage_meter", name=name, eventSchemaName="api", aggregation="COUNT")
    return created["id"]


def usage_card(meter_id: str) -> dict[str, Any]:
    return {
        "name": "api", "displayName": "API calls", "usageMeterId": meter_id,
        "ratePlan": {"pricingModel": "TIERED", "slabs": [
            {"order": 1, "startAfter": 0, "priceType": "FLAT"},
            {"order": 2, "startAfter": "1000", "priceType": "PER_UNIT"},
            {"order": 3, "startAfter": 10000, "priceType": "PACKAGE", "slabConfig": {"packageSize": "100"}}]},
        "rateValues": [
            {"currency": "USD", "slabRates": [{"order": 1, "rate": "0"}, {"order": 2, "rate": "0.000000000000000001"},
                                              {"order": 3, "rate": "2.5", "flatRate": "10"}],
             "rateConfig": {"maximumRate": "5000"}},
            {"currency": "eur", "slabRates": [{"order": 1, "rate": 0}, {"order": 2, "rate": 0.002},
                                              {"order": 3, "rate": "2.2"}]}],
    }


def full_plan(meter_id: str) -> dict[str, Any]:
    return {
        "name": "Growth", "description": "the plan", "pricingCycleConfig": CYCLE, "supportedCurrencies": ["USD", "EUR"],
        "rateCards": {
            "usageRateCards": [usage_card(meter_id)],
            "fixedFeeRateCards": [{"id": "platform", "displayName": "Platform fee", "invoiceTiming": "IN_ADVANCE",
                                   "enableProration": True, "rateValues": [{"currency": "USD", "rate": "49"},
                                                                           {"currency": "EUR", "rate": "45"}]}],
            "billingEntitlementRateCards": [{"featureId": "seats", "displayName": "Seats", "usageMeterId": meter_id,
                                             "featureConfigs": [{"featureCreditLimit": "10"}]}],
            "creditGrantRateCards": [{"id": "monthly_credit", "grantDetails": {"priority": 1, "expiryType": "CUSTOM",
                                                                              "expiryDuration": "P45D"},
                                      "rateDetails": {"currencySlabRateDetails": [
                                          {"currency": "USD", "creditAmount": "20"},
                                          {"currency": "EUR", "creditAmount": "18"}]}}],
            "minimumCommitment": {"displayName": "Commit", "rateValues": [{"currency": "USD", "rate": "100"},
                                                                         {"currency": "EUR", "rate": "90"}]},
        },
    }


async def test_create_get_list_and_rate_cards(client) -> None:
    meter_id = await meter(client)
    plan = await call(client, "create_price_plan", **full_plan(meter_id))
    assert plan["id"].startswith("pp_") and plan["status"] == "ACTIVE"
    assert (plan["name"], plan["description"]) == ("Growth", "the plan")
    card = plan["rateCards"]["usageRateCards"][0]
    # rates keep all their digits (18 decimals here) and come back as decimal strings; currencies upper-cased
    assert card["rateValues"][0]["slabRates"][1]["rate"] == "1E-18"
    assert card["rateValues"][1]["currency"] == "EUR" and card["rateValues"][1]["slabRates"][1]["rate"] == "0.002"
    assert plan["rateCards"]["fixedFeeRateCards"][0]["name"] == "platform"  # name defaults to the id
    got = await call(client, "get_price_plan", pricePlanId=plan["id"])
    assert [(v["version"], v["status"]) for v in got.pop("versions")] == [(1, "ACTIVE")]
    assert got == plan
    listed = await call(client, "list_price_plans")
    assert [(p["id"], p["rateCardCount"]) for p in listed["data"]] == [(plan["id"], 5)]
    cards = await call(client, "list_rate_cards", pricePlanId=plan["id"], pageSize=3)
    rest = await call(client, "list_rate_cards", pricePlanId=plan["id"], nextToken=cards["nextToken"])
    assert [(c["type"], c["name"]) for c in cards["data"] + rest["data"]] == [
        ("USAGE", "api"), ("FIXED_FEE", "platform"), ("BILLING_ENTITLEMENT", "seats"),
        ("CREDIT_GRANT", "monthly_credit"), ("MINIMUM_COMMITMENT", "minimum_commitment")]
    assert rest["nextToken"] is None
    assert cards["data"][0]["usageMeterId"] == meter_id and cards["data"][0]["currencies"] == ["USD", "EUR"]



async def test_rate_card_pages_neither_skip_nor_repeat_a_card_when_a_version_is_finalized_between_them(client) -> None:
    """The next page starts after the last card shown (its type, then its name), not at a position: a version
    finalized between two pages that drops or adds a card before it moves no card the pages have in common."""
    meter_id = await meter(client)

    def priced(*names: str) -> dict[str, Any]:
        return {"usageRateCards": [{**usage_card(meter_id), "name": name} for name in names],
                "fixedFeeRateCards": [{"id": "platform", "rateValues": [{"currency": "USD", "rate": "49"},
                                                                        {"currency": "EUR", "rate": "45"}]}]}

    plan = await call(client, "create_price_plan", name="Growth", pricingCycleConfig=CYCLE,
                      supportedCurrencies=["USD", "EUR"], rateCards=priced("u1", "u2", "u3"))

    async def finalize(*names: str) -> None:
        await call(client, "update_price_plan", pricePlanId=plan["id"], rateCards=priced(*names))
        await call(client, "finalize_price_plan", pricePlanId=plan["id"], migrationMode="NONE")

    def shown(page: dict[str, Any]) -> list[tuple[str, str]]:
        return [(card["type"], card["name"]) for card in page["data"]]

    first = await call(client, "list_rate_cards", pricePlanId=plan["id"], pageSize=2)
    assert shown(first) == [("USAGE", "u1"), ("USAGE", "u2")]
    await finalize("u2", "u3")  # u1 dropped: by position, the next page would start past u3
    rest = await call(client, "list_rate_cards", pricePlanId=plan["id"], pageSize=2, nextToken=first["nextToken"])
    assert (shown(rest), rest["nextToken"]) == ([("USAGE", "u3"), ("FIXED_FEE", "platform")], None)

    first = await call(client, "list_rate_cards", pricePlanId=plan["id"], pageSize=2)
    assert shown(first) == [("USAGE", "u2"), ("USAGE", "u3")]
    await finalize("u0", "u2", "u3")  # u0 added before them: by position, u3 would be shown again
    rest = await call(client, "list_rate_cards", pricePlanId=plan["id"], pageSize=2, nextToken=first["nextToken"])
    assert (shown(rest), rest["nextToken"]) == ([("FIXED_FEE", "platform")], None)


async def test_a_plan_is_created_once_and_changed_only_through_a_version(client, db) -> None:
    meter_id = await meter(client)
    first = await call(client, "create_price_plan", **full_plan(meter_id))
    same = full_plan(meter_id)
    same["rateCards"]["fixedFeeRateCards"][0]["rateValues"][0]["rate"] = "49.00"  # the same number
    same["supportedCurrencies"] = ["EUR", "USD"]
    assert (await call(client, "create_price_plan", **same))["id"] == first["id"]
    before = await row_counts(db)
    changed = full_plan(meter_id)
    changed["rateCards"]["fixedFeeRateCards"][0]["rateValues"][0]["rate"] = "59"
    error = await call_error(client, "create_price_plan", **changed)
    # a plan with the same name and other content is refused; the way to change it is a new version
    assert "already exists" in error and "immutable" not in error
    assert f"update_price_plan(pricePlanId={first['id']!r}" in error and "finalize_price_plan" in error
    assert (await row_counts(db))["price_plans"] == before["price_plans"]


def _set(plan: dict[str, Any], path: str, value: Any) -> dict[str, Any]:
    """A copy of plan with the value at a dotted path (list indexes as numbers) replaced or deleted."""
    plan = copy.deepcopy(plan)
    *parents, last = path.split(".")
    node: Any = plan
    for part in parents:
        node = node[int(part)] if part.isdigit() else node[part]
    key: Any = int(last) if last.isdigit() else last
    if value is _DELETE:
        del node[key]
    else:
        node[key] = value
    return plan


_DELETE = object()
U = "rateCards.usageRateCards.0"


@pytest.mark.parametrize(("path", "value", "field", "words"), [
    (f"{U}.ratePlan.slabs.0.startAfter", "5", "rateCards.usageRateCards[0].ratePlan.slabs[0].startAfter", "after 0"),
    (f"{U}.ratePlan.slabs.2.startAfter", "1000", "rateCards.usageRateCards[0].ratePlan.slabs[2].startAfter",
     "greater than"),
    (f"{U}.ratePlan.slabs.1.order", 0, "rateCards.usageRateCards[0].ratePlan.slabs[1].order", "positive integer"),
    (f"{U}.ratePlan.slabs.2.order", 1, "rateCards.usageRateCards[0].ratePlan.slabs[2].order", "ascending order"),
    (f"{U}.ratePlan.slabs.2.slabConfig.packageSize", "0",
     "rateCards.usageRateCards[0].ratePlan.slabs[2].slabConfig.packageSize", "packageSize > 0"),
    (f"{U}.rateValues.1.slabRates.2.rate", "-1", "rateCards.usageRateCards[0].rateValues[1].slabRates[2].rate",
     ">= 0"),
    (f"{U}.rateValues.1.slabRates", [{"order": 1, "rate": "0"}, {"order": 2, "rate": "1"}],
     "rateCards.usageRateCards[0].rateValues[1].slabRates", "slab order 3"),
    (f"{U}.rateValues.1", _DELETE, "rateCards.usageRateCards[0].rateValues", "EUR"),
    (f"{U}.rateValues.1.currency", "GBP", "rateCards.usageRateCards[0].rateValues[1].currency",
     "not a supported currency"),
    (f"{U}.rateValues.0.rateConfig.maximumRate", "-5",
     "rateCards.usageRateCards[0].rateValues[0].rateConfig.maximumRate", ">= 0"),
    (f"{U}.usageMeterId", "um_nope", "rateCards.usageRateCards[0].usageMeterId", "create_usage_meter"),
    ("supportedCurrencies", ["USD", "XYZ"], "supportedCurrencies[1]", "ISO 4217"),
    ("supportedCurrencies", ["USD", "usd"], "supportedCurrencies[1]", "twice"),
    ("rateCards.fixedFeeRateCards.0.rateValues.1.rate", "-0.01", "rateCards.fixedFeeRateCards[0].rateValues[1].rate",
     "0 or more"),
    ("rateCards.fixedFeeRateCards.0.rateValues", [{"currency": "USD", "rate": "1"}],
     "rateCards.fixedFeeRateCards[0].rateValues", "EUR"),
    ("rateCards.fixedFeeRateCards.0.name", "api", "rateCards.fixedFeeRateCards[0].name", "already the name"),
    # the platform fee sends enableProration true: a ONE_TIME fee is never prorated, so that would be ignored
    ("rateCards.fixedFeeRateCards.0.type", "ONE_TIME", "rateCards.fixedFeeRateCards[0].enableProration",
     "never prorated"),
    ("rateCards.creditGrantRateCards.0.grantDetails.expiryDuration", "45 days",
     "rateCards.creditGrantRateCards[0].grantDetails.expiryDuration", "ISO"),
    ("rateCards.creditGrantRateCards.0.grantDetails.expiryType", "NO_EXPIRY",
     "rateCards.creditGrantRateCards[0].grantDetails.expiryDuration", "only applies"),
    # "forever" to its author, but no instant is that far (it overflowed when the grant was computed): NO_EXPIRY says it
    ("rateCards.creditGrantRateCards.0.grantDetails.expiryDuration", "P9999Y",
     "rateCards.creditGrantRateCards[0].grantDetails.expiryDuration", "NO_EXPIRY"),
    # a day past 100 years from the latest instant billing computes with (9000-01-01 + 100 years is 36524 days on)
    ("rateCards.creditGrantRateCards.0.grantDetails.expiryDuration", "P36525D",
     "rateCards.creditGrantRateCards[0].grantDetails.expiryDuration", "at most 100 years"),
    ("rateCards.creditGrantRateCards.0.grantDetails.expiryDuration", "P99999999999999999999D",
     "rateCards.creditGrantRateCards[0].grantDetails.expiryDuration", "at most 100 years"),
    ("rateCards.billingEntitlementRateCards.0.featureConfigs.0.featureCreditLimit", "-1",
     "rateCards.billingEntitlementRateCards[0].featureConfigs[0].featureCreditLimit", "0 or more"),
    ("rateCards.minimumCommitment.rateValues.1.currency", "JPY", "rateCards.minimumCommitment.rateValues[1].currency",
     "not a supported currency"),
    ("pricingCycleConfig.startOffset.dayOffset", "32", "pricingCycleConfig.startOffset.dayOffset", "LAST"),
    ("pricingCycleConfig.gracePeriod", -1, "pricingCycleConfig.gracePeriod", "whole number"),
])
async def test_validation_names_the_exact_field(client, db, path: str, value: Any, field: str, words: str) -> None:
    meter_id = await meter(client)
    before = await row_counts(db)
    error = await call_error(client, "create_price_plan", **_set(full_plan(meter_id), path, value))
    assert f"{field}:" in error and words in error, error
    assert (await row_counts(db))["price_plans"] == before["price_plans"] == 0


SLABS = f"{U}.ratePlan.slabs"
SLAB_PATH = "rateCards.usageRateCards[0].ratePlan.slabs"


async def test_a_credit_grant_may_expire_up_to_100_years_after_it_starts(client) -> None:
    meter_id = await meter(client)
    # 100 years from the latest instant billing computes with (9000-01-01) is 1200 months, or 36524 days
    for duration in ("P100Y", "P1200M", "P36524D"):
        plan = await call(client, "create_price_plan", **_set(full_plan(meter_id) | {"name": f"Long {duration}"},
                                                              "rateCards.creditGrantRateCards.0.grantDetails"
                                                              ".expiryDuration", duration))
        assert plan["rateCards"]["creditGrantRateCards"][0]["grantDetails"]["expiryDuration"] == duration


async def test_slabs_out_of_order_are_reported_before_the_first_slab_start(client, db) -> None:
    meter_id = await meter(client)
    slabs = full_plan(meter_id)["rateCards"]["usageRateCards"][0]["ratePlan"]["slabs"]
    before = await row_counts(db)
    # the whole list written top down (orders 3, 2, 1; startAfter 10000, 1000, 0): the first listed slab starts
    # after 10000, but the fix is the order, not "set it to 0"
    error = await call_error(client, "create_price_plan", **_set(full_plan(meter_id), SLABS, slabs[::-1]))
    assert error.endswith(f"{SLAB_PATH}[1].order: the slabs are out of order: order 2 (startAfter 1000) is listed "
                          "after order 3 (startAfter 10000); slabs are listed by ascending order, each starting after "
                          "a greater quantity (startAfter) than the one before, the first after 0. They are listed "
                          "in reverse: reverse the list."), error
    assert "set it to 0" not in error
    # orders ascending, startAfter descending: the orders are wrong, not the first start
    swapped = [dict(slab, order=i + 1) for i, slab in enumerate(slabs[::-1])]
    error = await call_error(client, "create_price_plan", **_set(full_plan(meter_id), SLABS, swapped))
    assert f"{SLAB_PATH}[1].startAfter: the slabs are out of order: slabs[1] (order 2) starts after 1000, below " \
           "slabs[0] (order 1, startAfter 10000)" in error, error
    assert "Give order 1 to the slab starting after 0" in error
    assert "set it to 0" not in error
    # listed in a shuffled order that sorting by order puts right
    shuffled = [slabs[1], slabs[0], slabs[2]]
    error = await call_error(client, "create_price_plan", **_set(full_plan(meter_id), SLABS, shuffled))
    assert f"{SLAB_PATH}[1].order: the slabs are out of order" in error and "list them by ascending order" in error
    # in order, but starting above 0: then the first slab's start is the fault
    error = await call_error(client, "create_price_plan", **_set(full_plan(meter_id), f"{SLABS}.0.startAfter", 5))
    assert f"{SLAB_PATH}[0].startAfter: the first slab must start after 0 (got 5)" in error and "set it to 0" in error
    assert await row_counts(db) == before


async def test_structural_errors_name_the_field(client) -> None:
    meter_id = await meter(client)
    error = await call_error(client, "create_price_plan",
                             **_set(full_plan(meter_id), f"{U}.ratePlan.pricingModel", "STAIRSTEP"))
    assert "rateCards.usageRateCards[0].ratePlan.pricingModel" in error and "TIERED" in error
    error = await call_error(client, "create_price_plan",
                             **_set(full_plan(meter_id), f"{U}.rateValues.0.slabRates.0.rate", "ten"))
    assert "rateCards.usageRateCards[0].rateValues[0].slabRates[0].rate" in error and "not a decimal" in error
    error = await call_error(client, "create_price_plan",
                             **_set(full_plan(meter_id), f"{U}.rateValues.0.slabRates.1.rate", 0.30000000000000004))
    assert "decimal string" in error
    error = await call_error(client, "create_price_plan", **_set(full_plan(meter_id), f"{U}.surprise", 1))
    assert "surprise" in error
    plan = full_plan(meter_id)
    error = await call_error(client, "create_price_plan", **plan,
                             minimumCommitment=plan["rateCards"]["minimumCommitment"])
    assert "minimumCommitment" in error and "once" in error
    assert "list_price_plans" in await call_error(client, "get_price_plan", pricePlanId="pp_nope")


async def test_top_level_minimum_commitment_and_defaults(client) -> None:
    plan = await call(client, "create_price_plan", name="Tiny", pricingCycleConfig={"interval": "WEEKLY"},
                      minimumCommitment={"rateValues": [{"currency": "USD", "rate": "5"}]})
    assert plan["supportedCurrencies"] == ["USD"]
    assert plan["pricingCycleConfig"] == {"interval": "WEEKLY", "startOffset": {"dayOffset": "1", "monthOffset": "NIL"},
                                          "gracePeriod": 0, "anniversaryCycle": False}
    assert plan["rateCards"]["minimumCommitment"]["displayName"] == "Minimum commitment"
