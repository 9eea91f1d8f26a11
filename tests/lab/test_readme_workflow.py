"""The README's pricing-lab workflow, command by command, on the files in examples/."""

from __future__ import annotations

import csv
import os
import subprocess
import sys
from pathlib import Path

BIN = Path(sys.executable).parent / "togai-engine"
EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def run(database_url: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TOGAI_")} | {
        "TOGAI_DATABASE_URL": database_url, "COLUMNS": "200"}
    return subprocess.run([str(BIN), *args], env=env, capture_output=True, text=True, timeout=300)


async def test_demo_then_plans_apply_then_simulate(db, database_url, tmp_path):
    assert run(database_url, "demo").returncode == 0
    first = run(database_url, "plans", "apply", str(EXAMPLES / "pricing.yaml"))
    assert first.returncode == 0, first.stderr
    assert first.stdout.count("created") == 2  # the meter and the plan
    again = run(database_url, "plans", "apply", str(EXAMPLES / "pricing.yaml"))
    assert again.returncode == 0 and again.stdout.count("exists") == 2 and "created" not in again.stdout

    out = tmp_path / "compare.csv"
    sim = run(database_url, "simulate", "--plans", str(EXAMPLES / "candidates.yaml"), "--accounts",
              "demo_acme_main", "--last-cycles", "1", "--csv", str(out))
    assert sim.returncode == 0, sim.stderr
    row = next(csv.DictReader(out.open()))
    # The demo's month: 40 events x 3,000 tokens = 120,000 tokens.
    # actual (Demo Growth): 100,000 x 0.0002 = 20.00 + 20,000 x 0.0001 = 2.00, plus the 49.00 fee = 71.00
    # Tokens by volume: all 120,000 in slab 2 at 0.00015 = 18.00
    # Tokens in packages: ceil(120,000 / 50,000) = 3 packages x 9 = 27.00, plus the 29.00 fee = 56.00
    assert (row["actual"], row["Tokens by volume amount"], row["Tokens in packages amount"]) == (
        "71.00", "18.00", "56.00")
    assert (row["Tokens by volume difference"], row["Tokens in packages difference"]) == ("-53.00", "-15.00")
