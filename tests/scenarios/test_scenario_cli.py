"""`togai-engine scenario run` end to end: the worked examples pass (this is how CI runs them), a wrong
expectation exits 1 with a diff naming it, step-level expectations and the file's conveniences work, an
unreadable file exits 2, and the JUnit report says the same."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from pathlib import Path

from scenario_helpers import EXAMPLE_FILES, INLINE_SETUP, copy_examples, edit, readme_scenario, run_scenarios


def junit_cases(report: Path) -> dict[str, ET.Element]:
    root = ET.parse(report).getroot()
    return {case.get("name", ""): case for case in root.iter("testcase")}


def test_the_worked_examples_pass(server_url: str, tmp_path: Path) -> None:
    assert [f.name for f in EXAMPLE_FILES] == ["mid-month-upgrade.yaml", "overage-dispute.yaml",
                                               "top-up-burn-down.yaml", "trial-to-paid.yaml"]
    report = tmp_path / "report.xml"
    done = run_scenarios(server_url, *EXAMPLE_FILES, "--junit", report)
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.count("PASS") == 4, done.stdout
    assert re.search(r"^4 scenario\(s\), 4 passed in [\d.]+ s \(fresh database: [\d.]+ s median\)$", done.stdout,
                     re.MULTILINE), done.stdout
    cases = junit_cases(report)
    assert set(cases) == {"A trial converting to paid", "A mid-month upgrade from Starter to Pro",
                          "A top-up burning down", "An overage dispute"}
    assert all(not list(case) for case in cases.values())  # no failure, no error
    assert cases["A top-up burning down"].get("classname", "").endswith("examples.scenarios.top-up-burn-down")


FEATURES_PASS = f"""
scenario: Features that pass
start: "2026-01-01"
{INLINE_SETUP}
steps:
  - at: "2026-01-10T06:00:00Z"
    events:   # neither ids nor timestamps: both count (ids from their place), at the step's time
      - {{accountId: a1, schemaName: call}}
      - {{accountId: a1, schemaName: call}}
    eventsFile: calls.jsonl   # 1,500 more such lines: two batches
    expect:
      invoices:
        a1: {{"2026-01-01": {{status: DRAFT, total: "751.00"}}}}   # 1,502 × 0.50
      metrics:
        - startTime: "2026-01-10"
          endTime: "2026-01-11"
          metricQueries: [{{id: calls, name: USAGE, aggregationPeriod: HOUR}}]
          values: {{calls: {{"2026-01-10T06:00:00Z": "1502"}}}}   # the hour of the step's time
  - advance: P1M   # Feb 10, 06:00: January is DUE (no grace period)
    do:
      - create_credit_note: {{invoiceId: a1/2026-01-01, reason: OTHER, memo: goodwill, amount: "0.25"}}
    expect:
      invoices:
        a1:
          "2026-01-01": {{status: DUE, total: "751.00", creditNotesTotal: "0.25", amountDue: "750.75"}}
          "2026-02-01": {{status: DRAFT, total: "0.00"}}
  - advance: PT1H
    expectError: already invoiced
    do:
      - void_event: {{accountId: a1, eventId: "steps[0].events[1]", reason: a test}}
"""

FEATURES_FAIL = f"""
scenario: Features that fail
start: "2026-01-01"
{INLINE_SETUP}
steps:
  - at: "2026-01-05"
    events: [{{accountId: a1, schemaName: call}}]
    expect:
      invoices:
        a1: {{"2026-01-01": {{total: "0.5"}}}}   # the engine says "0.50": money is compared as written
  - at: "2026-01-06"
    do:
      - update_account: {{accountId: nobody, name: Nobody}}
  - at: "2026-01-07"
    expect:
      invoices:
        a1: {{"2026-01-01": {{total: "7.77"}}}}   # never checked: the step before failed
"""

def write_features_pass(folder: Path) -> Path:
    (folder / "calls.jsonl").write_text('{"accountId": "a1", "schemaName": "call"}\n' * 1500)
    file = folder / "pass.yaml"
    file.write_text(FEATURES_PASS)
    return file


ERROR_NOT_MET = f"""
scenario: An error that does not come
start: "2026-01-01"
{INLINE_SETUP}
steps:
  - expectError: not found
    do:
      - get_account: {{accountId: a1}}
