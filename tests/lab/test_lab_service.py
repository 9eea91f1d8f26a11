"""The lab's service guarantees on their own: READ ONLY transactions, aliases, exact plan files."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError

from helpers import call
from lab_helpers import MONTHLY, account, at, iso, per_unit_card, tokens_meter
from togai_engine.errors import InvalidInput
from togai_engine.lab.plan_files import load_plan_file
from togai_engine.lab.service import calculate_revenue, simulate_price_plans


async def test_quotes_and_simulations_run_in_read_only_transactions(client, db) -> None:
    meter = await tokens_meter(client)
    plan = await call(client, "create_price_plan", name="P", pricingCycleConfig=MONTHLY,
                      rateCards={"usageRateCards": [per_unit_card(meter, "TIERED", {"USD": [("0", "0.5")]})]})
    for run in (
        lambda s: simulate_price_plans(s, [plan["id"]], now=at(2026, 3, 1)),
        lambda s: calculate_revenue(s, plan=plan["id"], usage={meter: "2"}, currency=None, now=at(2026, 3, 1)),
    ):
        with pytest.raises(DBAPIError, match="read-only transaction"):
            async with db.unit_of_work() as session:
                await run(session)
                await session.execute(text("INSERT INTO customers (id, name) VALUES ('sneaky', 'x')"))


async def test_accounts_may_be_named_by_alias(client, clock) -> None:
    meter = await tokens_meter(client)
    plan = await call(client, "create_price_plan", name="P", pricingCycleConfig=MONTHLY,
                      rateCards={"usageRateCards": [per_unit_card(meter, "TIERED", {"USD": [("0", "0.5")]})]})
    await account(client, "acc_1", plan["id"], iso(2026, 1, 1))
    await call(client, "update_account", accountId="acc_1", aliases=["acme-prod"])
    clock.set(at(2026, 2, 10))
    result = await call(client, "simulate_price_plan", candidates=[plan["id"]], accountIds=["acme-prod", "acc_1"],
                        lastCycles=1)
    assert [a["accountId"] for a in result["accounts"]] == ["acc_1"]  # one account, however it is named
    assert result["accounts"][0]["cycles"][0]["status"] == "DRAFT"  # nobody read the invoices: not closed yet


def test_plan_files_read_numbers_exactly(tmp_path: Path) -> None:
    yaml_file = tmp_path / "p.yaml"
    yaml_file.write_text("plans:\n  - name: A\n    rate: 0.1\n    big: 1_000.000000000000000001\n  - pp_123\n")
    assert load_plan_file(yaml_file) == [{"name": "A", "rate": Decimal("0.1"),
                                          "big": Decimal("1000.000000000000000001")}, "pp_123"]
    json_file = tmp_path / "p.json"
    json_file.write_text('[{"rate": 0.30000000000000004}]')
    assert load_plan_file(json_file) == [{"rate": Decimal("0.30000000000000004")}]
    for content, words in (("{}", "non-empty list"), ("[]", "non-empty list"), ("[{", "not valid JSON")):
        json_file.write_text(content)
        with pytest.raises(InvalidInput, match=words):
            load_plan_file(json_file)


async def test_meters_of_a_pricing_file_name_the_failing_field_and_store_nothing(db) -> None:
    from conftest import row_counts
    from togai_engine.lab.service import apply_meters

    good = {"name": "calls", "eventSchemaName": "api", "aggregation": "COUNT", "computations": []}
    before = await row_counts(db)
    for specs, field, reason in (
        ([good, "calls"], "meters[1]", "must be a usage meter object"),
        ([good, {**good, "name": "peak", "aggregation": "MEDIAN"}], "meters[1].aggregation", "use one of: COUNT"),
        ([{k: v for k, v in good.items() if k != "name"}], "meters[0].name", "Field required"),
        ([{**good, "computations": [5]}], "meters[0].computations[0]", "should be an object; got a number"),
        ([{**good, "aggregation": "SUM", "computations": [{"computation": {"sqrt": [4]}}]}],
         "meters[0].computations[0].computation", "sqrt"),
    ):
        with pytest.raises(InvalidInput) as raised:
            async with db.unit_of_work() as session:
                await apply_meters(session, specs, at(2026, 3, 1))
        assert raised.value.field == field and reason in raised.value.reason, raised.value
        assert await row_counts(db) == before  # the valid first meter was not created either
    async with db.unit_of_work() as session:
        applied = await apply_meters(session, [good, good], at(2026, 3, 1))
    assert [(a.name, a.status) for a in applied] == [("calls", "created"), ("calls", "exists")]
