"""Price plan tools: create_price_plan, list_price_plans, get_price_plan, list_rate_cards, update_price_plan,
finalize_price_plan."""

from __future__ import annotations

from typing import Annotated

from mcp.server.mcpserver import Context
from pydantic import Field

from mcp_server.reads import pure_read
from mcp_server.registry import NextToken, PageSize, tool, uow
from togai_engine.app import plan_versions
from togai_engine.common.schemas import Page
from togai_engine.errors import InvalidInput
from togai_engine.plans import service as plans
from togai_engine.plans.schemas import (
    LATE_USAGE_DESCRIPTION,
    MAX_PRICING_RULES,
    PRICING_RULES_DESCRIPTION,
    LateUsagePolicy,
    MinimumCommitment,
    PricePlan,
    PricePlanCreate,
    PricePlanSummary,
    PricingCycleConfigInput,
    PricingRule,
    RateCardInfo,
    RateCards,
)
from togai_engine.plans.versions import (
    FinalizeResult,
    MigrationMode,
    PlanVersionUpdate,
    PricePlanWithVersions,
    plan_with_versions,
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
                    "billingEntitlementRateCards (feature limits per cycle), entitlementOverageRateCards (usage of "
                    "a feature past its limit, priced by slabs, at most maxQuantity), creditGrantRateCards (credits "
                    "per cycle; grantDetails.applicableEntityIds limits them to named cards' lines; invoiceTiming PREPAID "
                    "sells them, priced by slabDetails, and grants them once the selling invoice is PAID) and "
                    "minimumCommitment")] = None,
    minimumCommitment: Annotated[MinimumCommitment | None, Field(
        description="same as rateCards.minimumCommitment (give it in one place only)")] = None,
    description: Annotated[str | None, Field(max_length=255)] = None,
    lateUsage: Annotated[LateUsagePolicy, Field(description=LATE_USAGE_DESCRIPTION)] = "IGNORE",
    pricingRules: Annotated[list[PricingRule] | None, Field(
        max_length=MAX_PRICING_RULES, description=PRICING_RULES_DESCRIPTION)] = None,
) -> PricePlan:
    """Create a price plan (version 1): its billing cycle, currencies and rate cards. Validation names the
    exact field at fault (e.g. rateCards.usageRateCards[0].ratePlan.slabs[1].startAfter). Slab i covers
    quantities above its startAfter up to the next slab's startAfter; the first slab starts after 0. Rates
    are decimal strings or numbers (send strings for more than 15 digits). This is version 1, ACTIVE at once.
    To change the plan's pricing later use update_price_plan + finalize_price_plan (a new version); to give one
    account its own rates use update_account(pricePlanId, rateCardOverrides).

    Fixed fees: type RECURRING (default) or ONE_TIME (a setup fee: once per account and plan, in full);
    recurrenceConfig {interval, offset} charges cycle i (0 = the first on the plan) when i >= offset and
    (i - offset) % interval == 0; invoiceTiming IN_ADVANCE puts a cycle's fee on the previous period's invoice
    (the first cycle's on an advance invoice, invoiceType STANDARD_ADVANCED, DUE as the plan starts). Example,
    monthly from 1 Jan: fixedFeeRateCards [{"id": "setup", "type": "ONE_TIME", "rateValues": [{"currency": "USD",
    "rate": "100"}]}, {"id": "base", "invoiceTiming": "IN_ADVANCE", "rateValues": [{"currency": "USD", "rate":
    "30"}]}] invoices 30.00 on 1 January (January's base, in advance), then January 100 + 30 (February) = 130.00,
    February 30.00 (March), and so on; ending the plan on 16 March (after February's invoice is DUE) issues a
    credit note for March's unused 16/31: 30 × 16/31 = 15.48.


    pricingRules adjust each invoice after its rate cards (JSON Logic over exact decimals; every invoice logs
    what each rule did in pricingRuleLogs). 10% off when the subtotal is over 1000:
    {"name": "volume discount", "order": 1, "condition": {">": [{"var": "subTotal"}, 1000]},
     "computation": {"*": [{"var": "subTotal"}, -0.1]}, "action": {"type": "ADD", "description": "10% off over 1000"}}
    (subTotal 1234.56 adds a line of -123.46; at 1000 or less nothing). First 3 months 20% off:
    {"name": "welcome offer", "order": 2, "condition": {"<": [{"var": "cycleIndex"}, 3]},
     "computation": {"*": [{"var": "total"}, -0.2]}, "action": {"type": "ADD"}}
    (cycleIndex is 0 in the plan's first period on the account). Cap a card at 500 with UPDATE:
    {"name": "cap", "order": 3, "computation": {"min": [{"var": "rateCards.api_calls"}, 500]},
     "action": {"type": "UPDATE", "target": "api_calls"}}."""
    cards = rateCards or RateCards()
    if minimumCommitment is not None:
        if cards.minimumCommitment is not None:
            raise InvalidInput("minimumCommitment", "is also given in rateCards.minimumCommitment; give it once")
        cards = cards.model_copy(update={"minimumCommitment": minimumCommitment})
    data = PricePlanCreate.model_validate({
        "name": name, "description": description, "pricingCycleConfig": pricingCycleConfig,
        "supportedCurrencies": supportedCurrencies if supportedCurrencies is not None else ["USD"],
        "rateCards": cards, "lateUsage": lateUsage, "pricingRules": pricingRules or [],
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
async def get_price_plan(
    ctx: Context, pricePlanId: PlanId,
    version: Annotated[str | None, Field(
        description="ACTIVE (default: the latest ACTIVE version, the one attaching gives), LATEST (the DRAFT when "
                    "there is one) or a version number such as \"2\"")] = None,
) -> PricePlanWithVersions:
    """Get one version of a price plan with every rate card as stored (names filled in, cycle in canonical
    form), plus `versions`: every version's number, status (ACTIVE or DRAFT), finalizedAt and migrationMode.
    Example: get_price_plan(pricePlanId="pp_x", version="LATEST") shows the draft update_price_plan made."""
    async with pure_read(ctx) as u:
        return await plan_with_versions(u.session, pricePlanId, version)


@tool("list_rate_cards", scope="plans:read", read_only=True, idempotent=True, title="List rate cards")
async def list_rate_cards(
    ctx: Context, pricePlanId: PlanId, pageSize: PageSize = 20, nextToken: NextToken = None
) -> Page[RateCardInfo]:
    """List every rate card of a price plan with its type (USAGE, FIXED_FEE, BILLING_ENTITLEMENT,
    CREDIT_GRANT, MINIMUM_COMMITMENT), name, currencies and full content, by type then name."""
    async with pure_read(ctx) as u:
        return await plans.list_rate_cards(u.session, pricePlanId, pageSize, nextToken)


@tool("update_price_plan", scope="plans:write", destructive=True, idempotent=True, title="Draft a new plan version")
async def update_price_plan(
    ctx: Context,
    pricePlanId: PlanId,
    rateCards: Annotated[RateCards, Field(
        description="the new version's WHOLE set of rate cards (as in create_price_plan): cards left out are not "
                    "in the new version. Keep a card's name to keep it recognisable (accounts' rateCardOverrides "
                    "replace cards by name)")],
    pricingCycleConfig: Annotated[PricingCycleConfigInput | None, Field(
        description="default: the current version's. While accounts are on the plan only gracePeriod may change "
                    "(interval, startOffset and anniversaryCycle are refused)")] = None,
    supportedCurrencies: Annotated[list[str] | None, Field(
        description="default: the current version's; may not drop an attached account's invoiceCurrency")] = None,
    description: Annotated[str | None, Field(max_length=255, description="default: the current version's")] = None,
    lateUsage: Annotated[LateUsagePolicy | None, Field(description="default: the current version's")] = None,
    pricingRules: Annotated[list[PricingRule] | None, Field(
        max_length=MAX_PRICING_RULES, description="default: the current version's rules; [] removes them. They are "
                                                  "checked against the new rate cards")] = None,
) -> PricePlan:
    """Draft the next version of a price plan (version n+1, status DRAFT) with new content; nothing is billed
    with it until finalize_price_plan. There is one DRAFT per plan: calling again replaces it. A DRAFT is never
    attached (update_account attaches the latest ACTIVE version). Validation is create_price_plan's, plus the
    accounts on the plan: their invoiceCurrency must stay supported and their billing cycle unchanged.
    Example: update_price_plan(pricePlanId="pp_x", rateCards={"usageRateCards": [{"name": "api_calls",
    "usageMeterId": "um_calls", "ratePlan": {"pricingModel": "TIERED", "slabs": [{"order": 1, "startAfter": 0,
    "priceType": "PER_UNIT"}]}, "rateValues": [{"currency": "USD", "slabRates": [{"order": 1, "rate": "0.012"}]}]}]})
    returns version 2 as DRAFT; then finalize_price_plan(pricePlanId="pp_x", migrationMode="NEXT_CYCLE")."""
    update = PlanVersionUpdate(rateCards=rateCards, pricingCycleConfig=pricingCycleConfig,
                               supportedCurrencies=supportedCurrencies, description=description, lateUsage=lateUsage,
                               pricingRules=pricingRules)
    async with uow(ctx) as u:
        plan = await plan_versions.update_price_plan(u.session, pricePlanId, update, u.now)
        u.changed(plan.id)
        return plan


@tool("finalize_price_plan", scope="plans:write", destructive=True, idempotent=True, title="Finalize plan version")
async def finalize_price_plan(
    ctx: Context,
    pricePlanId: PlanId,
    migrationMode: Annotated[MigrationMode, Field(
        description="which accounts on the plan move to the new version, and when: NONE (none; new attachments "
                    "get it), NEXT_CYCLE (each at the end of its current cycle), IMMEDIATE (now: the current cycle "
                    "is split and prorated like a plan change), START_OF_CURRENT_CYCLE (the current cycle is "
                    "re-priced from its start). *_IGNORE_OVERRIDE variants also drop accounts' rateCardOverrides; "
                    "the others keep them")],
) -> FinalizeResult:
    """Activate the plan's DRAFT version and move the accounts on the plan per migrationMode. Each account's
    cycles stay where they were (same anchor); periods already invoiced (DUE) are never re-priced. The result
    lists the accounts moved (from which version, from when) and those skipped with the reason. The accounts' due
    periods are billed first; a moved account whose bill run fails (before or after its move) carries
    billingProblem, the run's reason and what it leaves uninvoiced (it was moved as its stored billing progress
    stood); null when it bills.
    Example: finalize_price_plan(pricePlanId="pp_x", migrationMode="IMMEDIATE") at 2026-03-16T00:00:00Z moves
    an account on a March monthly cycle: 1-16 March is billed on version 1 (fixed fees 15/31 of the cycle),
    16-31 March on version 2 (16/31)."""
    async with uow(ctx) as u:
        result = await plan_versions.finalize_price_plan(u.session, pricePlanId, migrationMode, u.now)
        # a moved account's plan changed as by update_account(pricePlanId): its audit trail shows this call
        u.changed(pricePlanId, *(moved.accountId for moved in result.migratedAccounts))
        return result
