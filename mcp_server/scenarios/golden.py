"""`--update-golden`: rewrite a file's expectations from what the engine said, keeping everything else.

ruamel.yaml's round trip keeps comments, key order and quoting; only values that differ are assigned, so a
comment stays on its line, and a file that already matches is not written at all (a second run changes
nothing). What is filled: every invoice of every account under `invoices` (status and total; the lines of an
invoice it adds or that lists them; any other key already written; invoices that no longer exist are
removed), and the values already written under `wallets`, `entitlements` and `metrics`.
"""

from __future__ import annotations

import io
import itertools
import re
from decimal import Decimal
from pathlib import Path
from typing import Any

from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap, CommentedSeq
from ruamel.yaml.scalarstring import DoubleQuotedScalarString

from mcp_server.scenarios.compare import Difference, compare, find_invoice, invoice_key
from mcp_server.scenarios.loader import load_scenario
from mcp_server.scenarios.observe import ENTITLEMENT_FIELDS, INVOICE_FIELDS, WALLET_FIELDS, Observation
from mcp_server.scenarios.runner import Check
from mcp_server.scenarios.times import parse, parse_invoice_name
from mcp_server.scenarios.yaml_io import jsonable, load_exact
from togai_engine.errors import InvalidInput

# Fields written as quoted decimal strings (money and quantities); the others (status, plan, reason, end,
# booleans) plainly.
_EXACT = {"total", "subTotal", "trueUp", "creditsApplied", "amountDue", "creditNotesTotal", "amount", "quantity",
          "balance", "availableBalance", "accruedCharges", "scheduledCredits", "used", "limit", "remaining"}
_ALWAYS = ("status", "total")  # written into every invoice, with its lines
_SEQUENCE_ITEM = re.compile(r"^( *)- ")
_KEY_LINE = re.compile(r"^( *)[^\s#-][^#]*:\s*(#.*)?$")


def _yaml(text: str) -> YAML:
    """A round-trip YAML that indents lists as the file does (`key:\\n  - item`, or `key:\\n- item`)."""
    offset = 2
    lines = text.splitlines()
    for before, line in itertools.pairwise(lines):
        item, key = _SEQUENCE_ITEM.match(line), _KEY_LINE.match(before)
        if item and key:
            offset = max(0, len(item[1]) - len(key[1]))
            break
    yaml = YAML()
    yaml.preserve_quotes = True
    yaml.width = 4096  # never fold a long line the file did not fold
    yaml.indent(mapping=2, sequence=offset + 2, offset=offset)
    return yaml


def rewrite(file: Path, checks: list[Check]) -> int:
    """Rewrites `file`'s expectations from `checks`; returns how many values changed (0: file untouched)."""
    text = file.read_text(encoding="utf-8")
    yaml = _yaml(text)
    document = yaml.load(text)
    writer = _Writer()
    for check in checks:
        node = document
        for part in check.where:
            node = node[part]
        writer.expectations(node, check.seen)
    if writer.changes:
        out = io.StringIO()
        yaml.dump(document, out)
        file.write_text(out.getvalue(), encoding="utf-8")
    return writer.changes


def still_different(file: Path, checks: list[Check]) -> list[Difference]:
    """What the rewritten file still expects otherwise than the engine said (what no rewrite can fix: a
    bucket or a query the result does not have, an account that cannot be read)."""
    loaded = load_scenario(file)
    found = []
    for check in checks:
        expected = loaded.expect if check.where == ("expect",) else loaded.steps[int(check.where[1])].step.expect
        assert expected is not None
        found += compare(check.where, expected, check.seen)
    return found


def _value(key: str, value: Any) -> Any:
    return DoubleQuotedScalarString(value) if key in _EXACT and isinstance(value, str) else value


def _same(current: Any, value: Any) -> bool:
    """Whether the file already says `value`: the same text (however quoted, or an unquoted number with those
    digits, as the scenario loader reads it), or the same true/false/null."""
    if isinstance(value, str):
        if isinstance(current, int | float) and not isinstance(current, bool):
            return _as_loaded(current) == value
        return isinstance(current, str) and str(current) == value
    return current is value or (type(current) is type(value) and current == value)


def _same_instant(current: Any, name: str) -> bool:
    try:
        return parse(str(current), "") == parse(name, "")
    except InvalidInput:
        return False


def _as_loaded(number: int | float) -> Any:
    """An unquoted number of the file as the loader reads it: ruamel keeps the digits written (19.00), and
    the loader's text of them is what the comparison compares."""
    out = io.StringIO()
    YAML().dump({"value": number}, out)
    data, _ = load_exact(out.getvalue(), "value")
    return jsonable(data["value"]) if isinstance(data["value"], Decimal) else str(data["value"])


def _block() -> CommentedMap:
    mapping = CommentedMap()
    mapping.fa.set_block_style()
    return mapping