"""


def test_differences_and_failures_exit_1_naming_where(server_url: str, tmp_path: Path) -> None:
    examples = copy_examples(tmp_path / "examples")
    upgrade = examples / "mid-month-upgrade.yaml"
    edit(upgrade, 'total: "25.29"\n', 'total: "25.30"\n')  # Pro's part of January, in the final expectations
    edit(upgrade, '{name: tokens, amount: "3.00", quantity: "130000"}', '{name: tokens, amount: "3.00", quantity: "130001"}')
    write_features_pass(tmp_path)
    (tmp_path / "fail.yaml").write_text(FEATURES_FAIL)
    (tmp_path / "unmet.yaml").write_text(ERROR_NOT_MET)
    (examples / "readme.yaml").write_text(readme_scenario())  # next to the pricing file it names
    report = tmp_path / "report.xml"

    done = run_scenarios(server_url, upgrade, examples / "trial-to-paid.yaml", examples / "readme.yaml",
                         tmp_path / "pass.yaml", tmp_path / "fail.yaml", tmp_path / "unmet.yaml", "--junit", report)
    out = done.stdout
    assert done.returncode == 1, out + done.stderr
    assert "6 scenario(s), 3 passed, 3 failed" in out
    assert re.search(r"^PASS +\S+trial-to-paid.yaml", out, re.MULTILINE)
    assert re.search(r"^PASS +\S+readme.yaml", out, re.MULTILINE)  # README's example is true
    assert re.search(r"^PASS +\S+pass.yaml +Features that pass", out, re.MULTILINE), out
    # the diff names the file, account, period, field, expected and got
    total = ('mid-month-upgrade.yaml › expect › invoices › globex › 2026-01-16 › total: expected "25.30", '
             'got "25.29"')
    line = ('mid-month-upgrade.yaml › expect › invoices › globex › 2026-01-01 › lines › tokens › quantity: '
            'expected "130001", got "130000"')
    assert total in out and line in out
    assert out.count("mid-month-upgrade.yaml ›") == 2  # nothing else differs
    # a step's own expectations are checked at its time; a tool error stops the scenario, naming the step
    assert 'fail.yaml › steps[0] › expect › invoices › a1 › 2026-01-01 › total: expected "0.5", got "0.50"' in out
    assert "fail.yaml › steps[1] › do[0] › update_account: update_account failed: " in out
    assert "nobody" in out.split("steps[1] › do[0] › update_account")[1].splitlines()[0]
    assert "7.77" not in out
    assert ("unmet.yaml › steps[0] › expectError: expected an error containing 'not found'; every call of the "
            "step succeeded") in out

    cases = junit_cases(report)
    failed = {name: case.find("failure") for name, case in cases.items()}
    assert failed["A trial converting to paid"] is None and failed["Features that pass"] is None
    upgrade_failure = failed["A mid-month upgrade from Starter to Pro"]
    assert upgrade_failure is not None and total in (upgrade_failure.text or "")
    assert upgrade_failure.get("message") in (total, line)
    assert failed["Features that fail"] is not None and failed["An error that does not come"] is not None
    assert all(float(case.get("time", "0")) > 0 for case in cases.values())


BACK_IN_TIME = """
scenario: Back in time
start: "2026-01-01"
steps:
  - at: "2026-01-10"
  - at: "2026-01-05"
"""

UNKNOWN_TOOL = """
scenario: A typo in a tool
start: "2026-01-01"
steps:
  - do:
      - grant_credits: {accountId: a1, amount: "5.00"}
"""

UNKNOWN_KEY = """
scenario: A typo in a key
start: "2026-01-01"
steps:
  - at: "2026-01-10"
    evnts: []
