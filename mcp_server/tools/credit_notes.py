"""Credit note tools: create_credit_note, list_credit_notes."""

from __future__ import annotations

from typing import Annotated

from mcp.server.mcpserver import Context
from pydantic import Field

from mcp_server.reads import pure_read
from mcp_server.registry import NextToken, PageSize, tool, uow
from togai_engine.app import invoices as app_invoices
from togai_engine.common.schemas import Page
from togai_engine.invoices import credit_notes
from togai_engine.invoices.credit_note_schemas import (
    REASON_HELP,
    CreditNote,
    CreditNoteCreate,
    CreditNoteLineInput,
    CreditNoteResult,
    Reason,
)
from togai_engine.pricing.money import parse_decimal


@tool("create_credit_note", scope="billing:write", destructive=True, title="Create credit note")
async def create_credit_note(
    ctx: Context,
    invoiceId: Annotated[str, Field(description="the DUE or PAID invoice to credit (inv_...)")],
    reason: Annotated[Reason, Field(description=REASON_HELP)],
    amount: Annotated[str | int | float | None, Field(
        description='credit on the invoice as a whole, > 0, as a decimal string such as "12.50" (at most the '
                    "currency's minor-unit decimals); give amount or lines, not both")] = None,
    lines: Annotated[list[CreditNoteLineInput] | None, Field(
        min_length=1, max_length=100,
        description='credits on given invoice lines, e.g. [{"lineNumber": 1, "amount": "5.00"}] or '
                    '[{"rateCardName": "platform", "amount": "49.00"}]; the note\'s amount is their sum')] = None,
    memo: Annotated[str | None, Field(max_length=500, description="free text shown on the note; needed with "
                                                                  "reason OTHER")] = None,
    idempotencyKey: Annotated[str | None, Field(
        min_length=1, max_length=255,
        description="your key for this note; when retrying, send the SAME key so the invoice is not credited "
                    "twice (same key + same content returns the first note)")] = None,
) -> CreditNoteResult:
    """Correct a DUE or PAID invoice without editing it (its lines and totals stay as issued). The note
    first takes its amount off what the invoice still owes (amountDue, down to 0, on a DUE invoice); the
    rest, and the whole note on a PAID invoice, is credited to the account's wallet as a never-expiring
    grant that pays the next invoices. All notes of an invoice together credit at most its totalAmount,
    and a line at most its value. A line that sold PREPAID credits takes its share of them back
    (amount / value × credits, shown as creditsVoided): voided from the wallet if the invoice is PAID, and only
    while unused (the error says the most that can still be credited), else withheld from what PAID grants;
    an invoice with such a line is credited by lines, not by amount. DRAFT invoices are refused (they are
    recomputed from usage until they become DUE), and VOID ones (nothing is owed). Returns the note, the
    invoice's new amountDue and creditableAmount, and the wallet balance. Always pass an idempotencyKey and
    reuse it when retrying."""
    data = CreditNoteCreate(
        invoiceId=invoiceId, reason=reason, memo=memo, lines=lines, idempotencyKey=idempotencyKey,
        amount=parse_decimal(amount, "amount") if amount is not None else None,
    )
    async with uow(ctx) as u:
        result = await app_invoices.create_credit_note(u.session, data, u.now)
        u.changed(result.creditNote.id, result.creditNote.invoiceId, result.creditNote.grantId or "")
        return u.app.marked(result)


@tool("list_credit_notes", scope="billing:read", read_only=True, idempotent=True, title="List credit notes")
async def list_credit_notes(
    ctx: Context,
    invoiceId: Annotated[str | None, Field(description="the credit notes of this invoice")] = None,
    accountId: Annotated[str | None, Field(
        description="the credit notes of all this account's invoices (id or alias)")] = None,
    pageSize: PageSize = 20,
    nextToken: NextToken = None,
) -> Page[CreditNote]:
    """List credit notes, newest first, of one invoice (invoiceId) or of an account (accountId): each
    with its number, reason, memo, amount, the lines it credited, and how it was settled — taken off the
    invoice's amountDue (creditedFromDue) or credited to the wallet (creditedToWallet, with the grant)."""
    async with pure_read(ctx) as u:
        return u.app.marked_page(await credit_notes.list_credit_notes(
            u.session, invoice_id=invoiceId, account_id=accountId, page_size=pageSize, next_token=nextToken))
