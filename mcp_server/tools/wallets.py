"""Wallet tools: grant_credit, get_wallet_balance, list_wallet_entries."""

from __future__ import annotations

from typing import Annotated

from mcp.server.mcpserver import Context
from pydantic import Field

from mcp_server.registry import AN_INSTANT, NextToken, PageSize, tool, uow
from togai_engine.app import financials
from togai_engine.common.validation import Instant
from togai_engine.pricing.money import parse_decimal
from togai_engine.wallets.schemas import GrantCreditInput, GrantCreditResult, WalletBalance, WalletLedger

AccountId = Annotated[str, Field(description="the account's id or one of its aliases")]


@tool("grant_credit", scope="credits:write", title="Grant credit")
async def grant_credit(
    ctx: Context,
    accountId: AccountId,
    amount: Annotated[str | int | float, Field(
        description='credit to add, > 0, as a decimal string such as "25.00"; at most the currency\'s '
                    "minor-unit decimals (2 for USD, 0 for JPY)")],
    currency: Annotated[str | None, Field(
        description="ISO 4217 code; must be the account's invoiceCurrency (the default)")] = None,
    purpose: Annotated[str | None, Field(max_length=255, description="why, e.g. PREPAID_CREDIT, PROMOTIONAL")] = None,
    effectiveFrom: Annotated[Instant | None, Field(
        description=f"when the credit becomes usable (default now): {AN_INSTANT}")] = None,
    effectiveUntil: Annotated[Instant | None, Field(
        description=f"expiry (exclusive): {AN_INSTANT}; what is left then expires. Omit for no expiry")] = None,
    priority: Annotated[int, Field(
        ge=0, le=2_147_483_647, description="burn order: lower numbers are used first (default 100)")] = 100,
    idempotencyKey: Annotated[str | None, Field(
        min_length=1, max_length=255,
        description="your key for this grant; when retrying, send the SAME key so the grant is not "
                    "doubled (same key + same content returns the first grant)")] = None,
    applicableEntityIds: Annotated[list[str] | None, Field(
        max_length=100, description="limit the credit to these rate cards' invoice lines (Togai's CreditRequest "
                                    "field): names of usage, license, fixed-fee or entitlement overage cards of the "
                                    "account's plan now (list_rate_cards). Omit for credit that pays any line")] = None,
) -> GrantCreditResult:
    """Add prepaid or promotional credit to an account's wallet. Credit pays invoices automatically
    when they become DUE, in burn order: lower priority number first, then earliest expiry, then
    earliest effectiveFrom; a grant limited to rate cards (applicableEntityIds) pays only their lines. Returns
    the grant and the wallet's new balance. Always pass an
    idempotencyKey and reuse it when retrying, so a retry never grants twice."""
    data = GrantCreditInput(
        accountId=accountId, amount=parse_decimal(amount, "amount"), currency=currency, purpose=purpose,
        effectiveFrom=effectiveFrom, effectiveUntil=effectiveUntil, priority=priority,
        idempotencyKey=idempotencyKey, applicableEntityIds=applicableEntityIds,
    )
    async with uow(ctx) as u:
        result = await financials.grant_credit(u.session, data, u.now)
        u.changed(result.grant.id)
        return u.app.marked(result)


@tool("get_wallet_balance", scope="billing:read", read_only=True, idempotent=True, title="Get wallet balance")
async def get_wallet_balance(ctx: Context, accountId: AccountId) -> WalletBalance:
    """Get an account's wallet: the credit balance (sum of its ledger), the charges accrued so far in
    the open billing cycle, the available balance (balance - accrued; negative = overage, flagged by
    `overage`), and the active and scheduled grants in the order they will be used."""
    async with uow(ctx) as u:
        return u.app.marked(await financials.wallet_balance(u.session, accountId, u.now))


@tool("list_wallet_entries", scope="billing:read", read_only=True, idempotent=True, title="List wallet entries")
async def list_wallet_entries(ctx: Context, accountId: AccountId, pageSize: PageSize = 20,
                              nextToken: NextToken = None) -> WalletLedger:
    """List an account's wallet ledger, newest first: every GRANT, APPLICATION to an invoice, REVERSAL
    (an application given back when its invoice was voided), EXPIRY and VOID (PREPAID credits a credit note
    took back, with its creditNoteId), signed, with the grant and invoice it belongs to, and the balance
    the entries dated up to now add up to. Use it to explain a balance or audit where credit went."""
    async with uow(ctx) as u:
        return u.app.marked(await financials.wallet_entries(u.session, accountId, u.now, page_size=pageSize,
                                                            next_token=nextToken))
