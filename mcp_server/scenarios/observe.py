"""Reading what an expectation block asks about, through the tools, in the shape the file writes it.

Values stay the text the engine returned ("71.00"), so comparing them is comparing strings. A read that
fails (an unknown account, say) is recorded as its error, which the comparison reports."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from mcp_server.scenarios.calls import Calls, ToolFailed, names_of
from mcp_server.scenarios.model import EntitlementExpect, Expectations, InvoiceExpect, MetricExpect
from mcp_server.scenarios.times import invoice_name, parse, period_name

# file key -> the invoice field it reads
INVOICE_FIELDS = {"status": "status", "plan": "pricePlanName", "total": "totalAmount", "subTotal": "subTotalAmount",
                  "trueUp": "trueUpAmount", "creditsApplied": "creditsApplied", "amountDue": "amountDue",
                  "creditNotesTotal": "creditNotesTotal"}
WALLET_FIELDS = ("balance", "availableBalance", "accruedCharges", "scheduledCredits", "overage")
ENTITLEMENT_FIELDS = ("entitled", "reason", "used", "limit", "remaining")


@dataclass
class Observation:
    """What the engine said at the expectation's time: per account its invoices (oldest first) or an error."""

    invoices: dict[str, list[dict[str, Any]] | str] = field(default_factory=dict)
    wallets: dict[str, dict[str, Any] | str] = field(default_factory=dict)
    entitlements: list[dict[str, Any] | str] = field(default_factory=list)
    metrics: list[dict[str, dict[str, dict[str, str]]] | str] = field(default_factory=list)


async def observe(calls: Calls, expectations: Expectations, path: tuple[str | int, ...]) -> Observation:
    seen = Observation()
    for account in expectations.invoices:
        seen.invoices[account] = await _read(_invoices(calls, account, expectations.invoices[account], path))
    for account in expectations.wallets:
        seen.wallets[account] = await _read(_wallet(calls, account, path))
    for entitlement in expectations.entitlements:
        seen.entitlements.append(await _read(_entitlement(calls, entitlement, path)))
    for metric in expectations.metrics:
        seen.metrics.append(await _read(_metrics(calls, metric, path)))
    return seen


async def _read(reading: Any) -> Any:
    try:
        return await reading
    except ToolFailed as exc:
        return f"could not be read: {exc.text}"


async def _invoices(calls: Calls, account: str, expected: dict[str, InvoiceExpect],
                    path: tuple[str | int, ...]) -> list[dict[str, Any]]:
    """The account's invoices. The summaries list_invoices returns carry every field but the lines: an invoice
    is read whole (get_invoice) only when its lines are expected, or when it is not expected at all (the diff
    and --update-golden show it whole). A year of invoices expected by their totals costs one page, not one
    call per invoice."""
    found = []
    summaries = await calls.invoices(account, path)
    for summary, (start, advance, ordinal) in zip(summaries, names_of(summaries), strict=True):
        name = invoice_name(start, advance, ordinal)
        wanted = expected.get(name)
        whole = wanted is None or wanted.lines is not None
        invoice = await calls.call("get_invoice", {"invoiceId": summary["id"]}, path) if whole else summary
        seen: dict[str, Any] = {key: invoice.get(name) for key, name in INVOICE_FIELDS.items()}
        seen["end"] = period_name(parse(invoice["endDate"], "endDate"))
        if whole:
            seen["lines"] = [{"name": line.get("rateCardName") or line["description"], "amount": line["value"],
                              "quantity": line.get("quantity"), "description": line["description"]}
                             for line in invoice["lineItems"]]
        seen["period"] = name
        seen["start"] = start
        seen["advance"] = advance
        seen["ordinal"] = ordinal
        found.append(seen)
    return found


async def _wallet(calls: Calls, account: str, path: tuple[str | int, ...]) -> dict[str, Any]:
    wallet = await calls.call("get_wallet_balance", {"accountId": account}, path)
    return {key: wallet.get(key) for key in WALLET_FIELDS}


async def _entitlement(calls: Calls, expected: EntitlementExpect, path: tuple[str | int, ...]) -> dict[str, Any]:
    arguments: dict[str, Any] = {"accountId": expected.accountId, "featureId": expected.featureId}
    if expected.quantity is not None:
        arguments["quantity"] = expected.quantity
    answer = await calls.call("check_entitlement", arguments, path)
    return {key: answer.get(key) for key in ENTITLEMENT_FIELDS}


async def _metrics(calls: Calls, expected: MetricExpect, path: tuple[str | int, ...]) -> dict[str, dict[str, dict[str, str]]]:
    """{query id: {group value ("" when not grouped): {bucket: value}}}. A REVENUE group with series in two
    currencies (an account whose invoiceCurrency changed) is named "value (CURRENCY)" for each of them."""
    result = await calls.call("get_metrics", {"startTime": expected.startTime, "endTime": expected.endTime,
                                              "metricQueries": expected.metricQueries}, path)
    series: dict[str, dict[str, dict[str, str]]] = {}
    for query in result["results"]:
        groups = series.setdefault(query["id"], {})
        names = [(data.get("groupedBy") or {}).get("fieldValue", "") for data in query["data"]]
        for name, data in zip(names, query["data"], strict=True):
            group = f"{name} ({data['currency']})" if names.count(name) > 1 and data.get("currency") else name
            groups[group] = {period_name(parse(stamp, "timestamp")): value
                             for stamp, value in zip(data["timestamps"], data["metricValues"], strict=True)}
    return series
