"""Account tools: create_account, get_account, update_account, list_accounts."""

from __future__ import annotations

from typing import Annotated, Literal

from mcp.server.mcpserver import Context
from pydantic import Field

from mcp_server.arguments import sent_arguments
from mcp_server.reads import pure_read
from mcp_server.registry import AN_INSTANT, NextToken, PageSize, tool, uow
from togai_engine.accounts.schemas import Account, AccountCreate, AccountUpdate
from togai_engine.app import accounts
from togai_engine.common.schemas import Address, Page
from togai_engine.common.validation import Instant
from togai_engine.plans.schemas import MAX_PRICING_RULES, PricingRule, RateCards

AccountId = Annotated[str, Field(description="the account's id or one of its aliases")]
PlanId = Annotated[str | None, Field(description="attach this price plan (see create_price_plan)")]
EffectiveFrom = Annotated[Instant | None, Field(
    description=f"when the plan takes effect (default now): {AN_INSTANT}; mid-cycle changes close the old plan's "
                "partial period there (fixed fees and minimums of both parts prorated by time)")]
EffectiveUntil = Annotated[Instant | None, Field(
    description=f"when the account's plan ends: {AN_INSTANT}. The last partial period is billed, prorated; "
                "nothing after it. Not with pricePlanId; with status ARCHIVED at most now. Ending at the start of a "
                "scheduled plan cancels that plan")]
Overrides = Annotated[RateCards | None, Field(
    description="with pricePlanId: the account's own deal from effectiveFrom on (Togai's "
                "pricePlanDetailsOverride): cards in the shape of create_price_plan's rateCards, each replacing "
                "the plan's card of the same name (usage, fixed fee, entitlement and credit grant cards; a "
                "minimumCommitment replaces the plan's). The whole card is replaced, with a rate in every "
                "supported currency. Invoices priced with it say isOverridden: true")]


@tool("create_account", scope="customers:write", idempotent=True, title="Create account")
async def create_account(
    ctx: Context,
    id: Annotated[str, Field(description="account id you choose (1-50 chars); retrying with the same id and the "
                                         "same fields returns the existing account, and any field that differs "
                                         "from the stored account is refused, naming it")],
    customerId: Annotated[str, Field(description="the owning customer's id")],
    name: Annotated[str, Field(min_length=1, max_length=255)],
    invoiceCurrency: Annotated[str, Field(description="ISO 4217 code, e.g. USD (default), EUR, JPY")] = "USD",
    aliases: Annotated[list[str] | None, Field(
        max_length=10, description="other ids events may send as accountId; unique across all accounts")] = None,
    primaryEmail: str | None = None,
    address: Address | None = None,
    netTermDays: Annotated[int, Field(ge=0, le=365, description="days from DUE to payment due date")] = 0,
    metadata: dict[str, str] | None = None,
    pricePlanId: PlanId = None,
    effectiveFrom: EffectiveFrom = None,
    rateCardOverrides: Overrides = None,
) -> Account:
    """Create a billing account for a customer. Events, invoices, the wallet and entitlements all
    belong to an account. Attach a price plan now with pricePlanId (with the account's own deal in
    rateCardOverrides, as update_account takes it), or later with update_account. Calling again with an
    existing id returns that account unchanged only when every field matches it (omitted ones count as their
    defaults, except effectiveFrom); otherwise it is refused and nothing changes: use update_account."""
    data = AccountCreate(
        id=id, customerId=customerId, name=name, invoiceCurrency=invoiceCurrency, aliases=aliases or [],
        primaryEmail=primaryEmail, address=address, netTermDays=netTermDays, metadata=metadata,
        pricePlanId=pricePlanId, effectiveFrom=effectiveFrom,
    )
    async with uow(ctx) as u:
        account, _ = await accounts.create_account(u.session, data, u.now, rate_card_overrides=rateCardOverrides)
        u.changed(account.id)
        return u.app.marked(account)


@tool("get_account", scope="billing:read", read_only=True, idempotent=True, title="Get account")
async def get_account(ctx: Context, accountId: AccountId) -> Account:
    """Get an account with its financial picture: current price plan and cycle, charges accrued in the
    open cycle, wallet balance and the outstanding (DUE) amount: in the invoiceCurrency
    (`outstanding`) and per currency (`outstandingByCurrency`); late usage owed and not invoiced yet
    (`pendingLateUsage`: per period, the invoice that will bill it, or why none does); why bill runs cannot bill
    the account, when they fail on it (`billingProblem`)."""
    async with uow(ctx) as u:
        return u.app.marked(await accounts.get_account(u.session, accountId, u.now))


