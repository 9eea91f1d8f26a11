"""Invoice tools: list_invoices, get_invoice (also the open cycle's DRAFT), update_invoice_status."""

from __future__ import annotations

from typing import Annotated, Literal

from mcp.server.mcpserver import Context
from pydantic import Field

from mcp_server.registry import AN_INSTANT, NextToken, PageSize, tool, uow
from mcp_server.views import INVOICE_VIEW
from togai_engine.app import invoices
from togai_engine.common.schemas import Page
from togai_engine.common.validation import Instant
from togai_engine.invoices.schemas import Invoice, InvoiceSummary

Status = Literal["DRAFT", "DUE", "PAID", "VOID"]


@tool("list_invoices", scope="billing:read", read_only=True, idempotent=True, title="List invoices")
async def list_invoices(
    ctx: Context,
    accountId: Annotated[str | None, Field(description="only this account's invoices (id or alias)")] = None,
    customerId: Annotated[str | None, Field(description="only invoices of this customer's accounts")] = None,
    status: Annotated[Status | None, Field(description="DRAFT (open or in grace), DUE, PAID or VOID")] = None,
    startTime: Annotated[Instant | None, Field(
        description=f"only invoices whose period ends after this instant: {AN_INSTANT}")] = None,
    endTime: Annotated[Instant | None, Field(
        description=f"only invoices whose period starts before this instant: {AN_INSTANT}")] = None,
    pageSize: PageSize = 20,
    nextToken: NextToken = None,
) -> Page[InvoiceSummary]:
    """List invoices, newest billing period first, with period, status, totals and currency. DRAFT
    invoices are computed from the usage recorded so far; cycles whose grace period has ended are
    invoiced (DUE) before listing. Use get_invoice for the line items."""
    async with uow(ctx) as u:
        page = await invoices.list_invoices(
            u.session, u.now, account_id=accountId, customer_id=customerId, status=status, start_time=startTime,
            end_time=endTime, page_size=pageSize, next_token=nextToken)
        return u.app.marked_page(page)


@tool("get_invoice", scope="billing:read", read_only=True, idempotent=True, title="Get invoice",
      view=INVOICE_VIEW)
async def get_invoice(
    ctx: Context,
    invoiceId: Annotated[str | None, Field(description="the invoice's id (inv_...) from list_invoices")] = None,
    accountId: Annotated[str | None, Field(
        description="instead of invoiceId: preview the DRAFT invoice of this account's current cycle (id or "
                    "alias)")] = None,
) -> Invoice:
    """Get one invoice with every line: per usage rate card the quantity and amount, below it each slab's
    quantity × rate = value (exact; the card amount is their sum rounded once), fixed fees (prorated when
    partial), lines added by the plan's pricing rules, the minimum-commitment true-up, and the totals;
    pricingRuleLogs says what each pricing rule did (APPLIED, SKIPPED, FAILED with why). Pass accountId
    instead of invoiceId to preview the open cycle's DRAFT invoice."""
    async with uow(ctx) as u:
        return u.app.marked(await invoices.get_invoice(u.session, u.now, invoice_id=invoiceId, account_id=accountId))


@tool("update_invoice_status", scope="billing:write", destructive=True, idempotent=True, title="Update invoice status")
async def update_invoice_status(
    ctx: Context,
    invoiceId: Annotated[str, Field(description="the invoice's id (inv_...)")],
    status: Annotated[Status, Field(description="PAID or VOID; only a DUE invoice can change")],
) -> Invoice:
    """Mark a DUE invoice PAID, or VOID it (credits applied to it go back to the wallet). PAID and VOID
    are final; DRAFT invoices become DUE by themselves when their grace period ends. Repeating the same
    change returns the invoice unchanged."""
    async with uow(ctx) as u:
        invoice = await invoices.update_invoice_status(u.session, invoiceId, status, u.now)
        u.changed(invoice.id)
        return u.app.marked(invoice)
