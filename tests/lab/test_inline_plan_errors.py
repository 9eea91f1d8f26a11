"""Inline plans are validated exactly like create_price_plan: the same field paths and messages, under a prefix."""

from __future__ import annotations

import copy
import re
from typing import Any

import pytest

from conftest import row_counts
from helpers import call, call_error
from lab_helpers import MONTHLY, account, iso, message, tokens_meter

U = "rateCards.usageRateCards.0"
DELETE = object()


def plan(meter_id: str) -> dict[str, Any]:
    return {
        "name": "Candidate", "pricingCycleConfig": MONTHLY, "supportedCurrencies": ["USD", "EUR"],
        "rateCards": {
            "usageRateCards": [{
                "name": "tokens", "usageMeterId": meter_id,
                "ratePlan": {"pricingModel": "TIERED", "slabs": [
                    {"order": 1, "startAfter": 0, "priceType": "PER_UNIT"},
                    {"order": 2, "startAfter": "1000", "priceType": "PER_UNIT"},
                    {"order": 3, "startAfter": 5000, "priceType": "PACKAGE", "slabConfig": {"packageSize": "100"}}]},
                "rateValues": [
                    {"currency": "USD", "slabRates": [{"order": 1, "rate": "0.01"}, {"order": 2, "rate": "0.005"},
                                                      {"order": 3, "rate": "0.3"}]},
                    {"currency": "EUR", "slabRates": [{"order": 1, "rate": "0.01"}, {"order": 2, "rate": "0.004"},
                                                      {"order": 3, "rate": "0.25"}]}]}],
            "fixedFeeRateCards": [{"id": "platform", "rateValues": [{"currency": "USD", "rate": "49"},
                                                                    {"currency": "EUR", "rate": "45"}]}],
        },
        "minimumCommitment": {"rateValues": [{"currency": "USD", "rate": "100"}, {"currency": "EUR", "rate": "90"}]},
    }


def changed(base: dict[str, Any], path: str, value: Any) -> dict[str, Any]:
    result = copy.deepcopy(base)
    *parents, last = path.split(".")
    node: Any = result
    for part in parents:
        node = node[int(part)] if part.isdigit() else node[part]
    key: Any = int(last) if last.isdigit() else last
    if value is DELETE:
        del node[key]
    else:
        node[key] = value
    return result


SEMANTIC = [
    (f"{U}.ratePlan.slabs.0.startAfter", "5"),
    (f"{U}.ratePlan.slabs.2.startAfter", "1000"),
    (f"{U}.ratePlan.slabs.2.slabConfig.packageSize", "0"),
    (f"{U}.rateValues.1.slabRates.2.rate", "-1"),
    (f"{U}.rateValues.1.currency", "GBP"),
    (f"{U}.rateValues.1", DELETE),
    (f"{U}.usageMeterId", "um_nope"),
    ("supportedCurrencies", ["USD", "XYZ"]),
    ("rateCards.fixedFeeRateCards.0.name", "tokens"),
    ("pricingCycleConfig.startOffset.dayOffset", "32"),
    ("minimumCommitment.rateValues.1.currency", "JPY"),
    ("rateCards.minimumCommitment", {"rateValues": [{"currency": "USD", "rate": "1"}]}),
]


@pytest.mark.parametrize(("path", "value"), SEMANTIC)
async def test_same_errors_as_create_price_plan(client, db, clock, path: str, value: Any) -> None:
    meter = await tokens_meter(client)
    stored = await call(client, "create_price_plan", **{**plan(meter), "name": "Stored"})
    await account(client, "acc", stored["id"], iso(2026, 1, 1))
    invalid = changed(plan(meter), path, value)
    before = await row_counts(db)

    expected = message(await call_error(client, "create_price_plan", **invalid))
    assert re.match(r"^[A-Za-z.\[\]0-9]+: ", expected), expected  # create_price_plan names a field
    simulated = message(await call_error(client, "simulate_price_plan", candidates=[stored["id"], invalid]))
    assert simulated == f"candidates[1].{expected}"
    quoted = message(await call_error(client, "calculate_revenue", pricePlan=invalid, usage={}))
    assert quoted == f"pricePlan.{expected}"
    assert await row_counts(db) == before


@pytest.mark.parametrize(("path", "value", "field", "words"), [
    (f"{U}.ratePlan.pricingModel", "STAIRSTEP", "rateCards.usageRateCards[0].ratePlan.pricingModel", "TIERED"),
    (f"{U}.rateValues.0.slabRates.0.rate", "ten", "rateCards.usageRateCards[0].rateValues[0].slabRates[0].rate",
     "not a decimal"),
    (f"{U}.surprise", 1, "rateCards.usageRateCards[0].surprise", "not permitted"),
    ("pricingCycleConfig", DELETE, "pricingCycleConfig", "required"),
])
async def test_structural_errors_name_the_same_field(client, db, path: str, value: Any, field: str, words: str) -> None:
    meter = await tokens_meter(client)
    invalid = changed(plan(meter), path, value)
    before = await row_counts(db)
    expected = message(await call_error(client, "create_price_plan", **invalid))
    # create_price_plan's structural errors name the field the same way, list indexes as [0]
    assert field in expected and words in expected, expected
    simulated = message(await call_error(client, "simulate_price_plan", candidates=[invalid]))
    assert simulated.startswith(f"candidates[0].{field}: ") and words in simulated, simulated
    assert await row_counts(db) == before
