"""Price plan tools: create_price_plan, list_price_plans, get_price_plan, list_rate_cards."""

from __future__ import annotations

from typing import Annotated

from mcp.server.mcpserver import Context
from pydantic import Field

from mcp_server.reads import pure_read
from mcp_server.registry import NextToken, PageSize, tool, uow
from togai_engine.common.schemas import Page
from togai_engine.errors import InvalidInput
from togai_engine.plans import service as plans
from togai_engine.plans.schemas import (
    LATE_USAGE_DESCRIPTION,
    LateUsagePolicy,
    MinimumCommitment,
    PricePlan,
    PricePlanCreate,
    PricePlanSummary,
    PricingCycleConfigInput,
    RateCardInfo,
    RateCards,
)

PlanId = Annotated[str, Field(description="the price plan's id (pp_...), from create_price_plan or list_price_plans")]


@tool("create_price_plan", scope="plans:write", idempotent=True, title="Create price plan")
async def create_price_plan(
    ctx: Context,
    name: Annotated[str, Field(min_length=1, max_length=50, description="unique plan name; retrying with the same "
                                                                         "name and content returns the same plan")],
    pricingCycleConfig: Annotated[PricingCycleConfigInput, Field(
        description='billing cycle, e.g. {"interval": "MONTHLY", "startOffset": {"dayOffset": "1"}, "gracePeriod": 3}')],
    supportedCurrencies: Annotated[list[str] | None, Field(
        description="ISO 4217 codes the plan prices in (default [USD]); every rate card needs a rate in each, and "
                    "an account can use the plan only if its invoiceCurrency is listed")] = None,
    rateCards: Annotated[RateCards | None, Field(
        description="usageRateCards (priced usage of a meter, slabs TIERED or VOLUME), fixedFeeRateCards, "
                    "billingEntitlementRateCards (feature limits per cycle), creditGrantRateCards (credits per "
                    "cycle) and minimumCommitment")] = None,
    minimumCommitment: Annotated[MinimumCommitment | None, Field(
        description="same as rateCards.minimumCommitment (give it in one place only)")] = None,
    description: Annotated[str | None, Field(max_length=255)] = None,
    lateUsage: Annotated[LateUsagePolicy, Field(description=LATE_USAGE_DESCRIPTION)] = "IGNORE",
) -> PricePlan:
    """Create an immutable price plan: its billing cycle, currencies and rate cards. Validation names the
    exact field at fault (e.g. rateCards.usageRateCards[0].ratePlan.slabs[1].startAfter). Slab i covers
    quantities above its startAfter up to the next slab's startAfter; the first slab starts after 0. Rates
    are decimal strings or numbers (send strings for more than 15 digits). To change pricing, create a new
    plan under a new name and attach it with update_account(pricePlanId, effectiveFrom).

    Fixed fees: type RECURRING (default) or ONE_TIME (a setup fee: once per plan association, in full);
    recurrenceConfig {interval, offset} charges cycle i (0 = the association's first) when i >= offset and
    (i - offset) % interval == 0; invoiceTiming IN_ADVANCE puts a cycle's fee on the previous period's invoice
    (the first cycle's on the first invoice). Example, monthly from 1 Jan: fixedFeeRateCards [{"id": "setup",
    "type": "ONE_TIME", "rateValues": [{"currency": "USD", "rate": "100"}]}, {"id": "base", "invoiceTiming":
    "IN_ADVANCE", "rateValues": [{"currency": "USD", "rate": "30"}]}] invoices January 100 + 30 (January) + 30
    (February) = 160.00, February 30.00 (March), and so on; ending the plan on 16 March (after February's
    invoice is DUE) issues a credit note for March's unused 16/31: 30 × 16/31 = 15.48."""
    cards = rateCards or RateCards()
    if minimumCommitment is not None:
        if cards.minimumCommitment is not None:
            raise InvalidInput("minimumCommitment", "is also given in rateCards.minimumCommitment; give it once")
        cards = cards.model_copy(update={"minimumCommitment": minimumCommitment})
    data = PricePlanCreate.model_validate({
        "name": name, "description": description, "pricingCycleConfig": pricingCycleConfig,
        "supportedCurrencies": supportedCurrencies if supportedCurrencies is not None else ["USD"],
        "rateCards": cards, "lateUsage": lateUsage,
    })
    async with uow(ctx) as u:
        plan, _ = await plans.create_plan(u.session, data)
        u.changed(plan.id)
        return plan


@tool("list_price_plans", scope="plans:read", read_only=True, idempotent=True, title="List price plans")
async def list_price_plans(ctx: Context, pageSize: PageSize = 20, nextToken: NextToken = None) -> Page[PricePlanSummary]:
    """List price plans, oldest first, with their cycle, currencies and number of rate cards. Use
    get_price_plan or list_rate_cards for the cards themselves."""
    async with pure_read(ctx) as u:
        return await plans.list_plans(u.session, pageSize, nextToken)


@tool("get_price_plan", scope="plans:read", read_only=True, idempotent=True, title="Get price plan")
async def get_price_plan(ctx: Context, pricePlanId: PlanId) -> PricePlan:
    """Get one price plan with every rate card as stored (names filled in, cycle in canonical form)."""
    async with pure_read(ctx) as u:
        return await plans.get_plan(u.session, pricePlanId)


@tool("list_rate_cards", scope="plans:read", read_only=True, idempotent=True, title="List rate cards")
async def list_rate_cards(
    ctx: Context, pricePlanId: PlanId, pageSize: PageSize = 20, nextToken: NextToken = None
) -> Page[RateCardInfo]:
    """List every rate card of a price plan with its type (USAGE, FIXED_FEE, BILLING_ENTITLEMENT,
    CREDIT_GRANT, MINIMUM_COMMITMENT), name, currencies and full content."""
    async with pure_read(ctx) as u:
        return await plans.list_rate_cards(u.session, pricePlanId, pageSize, nextToken)
