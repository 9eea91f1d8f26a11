"""Reading a scenario file into what the runner needs: every step's instant worked out, events with their
defaults, tool names checked, files it names read. Anything wrong is a ScenarioFileError (exit 2) before a
database is touched."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from functools import cache
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from mcp_server.registry import SPECS
from mcp_server.scenarios.errors import Path_, ScenarioFileError, closest, from_validation
from mcp_server.scenarios.model import EntitlementExpect, Expectations, InvoiceExpect, Scenario, Step, WalletExpect
from mcp_server.scenarios.times import iso, parse, period_of
from mcp_server.scenarios.yaml_io import jsonable, line_of, load_exact
from mcp_server.server import load_tools
from togai_engine.common.durations import parse_duration
from togai_engine.errors import InvalidInput
from togai_engine.events.bulk import Malformed
from togai_engine.events.files import FileFormatError, file_format, read_events
from togai_engine.lab.plan_files import load_pricing_file

# Tools a step may not call: the clock is moved by the steps' `at` and `advance`, which the whole file's
# timeline (and the events' default timestamps) is worked out from.
CLOCK_TOOLS = {"advance_clock": "move the clock with the step's `at` (an instant) or `advance` (a duration)"}


@dataclass(frozen=True)
class Action:
    tool: str
    arguments: dict[str, Any]
    path: tuple[str | int, ...]


@dataclass(frozen=True)
class TimedStep:
    index: int
    at: datetime
    step: Step
    events: list[dict[str, Any]]  # inline events, then the events file's, with their defaults filled in
    event_labels: list[str]  # where each event came from, for a rejected event's message
    actions: list[Action]


@dataclass(frozen=True)
class Pricing:
    meters: list[dict[str, Any]]
    plans: list[dict[str, Any]]
    path: tuple[str | int, ...]  # where in the file they come from (setup.pricing, or setup)


@dataclass(frozen=True)
class LoadedScenario:
    file: Path
    name: str
    start: datetime
    pricing: list[Pricing]
    customers: list[dict[str, Any]]
    accounts: list[dict[str, Any]]
    steps: list[TimedStep]
    expect: Expectations | None  # checked at the end


@cache
def tool_names() -> tuple[str, ...]:
    load_tools()
    return tuple(sorted(SPECS))


class _Reader:
    def __init__(self, file: Path) -> None:
        self.file = file
        self.node: yaml.Node | None = None

    def error(self, path: Path_, message: str) -> ScenarioFileError:
        return ScenarioFileError(self.file, path, message, line_of(self.node, path))

    def instant(self, value: str, path: Path_) -> datetime:
        try:
            return parse(value, "")
        except InvalidInput as exc:
            raise self.error(path, exc.reason) from None

    def sibling(self, name: str, path: Path_) -> Path:
        target = (self.file.parent / name).resolve()
        if not target.is_file():
            raise self.error(path, f"{name!r} is not a file next to the scenario file (looked for {target}); "
                                   "the path is relative to the scenario file")
        return target


def load_scenario(file: Path) -> LoadedScenario:
    """The scenario in `file`; raises ScenarioFileError naming the path in the file and the fix."""
    reader = _Reader(file)
    try:
        text = file.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ScenarioFileError(file, (), f"cannot be read: {exc}") from None
    try:
        data, reader.node = load_exact(text, file.name)
    except yaml.YAMLError as exc:
        raise ScenarioFileError(file, (), f"is not valid YAML: {exc}") from None
    if not isinstance(data, dict):
        raise ScenarioFileError(file, (), "should be a mapping with `scenario:` (its name), `start:`, `setup:`, "
                                          "`steps:` and `expect:`; see mcp_server/scenarios/README.md")
    try:
        scenario = Scenario.model_validate(data)
    except ValidationError as exc:
        raise from_validation(file, Scenario, exc, lambda path: line_of(reader.node, path), data) from None
    start = reader.instant(scenario.start, ["start"])
    steps = _timeline(reader, scenario.steps, start)
    written = [(("steps", s.index, "expect"), s.step.expect) for s in steps if "expect" in s.step.model_fields_set]
    if "expect" in scenario.model_fields_set:
        written.append((("expect",), scenario.expect))
    for path, expectations in written:
        _check_checks_something(reader, path, expectations)
    checks = [(path, expectations) for path, expectations in written if expectations is not None]
    for path, expectations in checks:
        _check_periods(reader, path, expectations)
    return LoadedScenario(
        file=file, name=scenario.scenario, start=start, pricing=_pricing(reader, scenario),
        customers=[jsonable(c) for c in scenario.setup.customers],
        accounts=[jsonable(a) for a in scenario.setup.accounts], steps=steps, expect=scenario.expect)


def _pricing(reader: _Reader, scenario: Scenario) -> list[Pricing]:
    found = []
    setup = scenario.setup
    if setup.pricing is not None:
        path = ("setup", "pricing")
        try:
            meters, plans = load_pricing_file(reader.sibling(setup.pricing, path))
        except InvalidInput as exc:
            raise reader.error(path, f"{exc.message}; it is a `togai-engine plans apply` file") from None
        found.append(Pricing(jsonable(meters), jsonable(plans), path))
    if setup.meters or setup.plans:
        found.append(Pricing(jsonable(setup.meters), jsonable(setup.plans), ("setup",)))
    return found


def _timeline(reader: _Reader, steps: list[Step], start: datetime) -> list[TimedStep]:
    now = start
    timed = []
    for i, step in enumerate(steps):
        path: tuple[str | int, ...] = ("steps", i)
        if step.at is not None and step.advance is not None:
            raise reader.error(path, "give `at` (an instant) or `advance` (a duration), not both: split it "
                                     "into two steps")
        if step.at is not None:
            at = reader.instant(step.at, [*path, "at"])
            if at < now:
                raise reader.error([*path, "at"], f"{iso(at)} is before the scenario's time then, {iso(now)}: "
                                                  "the clock only moves forward; order the steps by time, or "
                                                  "start the scenario earlier")
        elif step.advance is not None:
            try:
                at = now + parse_duration(step.advance, "advance")
            except InvalidInput as exc:
                raise reader.error([*path, "advance"], exc.reason) from None
            except (OverflowError, ValueError):
                raise reader.error([*path, "advance"], f"{step.advance} from {iso(now)} is past the year 9999; "
                                                       "give a shorter duration") from None
        else:
            at = now
        events, labels = _events(reader, i, step, at)
        timed.append(TimedStep(index=i, at=at, step=step, events=events, event_labels=labels,
                               actions=_actions(reader, i, step)))
        now = at
    return timed


def _events(reader: _Reader, index: int, step: Step, at: datetime) -> tuple[list[dict[str, Any]], list[str]]:
    events: list[dict[str, Any]] = []
    labels: list[str] = []
    for j, event in enumerate(step.events):
        label = f"steps[{index}].events[{j}]"
        events.append(_with_defaults(reader, jsonable(event), label, at, ["steps", index, "events", j], ""))
        labels.append(label)
    if step.eventsFile is not None:
        path = ["steps", index, "eventsFile"]
        for label, event in _read_events_file(reader, reader.sibling(step.eventsFile, path), path, index):
            events.append(_with_defaults(reader, event, label, at, path, f"line {label.rsplit(':', 1)[1]} of "
                                         f"{step.eventsFile}: "))
            labels.append(label)
    return events, labels


def _read_events_file(reader: _Reader, file: Path, path: Path_, index: int) -> list[tuple[str, dict[str, Any]]]:
    try:
        fmt = file_format(file)
        with file.open(encoding="utf-8", newline="") as stream:
            read = list(read_events(stream, fmt))
    except (FileFormatError, OSError, UnicodeDecodeError) as exc:
        raise reader.error(path, f"{file.name}: {exc}") from None
    found = []
    first_line = 2 if fmt == "csv" else 1  # a CSV file's first line is its header
    for n, event in enumerate(read):
        line = n + first_line
        if isinstance(event, Malformed) or not isinstance(event, dict):
            reason = event.message if isinstance(event, Malformed) else "is not an event object"
            raise reader.error(path, f"{file.name}, line {line}: {reason}; fix that line")
        found.append((f"steps[{index}].eventsFile:{line}", event))
    return found


def _with_defaults(reader: _Reader, event: dict[str, Any], label: str, at: datetime, path: Path_,
                   where: str) -> dict[str, Any]:
    """The event with `timestamp` (the step's time) and `id` (its place in the file) when absent. A timestamp
    after the step's time is refused here: the engine would reject it, as it has not happened yet."""
    event = {"id": label, "timestamp": iso(at), **event}
    stamp = event["timestamp"]
    try:
        when = parse(stamp, "timestamp")
    except InvalidInput:
        return event  # the engine names what is wrong with it, as it would for any client
    if when > at:
        raise reader.error(path, f"{where}the timestamp {stamp} is after the step's time {iso(at)}, so it has not "
                                 "happened yet; date it at or before the step, or move the step later")
    return event


def _actions(reader: _Reader, index: int, step: Step) -> list[Action]:
    actions = []
    for j, item in enumerate(step.do):
        path = ("steps", index, "do", j)
        if len(item) != 1:
            raise reader.error(path, f"each item names one tool and its arguments (`- update_account: {{...}}`); "
                                     f"this one has {len(item)} keys ({', '.join(map(str, item)) or 'none'}): "
                                     "give each call its own item")
        ((tool, arguments),) = item.items()
        if tool in CLOCK_TOOLS:
            raise reader.error([*path, tool], f"a scenario moves its clock by its steps: {CLOCK_TOOLS[tool]}")
        if tool not in tool_names():
            near = closest(tool, tool_names())
            listed = "" if near else f"; the tools are: {', '.join(tool_names())}"
            raise reader.error([*path, tool], f"no tool is named {tool!r}{near}{listed}")
        actions.append(Action(tool=tool, arguments=jsonable(arguments or {}), path=(*path, tool)))
    return actions


def _fields_of(model: type[InvoiceExpect] | type[WalletExpect]) -> str:
    return ", ".join(model.model_fields)


ANSWER_FIELDS = ", ".join(name for name in EntitlementExpect.model_fields
                          if name not in ("accountId", "featureId", "quantity"))


def _check_checks_something(reader: _Reader, path: tuple[str | int, ...], expectations: Expectations | None) -> None:
    """An expectation that is empty (`expect: {}`, an invoice or a wallet `{}`, an entitlement question with no
    answer field, a metric query with no values...) could never fail, so the file is refused, naming where and the
    fix. Two empty forms do expect something and stay: `acme: {}` under invoices (an account listed lists every
    invoice: acme has none) and `lines: []` (an invoice without lines)."""
    if expectations is None or not expectations.model_fields_set:
        raise reader.error(path, f"checks nothing: write at least one of {', '.join(Expectations.model_fields)} "
                                 "under it, or remove `expect`")
    written = expectations.model_fields_set
    if "invoices" in written and not expectations.invoices:
        raise reader.error([*path, "invoices"], 'checks nothing: name an account and its invoices (`acme: '
                           '{"2026-01-01": {status: DUE}}`; `acme: {}` expects that acme has no invoice, and '
                           "--update-golden fills it in), or remove `invoices`")
    for account, invoices in expectations.invoices.items():
        for period, invoice in invoices.items():
            where = [*path, "invoices", account, period]
            if not invoice.model_fields_set:
                raise reader.error(where, f"checks nothing of this invoice: write at least one of "
                                          f"{_fields_of(InvoiceExpect)} (e.g. `status: DUE`); or write the account as "
                                          f"`{account}: {{}}` and run --update-golden, which writes each of its "
                                          "invoices' status and total")
            if "lines" in invoice.model_fields_set and invoice.lines is None:
                raise reader.error([*where, "lines"], "checks nothing: list the invoice's lines (`lines: []` expects "
                                                      "an invoice without lines), or remove `lines`")
    if "wallets" in written and not expectations.wallets:
        raise reader.error([*path, "wallets"], "checks nothing: name an account and what its wallet holds "
                                               '(`acme: {balance: "10.00"}`), or remove `wallets`')
    for account, wallet in expectations.wallets.items():
        if not wallet.model_fields_set:
            raise reader.error([*path, "wallets", account], f"checks nothing of this wallet: write at least one of "
                                                            f"{_fields_of(WalletExpect)}, or remove it")
    if "entitlements" in written and not expectations.entitlements:
        raise reader.error([*path, "entitlements"], "checks nothing: list check_entitlement questions with the "
                                                    "answer expected (`- {accountId: acme, featureId: tokens, "
                                                    "entitled: true}`), or remove `entitlements`")
    for i, entitlement in enumerate(expectations.entitlements):
        if not entitlement.model_fields_set - {"accountId", "featureId", "quantity"}:
            raise reader.error([*path, "entitlements", i], f"checks nothing of the answer: write at least one of "
                                                           f"{ANSWER_FIELDS}, or remove it")
    if "metrics" in written and not expectations.metrics:
        raise reader.error([*path, "metrics"], "checks nothing: list get_metrics calls with the values expected "
                                               "(see mcp_server/scenarios/README.md), or remove `metrics`")
    for i, metric in enumerate(expectations.metrics):
        where = [*path, "metrics", i]
        if not metric.values:
            raise reader.error([*where, "values"], 'checks nothing: write the values expected per query id '
                                                   '(`{tokens: {"2026-01-01": "12"}}`), or remove this item')
        for query, entries in metric.values.items():
            empty = [[query]] if not entries else [[query, group] for group, value in entries.items()
                                                   if isinstance(value, dict) and not value]
            for part in empty:
                raise reader.error([*where, "values", *part], 'checks nothing: write the buckets expected '
                                   '(`{"2026-01-01": "12"}`; with groupBy, per group value: `{acme: '
                                   '{"2026-01-01": "12"}}`), or remove it')
        for j, query in enumerate(metric.metricQueries):
            name = query.get("id")
            if isinstance(name, str) and name not in metric.values:
                raise reader.error([*where, "metricQueries", j], f"checks nothing: no values are expected for query "
                                                                 f"{name!r}; write them under `values: {{{name}: "
                                                                 "...}`, or remove the query")


def _check_periods(reader: _Reader, path: tuple[str | int, ...], expectations: Expectations) -> None:
    """Every period and metric bucket the expectations name is an instant: the comparison reads them as such."""
    for account, invoices in expectations.invoices.items():
        for period, invoice in invoices.items():
            for key, value in (("", period_of(period)), ("end", invoice.end)):
                if value is not None:
                    _check_instant(reader, [*path, "invoices", account, period, *([key] if key else [])], value,
                                   "period")
    for i, metric in enumerate(expectations.metrics):
        for query, entries in metric.values.items():
            for key, value in entries.items():
                where = [*path, "metrics", i, "values", query, key]
                # grouped, {group value: {bucket: value}}; else {bucket: value}
                buckets = [[*where, bucket] for bucket in value] if isinstance(value, dict) else [where]
                for bucket in buckets:
                    _check_instant(reader, bucket, str(bucket[-1]), "bucket")


def _check_instant(reader: _Reader, where: Path_, value: str, kind: str) -> None:
    try:
        parse(value, "")
    except InvalidInput:
        raise reader.error(where, f"{value!r} is not a {kind}'s name: name a {kind} by its start date "
                                  '("2026-01-01"), or by its start instant when it starts during a day '
                                  '("2026-01-15T12:00:00Z")') from None
