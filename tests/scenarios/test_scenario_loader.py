"""Reading scenario files (no database): the timeline, the events' defaults, and errors that name the file,
the line, the path in the file and the fix."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from mcp_server.scenarios.errors import ScenarioFileError
from mcp_server.scenarios.loader import load_scenario


def scenario(tmp_path: Path, body: str, name: str = "s.yaml") -> Path:
    file = tmp_path / name
    file.write_text('scenario: S\nstart: "2026-01-31"\n' + body)
    return file


def refused(file: Path) -> ScenarioFileError:
    with pytest.raises(ScenarioFileError) as caught:
        load_scenario(file)
    return caught.value


def test_steps_get_their_instants_and_events_their_defaults(tmp_path: Path) -> None:
    (tmp_path / "usage.jsonl").write_text('{"accountId": "a", "schemaName": "s"}\n'
                                          '{"accountId": "a", "schemaName": "s", "id": "mine", '
                                          '"timestamp": "2026-02-01T00:00:00Z"}\n')
    loaded = load_scenario(scenario(tmp_path, """
steps:
  - advance: P1M          # from Jan 31: Feb 28 (calendar-aware, as advance_clock)
    events:
      - {accountId: a, schemaName: s, attributes: {tokens: 12.50}}
      - {id: e2, accountId: a, schemaName: s, timestamp: "2026-02-27T10:00:00Z"}
    eventsFile: usage.jsonl
  - at: 2026-03-01        # unquoted: still the text of an instant
  - {}                    # no time: the same instant
"""))
    assert [step.at for step in loaded.steps] == [datetime(2026, 2, 28, tzinfo=UTC), datetime(2026, 3, 1, tzinfo=UTC),
                                                  datetime(2026, 3, 1, tzinfo=UTC)]
    assert loaded.steps[0].events == [
        {"id": "steps[0].events[0]", "timestamp": "2026-02-28T00:00:00Z", "accountId": "a", "schemaName": "s",
         "attributes": {"tokens": "12.50"}},  # an unquoted number keeps its digits
        {"id": "e2", "timestamp": "2026-02-27T10:00:00Z", "accountId": "a", "schemaName": "s"},
        {"id": "steps[0].eventsFile:1", "timestamp": "2026-02-28T00:00:00Z", "accountId": "a", "schemaName": "s"},
        {"id": "mine", "timestamp": "2026-02-01T00:00:00Z", "accountId": "a", "schemaName": "s"},
    ]


def test_amounts_are_the_text_written(tmp_path: Path) -> None:
    loaded = load_scenario(scenario(tmp_path, """
expect:
  invoices:
    acme:
      2026-01-01: {total: 71.00, lines: [{name: fee, amount: "19.0", quantity: 1}]}
