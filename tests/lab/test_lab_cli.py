"""`togai-engine plans apply` and `togai-engine simulate` as a user runs them: subprocesses on the test database."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from conftest import row_counts
from helpers import call, scalar
from lab_helpers import MONTHLY, scale, setup, tokens_meter

BIN = Path(sys.executable).parent / "togai-engine"


def run(database_url: str, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    environment = {k: v for k, v in os.environ.items() if not k.startswith("TOGAI_")}
    environment |= {"TOGAI_DATABASE_URL": database_url, "TOGAI_BILLING_INTERVAL_SECONDS": "0", **env}
    return subprocess.run([str(BIN), *args], env=environment, capture_output=True, text=True, timeout=180)


def plans_yaml(meter: str, *, pro_rate: str = "0.002") -> str:
    # YAML numbers such as 0.002 are read as exact decimals, never as floats
    return f"""
- name: Lab Pro
  pricingCycleConfig: {{interval: MONTHLY, gracePeriod: 2}}
  rateCards:
    usageRateCards:
      - usageMeterId: {meter}
        ratePlan:
          pricingModel: TIERED
          slabs: [{{order: 1, startAfter: 0, priceType: PER_UNIT}}]
        rateValues: [{{currency: USD, slabRates: [{{order: 1, rate: {pro_rate}}}]}}]
  minimumCommitment:
    rateValues: [{{currency: USD, rate: 25.50}}]
- name: Lab Flat
  pricingCycleConfig: {{interval: MONTHLY}}
  rateCards:
    fixedFeeRateCards: [{{id: platform, rateValues: [{{currency: USD, rate: 99}}]}}]
