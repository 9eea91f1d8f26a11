"""Running `togai-engine scenario run` as CI does: a subprocess, its databases on the test server."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

BIN = Path(sys.executable).parent / "togai-engine"
ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples" / "scenarios"
EXAMPLE_FILES = sorted(EXAMPLES.glob("*.yaml"))


def run_scenarios(server_url: str, *args: str | Path, cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
    environment = {k: v for k, v in os.environ.items() if not k.startswith("TOGAI_")}
    environment |= {"TOGAI_DATABASE_URL": server_url}
    return subprocess.run([str(BIN), "scenario", "run", *map(str, args)], env=environment, cwd=cwd,
                          capture_output=True, text=True, timeout=300)


def readme_scenario() -> str:
    """The scenario file README.md shows (its "Scenario files" section): it must run as shown."""
    text = (ROOT / "README.md").read_text()
    start = text.index("```yaml\nscenario: ") + len("```yaml\n")
    return text[start:text.index("```", start)]


def copy_examples(target: Path) -> Path:
    """The example scenarios and their pricing file, copied to `target` (to be edited by a test)."""
    shutil.copytree(EXAMPLES, target)
    return target


def edit(file: Path, old: str, new: str, count: int = 1) -> None:
    """Replaces exactly `count` occurrences of `old` in `file` (a test's edit must hit what it means to)."""
    text = file.read_text()
    assert text.count(old) == count, f"{old!r} occurs {text.count(old)} times in {file.name}, not {count}"
    file.write_text(text.replace(old, new))


# Pricing written inline in a scenario (meters and plans in the `plans apply` format): 0.50 a call, monthly,
# no grace period, so a month's invoice is DUE at the month's end.
INLINE_SETUP = """
setup:
  meters:
    - {id: calls, name: calls, eventSchemaName: call, aggregation: COUNT}
  plans:
    - name: Basic
      pricingCycleConfig: {interval: MONTHLY, startOffset: {dayOffset: "1"}, gracePeriod: 0}
      rateCards:
        usageRateCards:
          - usageMeterId: calls
            ratePlan: {pricingModel: TIERED, slabs: [{order: 1, startAfter: 0, priceType: PER_UNIT}]}
            rateValues: [{currency: USD, slabRates: [{order: 1, rate: "0.50"}]}]
  customers:
    - {id: c1, name: C1}
  accounts:
    - {id: a1, customerId: c1, name: A1, pricePlanId: Basic}   # the plan by its name
"""