"""))
    assert loaded.expect is not None
    invoice = loaded.expect.invoices["acme"]["2026-01-01"]
    assert (invoice.total, invoice.lines[0].amount, invoice.lines[0].quantity) == ("71.00", "19.0", "1")


@pytest.mark.parametrize(("body", "where"), [
    ('steps:\n  - at: "2026-02-10"\n  - at: "2026-02-01"\n',
     'line 5: steps[1].at: 2026-02-01T00:00:00Z is before the scenario\'s time then, 2026-02-10T00:00:00Z: the clock '
     'only moves forward; order the steps by time, or start the scenario earlier'),
    ('steps:\n  - at: "2026-01-01"\n',
     "line 4: steps[0].at: 2026-01-01T00:00:00Z is before the scenario's time then, 2026-01-31T00:00:00Z"),
    ('steps:\n  - {at: "2026-02-10", advance: P1D}\n',
     "line 4: steps[0]: give `at` (an instant) or `advance` (a duration), not both"),
    ('steps:\n  - advance: 1 month\n', "line 4: steps[0].advance: '1 month' is not an ISO-8601 duration"),
    ('steps:\n  - at: "2026-02-10"\n    events: [{accountId: a, schemaName: s, timestamp: "2026-02-11"}]\n',
     "line 5: steps[0].events[0]: the timestamp 2026-02-11 is after the step's time 2026-02-10T00:00:00Z, so it "
     "has not happened yet; date it at or before the step, or move the step later"),
    ('steps:\n  - do:\n      - advance_clock: {by: P1D}\n',
     "line 5: steps[0].do[0].advance_clock: a scenario moves its clock by its steps: move the clock with the "
     "step's `at` (an instant) or `advance` (a duration)"),
    ('steps:\n  - do:\n      - {get_clock: {}, get_account: {accountId: a}}\n',
     "line 5: steps[0].do[0]: each item names one tool and its arguments"),
    ('steps:\n  - do:\n      - list_invoice: {}\n',
     "line 5: steps[0].do[0].list_invoice: no tool is named 'list_invoice' (did you mean list_invoices"),
    ('steps:\n  - eventsFile: missing.jsonl\n',
     "line 4: steps[0].eventsFile: 'missing.jsonl' is not a file next to the scenario file"),
    ('setup:\n  pricing: ../nowhere.yaml\n', "line 4: setup.pricing: '../nowhere.yaml' is not a file"),
    ('expect:\n  invoices:\n    acme:\n      January: {total: "1.00"}\n',
     "line 6: expect.invoices.acme.January: 'January' is not a period's name: name a period by its start date"),
    ('expect:\n  invoices:\n    acme:\n      "2026-01-01": {total: true}\n',
     'line 6: expect.invoices.acme.2026-01-01.total: write it as a quoted decimal string, e.g. "71.00"'),
    ('expect:\n  wallets:\n    acme: {balence: "1.00"}\n',
     "line 5: expect.wallets.acme.balence: unknown key (did you mean balance?); the keys here are: balance, "
     "availableBalance, accruedCharges, scheduledCredits, overage"),
    ("stepz: []\n", "line 3: stepz: unknown key (did you mean steps or setup?)"),
    # a duration past year 9999 is the file's mistake (exit 2), not a crash of the run
    ('steps:\n  - advance: P9000Y\n',
     "line 4: steps[0].advance: P9000Y from 2026-01-31T00:00:00Z is past the year 9999; give a shorter duration"),
    # a metric bucket, grouped or not, is named as periods are: checked before any database, as they are
    ('expect:\n  metrics:\n    - startTime: "2026-01-01"\n      endTime: "2026-02-01"\n'
     '      metricQueries: [{id: calls, name: USAGE, aggregationPeriod: MONTH}]\n'
     '      values: {calls: {January: "1"}}\n',
     "line 8: expect.metrics[0].values.calls.January: 'January' is not a bucket's name: name a bucket by its "
     'start date ("2026-01-01"), or by its start instant when it starts during a day'),
    ('steps:\n  - at: "2026-02-10"\n    expect:\n      metrics:\n        - startTime: "2026-01-01"\n'
     '          endTime: "2026-02-01"\n'
     '          metricQueries: [{id: revenue, name: REVENUE, aggregationPeriod: MONTH, groupBy: ACCOUNT_ID}]\n'
     '          values: {revenue: {acme: {"2026-01-01": "1.00", "2026-02": "1.00"}}}\n',
     "line 10: steps[0].expect.metrics[0].values.revenue.acme.2026-02: '2026-02' is not a bucket's name"),
    # a value that fits neither form of a union is named by its path in the file, not pydantic's member names
    ('expect:\n  metrics:\n    - startTime: "2026-01-01"\n      endTime: "2026-02-01"\n'
     '      metricQueries: [{id: calls, name: USAGE, aggregationPeriod: MONTH}]\n'
     '      values: {calls: {"2026-01-01": null}}\n',
     "line 8: expect.metrics[0].values.calls.2026-01-01: should be text; got null: quote it\n"
     "  and line 8: expect.metrics[0].values.calls.2026-01-01: should be a mapping (key: value); got null"),
])
def test_a_file_that_cannot_run_is_refused_naming_where(tmp_path: Path, body: str, where: str) -> None:
    file = scenario(tmp_path, body)
    error = refused(file)
    assert str(error).startswith(f"{file}, {where}"), str(error)


METRIC = 'startTime: "2026-01-01", endTime: "2026-02-01", metricQueries: [{id: q, name: USAGE}]'


@pytest.mark.parametrize(("body", "where"), [
    ("expect: {}\n", "line 3: expect: checks nothing: write at least one of invoices, wallets, entitlements, metrics "
                     "under it, or remove `expect`"),
    ("expect:\n", "line 3: expect: checks nothing: write at least one of invoices, wallets"),
    ('steps:\n  - at: "2026-02-10"\n    expect: {}\n', "line 5: steps[0].expect: checks nothing: write at least one"),
    ("expect:\n  invoices: {}\n", "line 4: expect.invoices: checks nothing: name an account and its invoices"),
    ('expect:\n  invoices:\n    acme:\n      "2026-01-01": {}\n',
     "line 6: expect.invoices.acme.2026-01-01: checks nothing of this invoice: write at least one of status, plan, "
     "end, total, subTotal, trueUp, creditsApplied, amountDue, creditNotesTotal, lines (e.g. `status: DUE`)"),
    ('expect:\n  invoices:\n    acme:\n      "2026-01-01": {status: DUE, lines: null}\n',
     "line 6: expect.invoices.acme.2026-01-01.lines: checks nothing: list the invoice's lines (`lines: []` expects "
     "an invoice without lines), or remove `lines`"),
    ("expect:\n  wallets: {}\n", "line 4: expect.wallets: checks nothing: name an account and what its wallet"),
    ("expect:\n  wallets:\n    acme: {}\n",
     "line 5: expect.wallets.acme: checks nothing of this wallet: write at least one of balance, availableBalance, "
     "accruedCharges, scheduledCredits, overage, or remove it"),
    ("expect:\n  entitlements: []\n", "line 4: expect.entitlements: checks nothing: list check_entitlement"),
    ("expect:\n  entitlements:\n    - {accountId: acme, featureId: tokens, quantity: 10}\n",
     "line 5: expect.entitlements[0]: checks nothing of the answer: write at least one of entitled, reason, used, "
     "limit, remaining, or remove it"),
    ("expect:\n  metrics: []\n", "line 4: expect.metrics: checks nothing: list get_metrics calls"),
    (f"expect:\n  metrics:\n    - {{{METRIC}, values: {{}}}}\n",
     "line 5: expect.metrics[0].values: checks nothing: write the values expected per query id"),
    (f"expect:\n  metrics:\n    - {{{METRIC}, values: {{q: {{}}}}}}\n",
     "line 5: expect.metrics[0].values.q: checks nothing: write the buckets expected"),
    (f"expect:\n  metrics:\n    - {{{METRIC}, values: {{q: {{acme: {{}}}}}}}}\n",
     "line 5: expect.metrics[0].values.q.acme: checks nothing: write the buckets expected"),
    ('expect:\n  metrics:\n    - startTime: "2026-01-01"\n      endTime: "2026-02-01"\n'
     "      metricQueries: [{id: q, name: USAGE}, {id: r, name: EVENTS}]\n"
     '      values: {q: {"2026-01-01": "1"}}\n',
     "line 7: expect.metrics[0].metricQueries[1]: checks nothing: no values are expected for query 'r'; write "
     "them under `values: {r: ...}`, or remove the query"),
])
def test_an_expectation_that_checks_nothing_is_refused(tmp_path: Path, body: str, where: str) -> None:
    """An expectation that is empty could never fail: the file is refused, naming where and the fix."""
    file = scenario(tmp_path, body)
    error = refused(file)
    assert str(error).startswith(f"{file}, {where}"), str(error)


def test_an_account_without_invoices_and_an_invoice_without_lines_are_expectations(tmp_path: Path) -> None:
    """`acme: {}` expects that acme has no invoice (an account listed lists every invoice), and `lines: []` an
    invoice without lines: both can fail, so both are read."""
    loaded = load_scenario(scenario(tmp_path, 'expect:\n  invoices:\n    acme: {}\n'
                                              '    globex: {"2026-01-01": {lines: []}}\n'))
    assert loaded.expect is not None
    assert loaded.expect.invoices["acme"] == {}
    assert loaded.expect.invoices["globex"]["2026-01-01"].lines == []


def test_a_bad_events_file_line_is_named(tmp_path: Path) -> None:
    (tmp_path / "usage.jsonl").write_text('{"accountId": "a", "schemaName": "s"}\n{"accountId": \n')
    error = refused(scenario(tmp_path, 'steps:\n  - eventsFile: usage.jsonl\n'))
    assert "steps[0].eventsFile: usage.jsonl, line 2: line 2 is not valid JSON" in str(error)


def test_a_file_that_is_not_a_scenario(tmp_path: Path) -> None:
    file = tmp_path / "plans.yaml"
    file.write_text("- name: Basic\n")
    assert "should be a mapping with `scenario:`" in str(refused(file))
    file.write_text("scenario: [unclosed\n")
    assert str(refused(file)).startswith(f"{file}: is not valid YAML: ")
    file.write_text("start: '2026-01-01'\n")
    assert str(refused(file)) == f"{file}, line 1: scenario: is required here; add it"