@tool("update_account", scope="customers:write", destructive=True, idempotent=True, title="Update account")
async def update_account(
    ctx: Context,
    accountId: AccountId,
    name: Annotated[str | None, Field(min_length=1, max_length=255)] = None,
    status: Annotated[Literal["ACTIVE", "ARCHIVED"] | None, Field(
        description="ARCHIVED keeps history, ends the plan now (its last partial period is billed) and stops "
                    "usage, entitlements and new plans; ACTIVE again to re-attach a plan")] = None,
    invoiceCurrency: str | None = None,
    primaryEmail: Annotated[str | None, Field(description="billing contact email; null clears it")] = None,
    address: Annotated[Address | None, Field(description="replaces the stored address; null clears it")] = None,
    netTermDays: Annotated[int | None, Field(ge=0, le=365)] = None,
    metadata: Annotated[dict[str, str] | None, Field(
        description="replaces the stored metadata; null clears it")] = None,
    aliases: Annotated[list[str] | None, Field(
        max_length=10, description="replaces the alias list; null or [] removes every alias")] = None,
    pricePlanId: PlanId = None,
    effectiveFrom: EffectiveFrom = None,
    effectiveUntil: EffectiveUntil = None,
    rateCardOverrides: Overrides = None,
    pricingRulesOverride: Annotated[list[PricingRule] | None, Field(
        max_length=MAX_PRICING_RULES,
        description="with pricePlanId: the account's own pricingRules from effectiveFrom on, replacing the plan's "
                    "(Togai's pricingRulesOverride; [] = none), in create_price_plan's shape and checked the same way "
                    "against the plan with the account's rateCardOverrides")] = None,
) -> Account:
    """Change an account's details, status or aliases; attach or change its price plan (pricePlanId +
    effectiveFrom; attaching again the plan a scheduled change replaces cancels that change), optionally with
    the account's own rates (rateCardOverrides) and pricing rules (pricingRulesOverride); or end its plan
    (effectiveUntil). Example of an enterprise deal
    on plan pp_x whose usage card is named api_calls: update_account(accountId="acme", pricePlanId="pp_x",
    effectiveFrom="2026-03-01T00:00:00Z", rateCardOverrides={"usageRateCards": [{"name": "api_calls",
    "usageMeterId": "um_calls", "ratePlan": {"pricingModel": "TIERED", "slabs": [{"order": 1, "startAfter": 0,
    "priceType": "PER_UNIT"}]}, "rateValues": [{"currency": "USD", "slabRates": [{"order": 1, "rate": "0.005"}]}]}]}). The account is named by its id or an alias. Fields you omit are left as they are; an
    explicit null clears primaryEmail, address, metadata or aliases (name, status, invoiceCurrency and
    netTermDays cannot be null; a null pricePlanId, effectiveFrom or effectiveUntil changes nothing)."""
    given = {"name": name, "status": status, "invoiceCurrency": invoiceCurrency, "primaryEmail": primaryEmail,
             "address": address, "netTermDays": netTermDays, "metadata": metadata, "aliases": aliases,
             "pricePlanId": pricePlanId, "effectiveFrom": effectiveFrom, "effectiveUntil": effectiveUntil}
    data = AccountUpdate(**sent_arguments(ctx, given))
    async with uow(ctx) as u:
        account = await accounts.update_account(u.session, accountId, data, u.now, rateCardOverrides,
                                                pricingRulesOverride)
        u.changed(account.id)
        return u.app.marked(account)


@tool("list_accounts", scope="customers:read", read_only=True, idempotent=True, title="List accounts")
async def list_accounts(
    ctx: Context,
    customerId: Annotated[str | None, Field(description="only this customer's accounts")] = None,
    status: Literal["ACTIVE", "ARCHIVED"] | None = None,
    pageSize: PageSize = 20,
    nextToken: NextToken = None,
) -> Page[Account]:
    """List billing accounts, oldest first, optionally of one customer or one status. A stored metadata or address
    that no longer reads (edited by hand) is shown null, and the account's `problem` says which and how to fix it."""
    async with pure_read(ctx) as u:
        return u.app.marked_page(await accounts.list_accounts(u.session, customerId, status, pageSize, nextToken))