"""


async def plan_names(client: Any) -> dict[str, dict[str, Any]]:
    page = await call(client, "list_price_plans", pageSize=100)
    return {p["name"]: await call(client, "get_price_plan", pricePlanId=p["id"]) for p in page["data"]}


async def test_plans_apply_creates_missing_plans_and_is_safe_to_repeat(client, db, database_url, tmp_path) -> None:
    meter = await tokens_meter(client)
    file = tmp_path / "plans.yaml"
    file.write_text(plans_yaml(meter))

    first = run(database_url, "plans", "apply", str(file))
    assert first.returncode == 0, first.stderr
    assert first.stdout.count("created") == 2 and "Lab Pro" in first.stdout
    stored = await plan_names(client)
    assert sorted(stored) == ["Lab Flat", "Lab Pro"]
    pro = stored["Lab Pro"]
    assert pro["rateCards"]["usageRateCards"][0]["rateValues"][0]["slabRates"][0]["rate"] == "0.002"
    assert pro["rateCards"]["minimumCommitment"]["rateValues"][0]["rate"] == "25.50"

    again = run(database_url, "plans", "apply", str(file))
    assert again.returncode == 0, again.stderr
    assert again.stdout.count("exists") == 2 and "created" not in again.stdout
    assert pro["id"] in again.stdout

    # The same plans as JSON are the same plans
    as_json = tmp_path / "plans.json"
    as_json.write_text(json.dumps([
        {k: pro[k] for k in ("name", "pricingCycleConfig", "supportedCurrencies", "rateCards")}]))
    assert "exists" in run(database_url, "plans", "apply", str(as_json)).stdout

    # Editing a plan in place is reported, not applied: plans are immutable
    file.write_text(plans_yaml(meter, pro_rate="0.003"))
    before = await row_counts(db)
    edited = run(database_url, "plans", "apply", str(file))
    assert edited.returncode == 1
    assert "differs" in edited.stdout and "update_price_plan" in edited.stdout
    assert await row_counts(db) == before


async def test_plans_apply_compares_a_file_with_the_plans_latest_version(client, db, database_url, tmp_path) -> None:
    """A plan changes through versions (update_price_plan, finalize_price_plan): the file kept in git follows it, and
    re-applying it is safe; the file as it was before the change no longer describes what the plan bills."""
    meter = await tokens_meter(client)
    file = tmp_path / "plans.yaml"
    file.write_text(plans_yaml(meter))
    assert run(database_url, "plans", "apply", str(file)).returncode == 0
    pro = (await plan_names(client))["Lab Pro"]
    edited = plans_yaml(meter, pro_rate="0.003")
    cards = {**pro["rateCards"], "minimumCommitment": {"rateValues": [{"currency": "USD", "rate": "25.50"}]}}
    cards["usageRateCards"][0]["rateValues"][0]["slabRates"][0]["rate"] = "0.003"  # version 2: edited's Lab Pro
    await call(client, "update_price_plan", pricePlanId=pro["id"], rateCards=cards)
    await call(client, "finalize_price_plan", pricePlanId=pro["id"], migrationMode="NONE")

    file.write_text(edited)  # the file now says what version 2 is
    versions = await scalar(db, "SELECT count(*) FROM price_plan_versions")
    again = run(database_url, "plans", "apply", str(file))
    assert again.returncode == 0, again.stdout + again.stderr
    assert again.stdout.count("exists") == 2 and "differs" not in again.stdout
    assert await scalar(db, "SELECT count(*) FROM price_plan_versions") == versions
    before = await row_counts(db)

    file.write_text(plans_yaml(meter))  # version 1's content: not what attaching Lab Pro gives any more
    stale = run(database_url, "plans", "apply", str(file))
    assert stale.returncode == 1, stale.stdout + stale.stderr
    assert "differs" in stale.stdout and "version 2" in stale.stdout and "update_price_plan" in stale.stdout
    assert await row_counts(db) == before


async def test_plans_apply_is_all_or_nothing_and_names_the_field(client, db, database_url, tmp_path) -> None:
    meter = await tokens_meter(client)
    file = tmp_path / "plans.yaml"
    file.write_text(plans_yaml(meter).replace("startAfter: 0", "startAfter: 5"))  # Lab Pro, the first plan
    before = await row_counts(db)
    out = run(database_url, "plans", "apply", str(file))
    assert out.returncode == 1
    assert out.stderr.strip().startswith(
        "togai-engine: plans[0].rateCards.usageRateCards[0].ratePlan.slabs[0].startAfter: the first slab must start "
        "after 0"), out.stderr
    file.write_text(plans_yaml(meter).replace("rate: 99", "rate: -99"))  # Lab Flat, the second plan
    out = run(database_url, "plans", "apply", str(file))
    assert out.returncode == 1 and "plans[1].rateCards.fixedFeeRateCards[0].rateValues[0].rate" in out.stderr
    assert await row_counts(db) == before  # the valid first plan was not created either
    file.write_text("- [unclosed")
    out = run(database_url, "plans", "apply", str(file))
    assert out.returncode == 1 and "not valid YAML" in out.stderr


async def test_plans_apply_names_the_meter_of_the_file_that_differs(client, db, database_url, tmp_path) -> None:
    meter = {"id": "tokens", "name": "tokens", "eventSchemaName": "llm", "aggregation": "SUM",
             "computations": [{"computation": "tokens"}]}
    plan = {"name": "Flat", "pricingCycleConfig": {"interval": "MONTHLY"},
            "rateCards": {"fixedFeeRateCards": [{"id": "platform", "rateValues": [{"currency": "USD", "rate": "9"}]}]}}
    file = tmp_path / "pricing.json"
    file.write_text(json.dumps({"meters": [meter], "plans": [plan]}))
    assert run(database_url, "plans", "apply", str(file)).returncode == 0
    before = await row_counts(db)
    # the meter edited in the file: refused whole, naming where in the file, as an invalid meter is
    file.write_text(json.dumps({"meters": [meter | {"aggregation": "MAX"}], "plans": [plan]}))
    out = run(database_url, "plans", "apply", str(file))
    assert out.returncode == 1
    assert out.stderr.strip().startswith("togai-engine: meters[0]: a usage meter named 'tokens' already exists "
                                         "(tokens) with a different aggregation"), out.stderr
    file.write_text(json.dumps({"meters": [meter | {"name": "tokens2"}], "plans": [plan]}))
    out = run(database_url, "plans", "apply", str(file))
    assert out.returncode == 1
    assert out.stderr.strip().startswith("togai-engine: meters[0]: id: usage meter id 'tokens' is already used by the "
                                         "meter named 'tokens'"), out.stderr
    assert await row_counts(db) == before


async def test_simulate_prints_writes_csv_and_plots(client, clock, db, database_url, tmp_path) -> None:
    meter, starter_id = await setup(client, clock)
    plans = tmp_path / "candidates.json"
    plans.write_text(json.dumps([starter_id, scale(meter)]))
    before = await row_counts(db)
    out = run(database_url, "simulate", "--plans", str(plans), "--start", "2026-01-01T00:00:00Z", "--end",
              "2026-03-01T00:00:00Z", "--as-of", "2026-03-05T00:00:00Z", "--csv", str(tmp_path / "out.csv"),
              "--plot", str(tmp_path / "out.png"))
    assert out.returncode == 0, out.stderr
    assert await row_counts(db) == before  # the inline Scale plan was not stored, nothing was billed
    # the totals of test_simulate_price_plan.py: Scale 176.50 against 115.00, +61.50 (+53.48%)
    scale_row = next(line for line in out.stdout.splitlines() if line.strip().startswith("│ Scale"))
    assert all(text in scale_row for text in ("USD", "115.00", "176.50", "+61.50", "+53.48%")), scale_row
    assert "acc_b +42.50" in out.stdout and "skipped acc_d" in out.stdout
    # revenue per period: January USD actual 20.00 + 35.00 = 55.00; Starter 55.00; Scale 40.00 + 47.50 = 87.50
    january = next(line for line in out.stdout.splitlines() if "USD" in line and "2026-01-01" in line)
    assert [cell.strip() for cell in january.split("│")[1:-1]] == ["USD", "2026-01-01", "55.00", "55.00", "87.50"]

    with (tmp_path / "out.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == 6  # 3 accounts × 2 periods
    b_feb = next(r for r in rows if r["accountId"] == "acc_b" and r["periodStart"].startswith("2026-02-01"))
    assert (b_feb["status"], b_feb["actual"], b_feb["Starter amount"], b_feb["Scale amount"],
            b_feb["Scale difference"]) == ("DUE", "10.00", "10.00", "40.00", "30.00")
    c_jan = next(r for r in rows if r["accountId"] == "acc_c" and r["periodStart"].startswith("2026-01-01"))
    assert (c_jan["currency"], c_jan["Starter amount"], c_jan["Scale amount"]) == ("EUR", "28.80", "")
    assert (tmp_path / "out.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


async def test_simulate_filters_and_errors(client, clock, db, database_url, tmp_path) -> None:
    _, starter_id = await setup(client, clock)
    plans = tmp_path / "candidates.yaml"
    plans.write_text(f"plans:\n  - {starter_id}\n")
    as_of = ("--as-of", "2026-03-05T00:00:00Z")

    out = run(database_url, "simulate", "--plans", str(plans), "--accounts", "acc_a,acc_c", "--start",
              "2026-02-01T00:00:00Z", "--end", "2026-04-01T00:00:00Z", "--csv", str(tmp_path / "f.csv"), *as_of)
    assert out.returncode == 0, out.stderr
    with (tmp_path / "f.csv").open() as handle:
        rows = [(r["accountId"], r["periodStart"][:10], r["status"], r["actual"]) for r in csv.DictReader(handle)]
    # February invoiced; March open: acc_a's DRAFT is 1,000 × 0.002 + 10 = 12.00, acc_c's the EUR fee 9.00
    assert rows == [("acc_a", "2026-02-01", "DUE", "50.00"), ("acc_a", "2026-03-01", "DRAFT", "12.00"),
                    ("acc_c", "2026-02-01", "DUE", "12.60"), ("acc_c", "2026-03-01", "DRAFT", "9.00")]

    out = run(database_url, "simulate", "--plans", str(plans), "--customer", "cust_acc_a", "--last-cycles", "1",
              "--csv", str(tmp_path / "c.csv"), *as_of)
    assert out.returncode == 0, out.stderr
    with (tmp_path / "c.csv").open() as handle:
        # the last period of each is March, still open: acc_a 12.00 (see above), acc_b its 10.00 fee
        assert [(r["accountId"], r["periodStart"][:10], r["status"], r["actual"]) for r in csv.DictReader(handle)] == [
            ("acc_a", "2026-03-01", "DRAFT", "12.00"), ("acc_b", "2026-03-01", "DRAFT", "10.00")]

    missing = run(database_url, "simulate", "--plans", str(plans), "--accounts", "acc_a,nope", *as_of)
    assert missing.returncode == 1 and "'nope' does not exist" in missing.stderr
    bad = tmp_path / "bad.yaml"
    bad.write_text(json.dumps([{"name": "X", "pricingCycleConfig": MONTHLY, "supportedCurrencies": ["XYZ"]}]))
    out = run(database_url, "simulate", "--plans", str(bad), *as_of)
    assert out.returncode == 1 and "togai-engine: plans[0].supportedCurrencies[0]:" in out.stderr

    # Without the plot extra, --plot fails at once with the install hint (a stand-in hides matplotlib)
    shadow = tmp_path / "shadow" / "matplotlib"
    shadow.mkdir(parents=True)
    (shadow / "__init__.py").write_text("raise ImportError('No module named matplotlib')\n")
    out = run(database_url, "simulate", "--plans", str(plans), "--plot", str(tmp_path / "p.png"), *as_of,
              PYTHONPATH=str(tmp_path / "shadow"))
    assert out.returncode == 2
    assert "pip install 'togai-engine[plot]'" in out.stderr and not (tmp_path / "p.png").exists()
