"""Pricing-lab tools: calculate_revenue (a quote) and simulate_price_plan (real usage under candidate plans)."""

from __future__ import annotations

from typing import Annotated, Any

from mcp.server.mcpserver import Context
from pydantic import Field, WithJsonSchema

from mcp_server.progress import progress_notifier
from mcp_server.registry import AN_INSTANT, require_scope, tool, uow
from mcp_server.views import LAB_VIEW
from togai_engine.common.validation import Instant
from togai_engine.errors import InvalidInput
from togai_engine.lab import service as lab
from togai_engine.lab.schemas import RevenueQuote, SimulationResult

InlinePlan = Annotated[dict[str, Any], Field(
    description="a plan in create_price_plan's shape: {name, pricingCycleConfig, supportedCurrencies, rateCards} "
                "(minimumCommitment may also sit at the top level); validated like create_price_plan, never stored")]

# Checked by the service, item by item, so a wrong item is named by its path (candidates[1]...).
CANDIDATES_SCHEMA = WithJsonSchema({
    "type": "array", "minItems": 1, "maxItems": lab.MAX_CANDIDATES,
    "items": {"anyOf": [{"type": "string"}, {"type": "object", "additionalProperties": True}]}})


@tool("calculate_revenue", scope="plans:read", read_only=True, idempotent=True, title="Calculate revenue (quote)")
async def calculate_revenue(
    ctx: Context,
    usage: Annotated[dict[str, str | int | float], Field(
        description='quantity per usage meter for one cycle, e.g. {"um_tokens": "1200000"}; meters left out are 0. '
                    "Send decimal strings for more than 15 digits")],
    pricePlanId: Annotated[str | None, Field(description="a stored plan (pp_...) from list_price_plans")] = None,
    pricePlan: Annotated[InlinePlan | None, Field(description="instead of pricePlanId: an inline plan")] = None,
    accountId: Annotated[str | None, Field(
        description="quote for this account (id or alias): without a plan, the plan it is on now; its own plan "
                    "is priced with its deal (rateCardOverrides), as its invoices are; currency defaults to its "
                    "invoiceCurrency")] = None,
    currency: Annotated[str | None, Field(
        description="ISO 4217 code the plan prices in; default the account's invoiceCurrency, else the plan's "
                    "first supported currency")] = None,
    licenses: Annotated[dict[str, int] | None, Field(
        description='seats per license id held for the whole cycle, e.g. {"seats": 8}; licenses left out are 0; '
                    "at most the card's config.maxQuantity, as update_license allows")
    ] = None,
    cycleIndex: Annotated[int, Field(
        ge=0, le=100_000, description="the cycle quoted, by its place on the plan (0 = the first): its fixed fees "
                                      "(a ONE_TIME setup fee in cycle 0 only, recurrenceConfig's beat) and the "
                                      "pricing rules that read cycleIndex, e.g. 3 to quote the fourth month after a "
                                      "first-3-months offer")] = 0,
) -> RevenueQuote:
    """Quote what a price plan charges for given usage over one full pricing cycle, e.g. "what do 1.2M
    tokens cost on Growth?". Returns every usage rate card with its slabs (quantity, rate, flat amount,
    exact amount), minimum/maximum rate adjustments, the card amount rounded once, license (seat) cards for
    the seats in `licenses`, the fixed fees of cycle cycleIndex of a plan association when it is a full one
    (default 0, the first: a ONE_TIME setup fee only there, an IN_ADVANCE fee once, recurrenceConfig at that
    index), the minimum-commitment true-up and the total: exactly what that invoice with this usage would say, its
    pricing rules applied (pricingRuleLogs, for the same cycle). Pass pricePlanId, or pricePlan to try
    a plan without creating it, or accountId for what an account's own deal charges (isOverridden: true when its
    rateCardOverrides priced it; accountId needs scope billing:read too). Reads only; safe to repeat."""
    if accountId is not None:  # the account's deal and currency are what its invoices show: billing:read
        require_scope("calculate_revenue", "billing:read", "accountId")
    if pricePlanId is not None and pricePlan is not None:
        raise InvalidInput("pricePlan", "give pricePlanId or pricePlan, not both")
    async with uow(ctx) as u:
        return await lab.calculate_revenue(
            u.session, plan=pricePlanId if pricePlanId is not None else pricePlan, usage=usage, currency=currency,
            now=u.now, licenses=licenses, cycle_index=cycleIndex, account=accountId)


@tool("simulate_price_plan", scope="plans:read", read_only=True, idempotent=True, title="Simulate price plans",
      view=LAB_VIEW, bulk=True, also_needs=("billing:read",),
      also_needs_why="it shows what each account was charged, its invoice totals, and its usage priced")
async def simulate_price_plan(
    ctx: Context,
    candidates: Annotated[list[Any], CANDIDATES_SCHEMA, Field(
        description="1 to 5 plans to compare: stored plan ids (pp_...) and/or inline plans in create_price_plan's "
                    "shape. Include an account's current plan id to check it reproduces its invoices")],
    accountIds: Annotated[list[str] | None, Field(
        max_length=1000, description="the accounts (ids or aliases); omit with customerId for every account")] = None,
    customerId: Annotated[str | None, Field(description="instead of accountIds: every account of this customer")] = None,
    startTime: Annotated[Instant | None, Field(
        description="with endTime: the billing periods overlapping [startTime, endTime), compared whole; "
                    f"{AN_INSTANT}")] = None,
    endTime: Annotated[Instant | None, Field(
        description=f"exclusive end of the range: {AN_INSTANT}")] = None,
    lastCycles: Annotated[int | None, Field(
        ge=1, le=lab.MAX_LAST_CYCLES,
        description="instead of startTime/endTime: each account's last N billing periods that have started, the "
                    "open one included (default 3 when no range is given)")] = None,
    top: Annotated[int, Field(ge=0, le=20, description="accounts listed per candidate as biggest increases and "
                                                       "biggest decreases")] = 5,
    accountDetails: Annotated[int, Field(
        ge=0, le=1000, description="how many accounts' per-cycle rows to return (totals always cover all)")] = 100,
) -> SimulationResult:
    """Price real usage under candidate plans before switching anyone: for each account and billing
    period, what it was actually charged (its invoice total; or, for a period not invoiced yet, its DRAFT),
    what each candidate would charge for the same period and usage, and the difference. Also totals per
    candidate and currency, and the accounts whose charge would rise or fall the most. Periods are the
    accounts' own; quantities come from the same metering as invoices, so an account's own plan reproduces its
    invoices to the cent. Accounts without a plan are skipped with the reason; a candidate that does not price
    an account's currency, or whose pricingCycleConfig cuts other cycles than the account's (give it the account's
    cycle to compare its rates), is reported as unsupported for that account. Needs scope billing:read too (it
    shows the accounts' charges). Reads only: inline plans are never stored. Reports progress (accounts priced
    so far) to clients that ask for it."""
    async with uow(ctx) as u:
        result = await lab.simulate_price_plans(
            u.session, candidates, now=u.now, account_ids=accountIds, customer_id=customerId, start_time=startTime,
            end_time=endTime, last_cycles=lastCycles, top=top, progress=progress_notifier(ctx))
    return result.model_copy(update={
        "accounts": result.accounts[:accountDetails], "accountsShown": min(accountDetails, len(result.accounts)),
        "skipped": result.skipped[:max(accountDetails, 20)]})
