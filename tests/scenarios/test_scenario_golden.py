"""`--update-golden` rewrites expectations from the results, keeping the file's comments and layout, and a
second run changes nothing."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import yaml

from mcp_server.scenarios.golden import rewrite
from mcp_server.scenarios.model import Expectations
from mcp_server.scenarios.observe import Observation
from mcp_server.scenarios.runner import Check
from scenario_helpers import copy_examples, edit, run_scenarios


def comments(text: str) -> list[str]:
    return [line.split("#", 1)[1].strip() for line in text.splitlines() if "#" in line]


def test_update_golden_restores_wrong_values_keeping_the_file_as_it_was(server_url: str, tmp_path: Path) -> None:
    examples = copy_examples(tmp_path / "examples")
    upgrade = examples / "mid-month-upgrade.yaml"
    original = upgrade.read_text()
    # wrong values of the same width, so that every comment keeps its column: the file must come back as it was
    edit(upgrade, 'total: "25.29"\n', 'total: "52.92"\n')
    edit(upgrade, '{name: starter_base, amount: "9.19", quantity: "1"}', '{name: starter_base, amount: "9.91", quantity: "1"}')
    edit(upgrade, '"2026-01-01": "730000"', '"2026-01-01": "703000"')
    edit(upgrade, "status: DRAFT\n        plan: Pro", "status: DUE\n        plan: Pro")
    edit(upgrade, 'end: "2026-01-16", total: "12.19"}', 'end: "2026-01-16", total: "21.19"}')  # a step's own

    first = run_scenarios(server_url, upgrade, "--update-golden")
    assert first.returncode == 0, first.stdout + first.stderr
    assert re.search(r"^UPDATED .*mid-month-upgrade.yaml .*\(5 value\(s\) rewritten\)$", first.stdout, re.MULTILINE)
    assert upgrade.read_text() == original

    again = run_scenarios(server_url, upgrade, "--update-golden")
    assert again.returncode == 0 and "UPDATED" not in again.stdout and "PASS" in again.stdout
    assert upgrade.read_text() == original


def test_update_golden_fills_missing_invoices_and_written_values(server_url: str, tmp_path: Path) -> None:
    examples = copy_examples(tmp_path / "examples")
    top_up = examples / "top-up-burn-down.yaml"
    original = top_up.read_text()
    # May's DRAFT is dropped from the expectations, a made-up June one added, two wallet balances wrong
    may = '      "2026-05-01": {status: DRAFT, total: "19.00", creditsApplied: "0.00", amountDue: "19.00"}  # open: nothing applied yet\n'
    edit(top_up, may, '      "2026-06-01": {status: DRAFT, total: "1.00"}\n')
    edit(top_up, 'initech: {balance: "5.00"}', 'initech: {balance: "7.00"}')
    edit(top_up, 'initech: {balance: "9.00"}', 'initech: {balance: "1"}')

    wrong = run_scenarios(server_url, top_up)
    assert wrong.returncode == 1
    assert ("top-up-burn-down.yaml › expect › invoices › initech › 2026-05-01: unexpected invoice (DRAFT, total "
            '"19.00")') in wrong.stdout
    assert ("top-up-burn-down.yaml › expect › invoices › initech › 2026-06-01: expected an invoice for this "
            "period; initech has none (its periods: 2026-01-01, 2026-02-01, 2026-03-01, 2026-04-01, "
            "2026-05-01)") in wrong.stdout
    assert 'top-up-burn-down.yaml › steps[3] › expect › wallets › initech › balance: expected "1", got "9.00"' \
        in wrong.stdout

    first = run_scenarios(server_url, top_up, "--update-golden")
    assert first.returncode == 0, first.stdout + first.stderr
    updated = top_up.read_text()
    expected = yaml.safe_load(updated)["expect"]
    assert expected["invoices"]["initech"]["2026-05-01"] == {
        "status": "DRAFT", "total": "19.00",  # the month's fee, nothing used yet
        "lines": [{"name": "tokens", "amount": "0.00", "quantity": "0"},
                  {"name": "starter_base", "amount": "19.00", "quantity": "1"}]}
    assert list(expected["invoices"]["initech"]) == ["2026-01-01", "2026-02-01", "2026-03-01", "2026-04-01",
                                                     "2026-05-01"]
    assert expected["wallets"] == {"initech": {"balance": "5.00"}}
    assert 'initech: {balance: "9.00"}' in updated
    # every comment survives but the one on the line the test removed
    assert comments(updated) == [c for c in comments(original) if c != "open: nothing applied yet"]

    again = run_scenarios(server_url, top_up, "--update-golden")  # now it passes, and nothing changes
    assert again.returncode == 0 and "UPDATED" not in again.stdout and "PASS" in again.stdout
    assert top_up.read_text() == updated



# --- the rewrite itself, from what the engine said (no database) ------------------------------------------

JAN = datetime(2026, 1, 1, tzinfo=UTC)


def seen_january(**fields: Any) -> Observation:
    """What the engine said of acme: one DRAFT invoice, its lines tokens then base."""
    invoice = {"start": JAN, "period": "2026-01-01", "status": "DRAFT", "total": "19.00", "end": "2026-02-01",
               "plan": "Starter", "lines": [
                   {"name": "tokens", "amount": "0.00", "quantity": "0", "description": "LLM tokens"},
                   {"name": "base", "amount": "19.00", "quantity": "1", "description": "Base fee"}]}
    return Observation(invoices={"acme": [invoice | fields]})


def rewritten(tmp_path: Path, expect: str, seen: Observation) -> tuple[int, str]:
    file = tmp_path / "s.yaml"
    file.write_text('scenario: S\nstart: "2026-01-01"\n' + expect)
    check = Check(("expect",), Expectations(), seen)  # the rewrite reads the file's own expectations
    return rewrite(file, [check]), file.read_text()


def test_an_unquoted_amount_that_matches_is_left_as_written(tmp_path: Path) -> None:
    # `total: 19.00` unquoted is read as "19.00" (README: digit for digit), which is what the engine said:
    # nothing differs, so nothing is rewritten
    expect = 'expect:\n  invoices:\n    acme:\n      "2026-01-01": {status: DRAFT, total: 19.00}   # the fee\n'
    assert rewritten(tmp_path, expect, seen_january()) == (0, 'scenario: S\nstart: "2026-01-01"\n' + expect)
    # nor is a period's end written as its instant: the comparison reads it as one
    with_end = expect.replace("{status: DRAFT,", '{status: DRAFT, end: "2026-02-01T00:00:00Z",')
    assert rewritten(tmp_path, with_end, seen_january()) == (0, 'scenario: S\nstart: "2026-01-01"\n' + with_end)
    # an unquoted number whose text differs ("19.0") is rewritten, quoted
    changes, text = rewritten(tmp_path, expect.replace("19.00", "19.0"), seen_january())
    assert changes == 1 and 'total: "19.00"' in text


def test_lines_written_in_another_order_are_put_in_the_invoices_order(tmp_path: Path) -> None:
    expect = ('expect:\n  invoices:\n    acme:\n      "2026-01-01":\n        status: DRAFT\n        total: "19.00"\n'
              '        lines:\n          - {name: base, amount: "19.00", quantity: "1"}\n'
              '          - {name: tokens, amount: "0.00", quantity: "0"}\n')
    changes, text = rewritten(tmp_path, expect, seen_january())
    assert changes == 1
    assert text.endswith('        lines:\n          - {name: tokens, amount: "0.00", quantity: "0"}\n'
                         '          - {name: base, amount: "19.00", quantity: "1"}\n')