"""


def test_unreadable_files_exit_2_naming_the_path_and_the_fix(server_url: str, tmp_path: Path) -> None:
    files = {"back.yaml": BACK_IN_TIME, "tool.yaml": UNKNOWN_TOOL, "key.yaml": UNKNOWN_KEY}
    for name, text in files.items():
        (tmp_path / name).write_text(text)
    good = write_features_pass(tmp_path)
    report = tmp_path / "report.xml"

    done = run_scenarios(server_url, *(tmp_path / name for name in files), good, "--junit", report)
    assert done.returncode == 2, done.stdout + done.stderr
    err = done.stderr
    assert (f"{tmp_path / 'back.yaml'}, line 6: steps[1].at: 2026-01-05T00:00:00Z is before the scenario's time "
            "then, 2026-01-10T00:00:00Z: the clock only moves forward") in err
    assert (f"{tmp_path / 'tool.yaml'}, line 6: steps[0].do[0].grant_credits: no tool is named 'grant_credits' "
            "(did you mean grant_credit") in err
    assert (f"{tmp_path / 'key.yaml'}, line 6: steps[0].evnts: unknown key (did you mean events or eventsFile?); "
            "the keys here are: at, advance, events, eventsFile, do, expect, expectError") in err
    # the readable file still ran
    assert "4 scenario(s), 1 passed, 3 unreadable" in done.stdout
    cases = junit_cases(report)
    assert cases["Features that pass"].find("failure") is None
    errors = [case.find("error") for name, case in cases.items() if name.endswith(".yaml")]
    assert len(errors) == 3 and all(error is not None for error in errors)


# Two advance invoices of one period: acme on A (a 31.00 fee in advance) from 1 January is moved on 10 January to B
# (62.00) from its first instant: A's advance invoice is credited whole and B's first period invoiced anew.
TWO_ADVANCE_INVOICES = """
scenario: A plan corrected from its first instant
start: "2026-01-01"
setup:
  plans:
    - name: A
      pricingCycleConfig: {interval: MONTHLY, startOffset: {dayOffset: "1"}, gracePeriod: 0}
      rateCards:
        fixedFeeRateCards: [{id: a_base, invoiceTiming: IN_ADVANCE, rateValues: [{currency: USD, rate: "31"}]}]
    - name: B
      pricingCycleConfig: {interval: MONTHLY, startOffset: {dayOffset: "1"}, gracePeriod: 0}
      rateCards:
        fixedFeeRateCards: [{id: b_base, invoiceTiming: IN_ADVANCE, rateValues: [{currency: USD, rate: "62"}]}]
  customers:
    - {id: c1, name: C1, account: {id: acme, name: Acme, pricePlanId: A, effectiveFrom: "2026-01-01"}}
steps:
  - at: "2026-01-10"
    do:
      - update_account: {accountId: acme, pricePlanId: B, effectiveFrom: "2026-01-01"}
expect:
  invoices:
    acme:
EXPECTED
"""


def test_two_invoices_of_one_name_are_both_expected_and_written(server_url: str, tmp_path: Path) -> None:
    """Invoices sharing a name (two advance invoices of one period) are told apart by the order they were issued
    in: "2026-01-01 advance" then "2026-01-01 advance #2". An account listing one of them does not pass: the other
    is an unexpected invoice, never one compared as if it were the first."""
    file = tmp_path / "two.yaml"
    # January's own invoice carries February's fee, in advance
    january = '      "2026-01-01": {status: DRAFT, total: "62.00"}'
    file.write_text(TWO_ADVANCE_INVOICES.replace(
        "EXPECTED", '      "2026-01-01 advance": {status: DUE, total: "62.00"}\n' + january))
    one = run_scenarios(server_url, file)
    assert one.returncode == 1, one.stdout + one.stderr
    assert "two.yaml › expect › invoices › acme › 2026-01-01 advance › total: expected \"62.00\", got \"31.00\"" \
        in one.stdout, one.stdout
    assert ('two.yaml › expect › invoices › acme › 2026-01-01 advance #2: unexpected invoice (DUE, total "62.00")'
            in one.stdout), one.stdout

    both = ('      "2026-01-01 advance": {status: DUE, total: "31.00"}   # A\'s, credited whole\n'
            '      "2026-01-01 advance #2": {status: DUE, total: "62.00"}   # B\'s\n'
            + january)
    file.write_text(TWO_ADVANCE_INVOICES.replace("EXPECTED", both))
    passed = run_scenarios(server_url, file)
    assert passed.returncode == 0, passed.stdout + passed.stderr

    # --update-golden writes both, each under its own name, and a second run changes nothing
    file.write_text(TWO_ADVANCE_INVOICES.replace("EXPECTED", "      {}"))
    first = run_scenarios(server_url, file, "--update-golden")
    assert first.returncode == 0, first.stdout + first.stderr
    written = file.read_text()
    assert re.search(r'"2026-01-01 advance":\s*\n\s*status: DUE\n\s*total: "31.00"', written), written
    assert re.search(r'"2026-01-01 advance #2":\s*\n\s*status: DUE\n\s*total: "62.00"', written), written
    again = run_scenarios(server_url, file, "--update-golden")
    assert again.returncode == 0 and "UPDATED" not in again.stdout, again.stdout
    assert file.read_text() == written