class _Writer:
    def __init__(self) -> None:
        self.changes = 0

    def set(self, mapping: CommentedMap, key: str, value: Any, *, position: int | None = None) -> None:
        if key in mapping and _same(mapping[key], value):
            return
        self.changes += 1
        if key in mapping or position is None:
            mapping[key] = _value(key, value)
        else:
            mapping.insert(min(position, len(mapping)), key, _value(key, value))

    def update_written(self, mapping: Any, seen: dict[str, Any] | str, names: tuple[str, ...]) -> None:
        if isinstance(mapping, CommentedMap) and isinstance(seen, dict):
            for name in names:
                if name in mapping:
                    self.set(mapping, name, seen.get(name))

    def expectations(self, node: CommentedMap, seen: Observation) -> None:
        for account, invoices in (node.get("invoices") or {}).items():
            observed = seen.invoices.get(str(account))
            if isinstance(observed, list):
                self.account(invoices, observed)
        for account, wallet in (node.get("wallets") or {}).items():
            self.update_written(wallet, seen.wallets.get(str(account), ""), WALLET_FIELDS)
        for entitlement, observed in zip(node.get("entitlements") or [], seen.entitlements, strict=False):
            self.update_written(entitlement, observed, ENTITLEMENT_FIELDS)
        for metric, observed in zip(node.get("metrics") or [], seen.metrics, strict=False):
            if isinstance(observed, dict):
                self.metric(metric.get("values") or {}, observed)

    def account(self, invoices: CommentedMap, observed: list[dict[str, Any]]) -> None:
        if not invoices:  # `acme: {}`, to be filled: one invoice under another, not all on one line
            invoices.fa.set_block_style()
        for key in list(invoices):
            if find_invoice(str(key), observed) is None:
                del invoices[key]
                self.changes += 1
        keys = {parse_invoice_name(str(key), ""): key for key in invoices}
        for position, invoice in enumerate(observed):
            key = keys.get(invoice_key(invoice))
            new = key is None or not isinstance(invoices[key], CommentedMap)
            if key is None:
                key = DoubleQuotedScalarString(invoice["period"])
                invoices.insert(position, key, _block())
                self.changes += 1
            elif new:
                invoices[key] = _block()
            self.invoice(invoices[key], invoice, with_lines=new)

    def invoice(self, mapping: CommentedMap, invoice: dict[str, Any], *, with_lines: bool) -> None:
        """status and total always; lines into a new invoice, or where the file lists them; other keys where
        written (an expectation the file keeps short stays short)."""
        for position, name in enumerate(_ALWAYS):
            self.set(mapping, name, invoice[name], position=position)
        for name in INVOICE_FIELDS:
            if name in mapping and name not in _ALWAYS:
                self.set(mapping, name, invoice[name])
        if "end" in mapping and not _same_instant(mapping["end"], invoice["end"]):  # an instant, however written
            self.set(mapping, "end", invoice["end"])
        if with_lines or "lines" in mapping:
            self.lines(mapping, invoice["lines"])

    def lines(self, mapping: CommentedMap, observed: list[dict[str, Any]]) -> None:
        before = self.changes
        current = mapping.get("lines")
        items = list(current) if isinstance(current, list) else []
        kept: list[Any] = []
        for line in observed:
            item = next((i for i in items if isinstance(i, CommentedMap) and i.get("name") == line["name"]), None)
            if item is None:
                item = CommentedMap()
                item.fa.set_flow_style()
                self.changes += 1
            else:
                items.remove(item)
            self.set(item, "name", line["name"])
            self.set(item, "amount", line["amount"])
            if line["quantity"] is not None:
                self.set(item, "quantity", line["quantity"])
            if "description" in item:
                self.set(item, "description", line["description"])
            kept.append(item)
        if isinstance(current, CommentedSeq) and [id(item) for item in current] == [id(item) for item in kept]:
            return
        self.changes += len(items)  # lines the invoice no longer has
        if self.changes == before:  # the same lines, in the invoice's order now
            self.changes += 1
        if isinstance(current, CommentedSeq):
            current.clear()
            current.extend(kept)
        else:
            mapping["lines"] = CommentedSeq(kept)

    def metric(self, values: CommentedMap, observed: dict[str, dict[str, dict[str, str]]]) -> None:
        for query, entries in values.items():
            series = observed.get(str(query), {})
            for key, value in (entries or {}).items():
                if isinstance(value, CommentedMap):
                    self.buckets(value, series.get(str(key)))
                else:
                    self.buckets(entries, series.get(""), only=key)

    def buckets(self, mapping: CommentedMap, series: dict[str, str] | None, only: Any = None) -> None:
        if series is None:
            return
        for key in [only] if only is not None else list(mapping):
            start = parse(str(key), "")
            got = next((value for name, value in series.items() if parse(name, "") == start), None)
            if got is not None and not _same(mapping[key], got):
                mapping[key] = DoubleQuotedScalarString(got)
                self.changes += 1
