"""Comparing an expectation block with what the engine said, into readable differences.

Only what the file writes is compared (a value written as null expects null), with two rules of completeness: an account under `invoices` must
list every invoice it has (a missing or an unexpected one is a difference), and a written `lines` list must
name every top-level line of its invoice, in order. Values are compared as the text the engine returns:
"71.00" is not "71.0"."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from mcp_server.scenarios.errors import labels
from mcp_server.scenarios.model import Expectations, InvoiceExpect, LineExpect
from mcp_server.scenarios.observe import ENTITLEMENT_FIELDS, WALLET_FIELDS, Observation
from mcp_server.scenarios.times import parse, parse_invoice_name, period_name

Where = tuple[str | int, ...]


@dataclass(frozen=True)
class Difference:
    path: tuple[str, ...]  # file-relative: expect › invoices › acme › 2026-01-01 › total
    message: str

    def render(self, file_name: str) -> str:
        return " › ".join([file_name, *self.path]) + f": {self.message}"


def shown(value: Any) -> str:
    """A value as a difference quotes it: "71.00", true, null."""
    return json.dumps(value)


def _differ(path: tuple[str, ...], expected: Any, got: Any) -> list[Difference]:
    """A written value against what the engine said; a value written as null expects null (--update-golden writes
    null where the engine says null), so callers pass only the keys the file writes."""
    return [] if expected == got else [
        Difference(path, f"expected {shown(expected)}, got {shown(got)}")]


def compare(where: Where, expected: Expectations, seen: Observation) -> list[Difference]:
    base = labels(where)
    found: list[Difference] = []
    for account, invoices in expected.invoices.items():
        found += _account_invoices((*base, "invoices", account), account, invoices, seen.invoices[account])
    for account, wallet in expected.wallets.items():
        found += _fields((*base, "wallets", account), wallet.model_dump(exclude_unset=True), seen.wallets[account],
                         WALLET_FIELDS)
    for i, entitlement in enumerate(expected.entitlements):
        found += _fields((*base, f"entitlements[{i}]"), entitlement.model_dump(exclude_unset=True), seen.entitlements[i],
                         ENTITLEMENT_FIELDS)
    for i, metric in enumerate(expected.metrics):
        found += _metric((*base, f"metrics[{i}]", "values"), metric.values, seen.metrics[i])
    return found


def _fields(path: tuple[str, ...], expected: dict[str, Any], got: dict[str, Any] | str,
            names: tuple[str, ...]) -> list[Difference]:
    if isinstance(got, str):
        return [Difference(path, got)]
    return [d for name in names if name in expected for d in _differ((*path, name), expected[name], got.get(name))]


def find_invoice(name: str, invoices: list[dict[str, Any]]) -> dict[str, Any] | None:
    """The invoice named `name` (its period's start date or instant, " advance" for an advance invoice, " #2" for
    the second of that name)."""
    wanted = parse_invoice_name(name, "")
    return next((invoice for invoice in invoices if invoice_key(invoice) == wanted), None)


def invoice_key(invoice: dict[str, Any]) -> tuple[Any, bool, int]:
    """(start, advance, ordinal) of an observed invoice, as parse_invoice_name reads its name."""
    return invoice["start"], invoice.get("advance", False), invoice.get("ordinal", 1)


def _account_invoices(path: tuple[str, ...], account: str, expected: dict[str, InvoiceExpect],
                      got: list[dict[str, Any]] | str) -> list[Difference]:
    if isinstance(got, str):
        return [Difference(path, got)]
    found: list[Difference] = []
    matched = set()
    periods = ", ".join(invoice["period"] for invoice in got) or "none"
    for name, invoice in expected.items():
        actual = find_invoice(name, got)
        if actual is None:
            found.append(Difference((*path, name), f"expected an invoice for this period; {account} has none "
                                                   f"(its periods: {periods})"))
            continue
        matched.add(actual["period"])
        found += _invoice((*path, name), invoice, actual)
    for actual in got:
        if actual["period"] not in matched:
            found.append(Difference((*path, actual["period"]), f"unexpected invoice ({actual['status']}, total "
                                    f"{shown(actual['total'])}): list every invoice of an account you expect "
                                    "(--update-golden adds it)"))
    return found


def _invoice(path: tuple[str, ...], expected: InvoiceExpect, got: dict[str, Any]) -> list[Difference]:
    written = expected.model_dump(exclude={"lines"}, exclude_unset=True)
    if expected.end is not None:  # an instant, however written
        written["end"] = period_name(parse(expected.end, "end"))
    found = [d for key, value in written.items() for d in _differ((*path, key), value, got.get(key))]
    if expected.lines is not None:
        found += _lines((*path, "lines"), expected.lines, got["lines"])
    return found


def _lines(path: tuple[str, ...], expected: list[LineExpect], got: list[dict[str, Any]]) -> list[Difference]:
    found: list[Difference] = []
    remaining = list(got)
    pairs = []
    for line in expected:
        actual = next((candidate for candidate in remaining if candidate["name"] == line.name), None)
        if actual is None:
            names = ", ".join(candidate["name"] for candidate in got) or "none"
            found.append(Difference((*path, line.name), f"expected this line; the invoice has none of that name "
                                                        f"(its lines: {names})"))
            continue
        remaining.remove(actual)
        pairs.append((line, actual))
    for actual in remaining:
        found.append(Difference((*path, actual["name"]), f"unexpected line (amount {shown(actual['amount'])}): a "
                                                         "written lines list names every line of the invoice"))
    for line, actual in pairs:
        for key, value in line.model_dump(exclude={"name"}, exclude_unset=True).items():
            found += _differ((*path, line.name, key), value, actual.get(key))
    expected_order = [line.name for line, _ in pairs]
    actual_order = [actual["name"] for actual in got if any(actual is b for _, b in pairs)]
    if not found and expected_order != actual_order:
        found.append(Difference(path, f"expected the lines in the order {', '.join(expected_order)}; the invoice "
                                      f"has {', '.join(actual_order)}"))
    return found


def _metric(path: tuple[str, ...], expected: dict[str, dict[str, Any]],
            got: dict[str, dict[str, dict[str, str]]] | str) -> list[Difference]:
    if isinstance(got, str):
        return [Difference(path, got)]
    found: list[Difference] = []
    for query, entries in expected.items():
        if query not in got:
            found.append(Difference((*path, query), f"no query has this id (the ids: {', '.join(got)})"))
            continue
        for key, value in entries.items():
            if isinstance(value, dict):  # grouped: {group value: {bucket: value}}
                for bucket, number in value.items():
                    found += _bucket((*path, query, key, bucket), number, got[query].get(key))
            else:
                found += _bucket((*path, query, key), value, got[query].get(""))
    return found


def _bucket(path: tuple[str, ...], expected: str, series: dict[str, str] | None) -> list[Difference]:
    if series is None:
        return [Difference(path[:-1], "no such series in the result (a group value with no data, or a grouped "
                                      "query written without its group)")]
    bucket = path[-1]
    start = parse(bucket, "")
    got = next((value for name, value in series.items() if parse(name, "") == start), None)
    if got is None:
        return [Difference(path, f"expected {shown(expected)}; the series has no bucket starting then (its "
                                 f"buckets: {', '.join(series)})")]
    return _differ(path, expected, got)
