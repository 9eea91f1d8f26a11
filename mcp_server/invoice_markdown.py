"""An invoice as markdown: what get_invoice returns, laid out for a person (or a model) to read.

Pure: it renders the `Invoice` schema and reads nothing. Line numbers are the ones create_credit_note
takes (`lineNumber`: 1 for the first top-level line); the lines below a line are its exact parts (slabs,
rate-config adjustments), which round once to their parent.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal

from togai_engine.invoices.schemas import Invoice, InvoiceLine, UsagePeriod

SANDBOX_NOTE = ("**SANDBOX**: made on a sandbox server, whose time is a test clock (advance_clock); not a real "
                "invoice.")


def instant(moment: datetime | None) -> str:
    return moment.isoformat().replace("+00:00", "Z") if moment is not None else "—"


def cell(text: str) -> str:
    """Text safe inside a markdown table cell."""
    return text.replace("\\", "\\\\").replace("|", "\\|").replace("\r", " ").replace("\n", " ")


def number(value: Decimal | None) -> str:
    return "" if value is None else f"{value:f}"


def _period(period: UsagePeriod) -> str:
    return f"{instant(period.start)} to {instant(period.end)}"


def _line_rows(line: InvoiceLine, label: str, invoice_period: UsagePeriod) -> list[str]:
    text = line.description
    if line.usagePeriod is not None and line.usagePeriod != invoice_period:
        text += f" (usage {_period(line.usagePeriod)})"
    rows = [f"| {label} | {cell(text)} | {cell(line.type)} | {number(line.quantity)} | "
            f"{number(line.valuePerQuantity)} | {number(line.value)} |"]
    for i, child in enumerate(line.lineItems, start=1):
        rows.extend(_line_rows(child, f"{label}.{i}", invoice_period))
    return rows


def _rule_rows(invoice: Invoice) -> list[str]:
    """The plan's pricing rules in the order they ran: what each computed and changed, or why not."""
    if not invoice.pricingRuleLogs:
        return []
    out = ["## Pricing rules", "", f"| Order | Rule | Action | Status | Computed | Change ({invoice.currency}) | "
           f"Total after | Note |", "|---:|---|---|---|---:|---:|---:|---|"]
    for log in invoice.pricingRuleLogs:
        action = f"{log.action} {log.target}" if log.target else log.action
        note = log.reason or ("clamped: neither a line nor the total goes below 0" if log.clamped else "")
        out.append(f"| {log.order} | {cell(log.name)} | {cell(action)} | {log.status} | {number(log.computedAmount)} "
                   f"| {number(log.change)} | {number(log.totalAfter)} | {cell(note)} |")
    return [*out, ""]


def invoice_markdown(invoice: Invoice) -> str:
    period = UsagePeriod(start=invoice.startDate, end=invoice.endDate)
    title = invoice.sequenceId or invoice.id
    facts = [
        ("Invoice id", f"`{invoice.id}`"),
        ("Number", invoice.sequenceId or "— (numbered when it becomes DUE)"),
        ("Status", invoice.status),
        ("Account", f"`{invoice.accountId}` (customer `{invoice.customerId}`)"),
        ("Price plan", f"{cell(invoice.pricePlanName)} (`{invoice.pricePlanId}`)"),
        ("Billing period", f"{_period(period)} (end exclusive, UTC)"),
    ]
    if invoice.status == "DRAFT":
        facts.append(("Becomes DUE", instant(invoice.closesAt)))
    else:
        facts += [("Invoice date", instant(invoice.invoiceDate)), ("Due date", instant(invoice.dueDate))]
    facts.append(("Currency", invoice.currency))
    out = [f"# Invoice {title}", ""]
    if invoice.sandbox:
        out += [SANDBOX_NOTE, ""]
    if invoice.status == "DRAFT":
        out += ["DRAFT: computed from the usage recorded so far; its amounts change until it becomes DUE.", ""]
    out += ["| | |", "|---|---|", *(f"| {name} | {value} |" for name, value in facts), ""]
    out += ["## Lines", "", f"| # | Line | Type | Quantity | Rate | Amount ({invoice.currency}) |",
            "|---|---|---|---:|---:|---:|"]
    for i, line in enumerate(invoice.lineItems, start=1):
        out.extend(_line_rows(line, str(i), period))
    if not invoice.lineItems:
        out.append("| | no lines | | | | |")
    out += ["", "Top-level amounts are rounded once to the currency's minor unit; the numbered lines below one "
                "(1.1, 1.2, ...) are its exact parts. `#` is the lineNumber create_credit_note takes.", ""]
    out += _rule_rows(invoice)
    totals = [
        ("Sub-total", invoice.subTotalAmount),
        ("Minimum-commitment true-up", invoice.trueUpAmount),
        ("**Total**", invoice.totalAmount),
        ("Credits applied (wallet)", invoice.creditsApplied),
        # what the notes took off the amount due, so the rows add up to it (as the view's do); a note's rest went
        # to the wallet (a note on a PAID invoice, all of it), which the notes section shows
        ("Credit notes (off the amount due)",
         sum((note.creditedFromDue for note in invoice.creditNotes), invoice.creditNotesTotal * 0)),
    ]
    if invoice.status == "PAID" and invoice.amountDue is not None:
        # a PAID invoice keeps, as amountDue, what was due when it was marked PAID: that was paid, nothing is due
        paid = f"Paid on {instant(invoice.statusUpdatedAt)}" if invoice.statusUpdatedAt else "Paid"
        totals += [(paid, invoice.amountDue), ("**Amount due**", invoice.amountDue - invoice.amountDue)]
    else:
        totals.append(("**Amount due**", invoice.amountDue))
    out += ["## Totals", "", f"| | {invoice.currency} |", "|---|---:|"]
    out += [f"| {name} | {number(value)} |" for name, value in totals]
    if invoice.creditNotes:
        out += ["", "## Credit notes", "", "| Number | Reason | Amount | Off the amount due | To the wallet |",
                "|---|---|---:|---:|---:|"]
        out += [f"| {note.sequenceId} | {note.reason} | {number(note.amount)} | {number(note.creditedFromDue)} | "
                f"{number(note.creditedToWallet)} |" for note in invoice.creditNotes]
    if invoice.problem:
        out += ["", f"**Note:** {invoice.problem}"]
    return "\n".join(out) + "\n"
