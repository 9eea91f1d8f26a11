"""The pricing table (examples/pricing_table): every expressible case bills as worked out by hand, every case
not yet expressible is refused where a user would write it, and the README's count is the table's."""

from __future__ import annotations

import re
from typing import Any

import pytest
import yaml
from mcp import Client

from helpers import call_error
from scenario_helpers import ROOT, run_scenarios

TABLE = ROOT / "examples" / "pricing_table"
CASES = sorted((TABLE / "cases").glob("*.yaml"))
NOT_YET: list[dict[str, Any]] = yaml.safe_load((TABLE / "not_yet.yaml").read_text())
README = (TABLE / "README.md").read_text()
# The worked examples of examples/scenarios count in the table too (the README links them).
EXAMPLES = sorted(re.findall(r"\(\.\./scenarios/([\w-]+\.yaml)\)", README))


def test_every_expressible_case_bills_as_worked_out(server_url: str) -> None:
    files = [*CASES, *(ROOT / "examples" / "scenarios" / name for name in EXAMPLES)]
    done = run_scenarios(server_url, *files)
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"{len(files)} scenario(s), {len(files)} passed" in done.stdout


@pytest.mark.parametrize("case", [c for c in NOT_YET if "attempt" in c], ids=lambda c: c["id"])
async def test_a_case_not_yet_expressible_is_refused_where_it_is_written(client: Client, case: dict[str, Any]) -> None:
    attempt = dict(case["attempt"])
    plan: dict[str, Any] = {
        "name": case["id"][:50],
        "pricingCycleConfig": {"interval": "MONTHLY", "startOffset": {"dayOffset": "1"}},
        "rateCards": {k: v for k, v in attempt.items() if k != "pricingRules"},
    }
    if "pricingRules" in attempt:
        plan["pricingRules"] = attempt["pricingRules"]
    error = await call_error(client, "create_price_plan", **plan)
    assert case["refusedAt"] in error, error


def test_the_readme_counts_and_lists_the_table() -> None:
    expressible = len(CASES) + len(EXAMPLES)
    total = expressible + len(NOT_YET)
    assert f"**Expressible: {expressible} of {total} cases.**" in README
    for name in [*(c.stem for c in CASES), *(c["id"] for c in NOT_YET)]:
        assert f"| {name} |" in README, f"{name} is missing from examples/pricing_table/README.md"
    assert len(EXAMPLES) == 4
    assert len({c["id"] for c in NOT_YET} | {c.stem for c in CASES}) == len(NOT_YET) + len(CASES), "a case id repeats"
