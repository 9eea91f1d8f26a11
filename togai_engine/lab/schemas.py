"""Pricing-lab results: a quote (calculate_revenue) and a comparison of plans (simulate_price_plan).

Money is Decimal (a decimal string in JSON). Rounded amounts carry the currency's minor unit; slab
amounts and rate-config adjustments are exact, as on invoice lines.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Literal

from pydantic import Field

from togai_engine.common.schemas import Model
from togai_engine.invoices.schemas import PricingRuleLog

ActualStatus = Literal["DUE", "PAID", "VOID", "DRAFT"]


# --- calculate_revenue --------------------------------------------------------------------------


class SlabRevenue(Model):
    order: int
    priceType: str
    startAfter: Decimal
    quantity: Decimal = Field(description="units of the usage falling in this slab")
    rate: Decimal
    packageCount: int | None = Field(default=None, description="packages charged (PACKAGE slabs)")
    flatAmount: Decimal = Field(description="the slab's flatRate when the usage entered it, else 0")
    amount: Decimal = Field(description="exact: quantity × rate (or packages × rate, or the flat rate) + flatAmount")


class UsageCardRevenue(Model):
    name: str | None
    displayName: str
    usageMeterId: str
    pricingModel: str
    quantity: Decimal
    slabs: list[SlabRevenue] = Field(description="the slabs the usage reached (the first one always)")
    subtotal: Decimal = Field(description="exact sum of the slab amounts")
    adjustment: Decimal = Field(description="exact minimumRate/maximumRate correction (0 when neither applied)")
    minimumApplied: bool
    maximumApplied: bool
    amount: Decimal = Field(description="subtotal + adjustment, rounded half-up once to the currency's minor unit")


class LicenseCardRevenue(Model):
    name: str | None
    licenseId: str
    pricingModel: str
    quantity: int = Field(description="seats held for the whole cycle (from `licenses`; 0 when not given)")
    enableProration: bool
    slabs: list[SlabRevenue] = Field(description="the slabs the seat count reached (a card without proration; a "
                                                 "prorated card's invoice line shows spans of seats instead)")
    amount: Decimal = Field(description="the card's amount for the cycle, rounded half-up once")


class FixedFeeRevenue(Model):
    name: str | None
    displayName: str
    amount: Decimal = Field(description="the fee for one full pricing cycle")


class RevenueQuote(Model):
    pricePlanId: str | None = Field(description="null for an inline plan (validated, never stored)")
    pricePlanName: str
    pricePlanVersion: int = Field(description="the plan version priced")
    accountId: str | None = Field(default=None, description="the account quoted for (accountId), if any")
    isOverridden: bool = Field(default=False, description="priced with the account's own deal (rateCardOverrides)")
    currency: str
    usageRateCards: list[UsageCardRevenue]
    licenseRateCards: list[LicenseCardRevenue] = Field(default_factory=list, description="seats, per license card")
    fixedFees: list[FixedFeeRevenue]
    subTotal: Decimal = Field(description="sum of the rounded rate card amounts")
    minimumCommitment: Decimal | None = Field(default=None, description="the plan's commitment per cycle, if any")
    trueUp: Decimal = Field(description="max(0, minimumCommitment - subTotal)")
    total: Decimal = Field(description="subTotal + trueUp: what one full cycle with this usage is invoiced")
    unpricedMeters: list[str] = Field(
        default_factory=list, description="meters in `usage` that no usage rate card of the plan prices (ignored)")
    pricingRuleLogs: list[PricingRuleLog] = Field(
        default_factory=list, description="the plan's pricing rules as they ran on this quote (its lines are in "
                                          "subTotal), exactly as an invoice records them")
    entitlementOverageRateCards: list[UsageCardRevenue] = Field(
        default_factory=list, description="overage cards: quantity = usage of the feature's meter past its "
                                          "featureCreditLimit, at most maxQuantity")


# --- simulate_price_plan ------------------------------------------------------------------------


class CandidateInfo(Model):
    candidate: int = Field(description="position in the request's candidates list")
    pricePlanId: str | None = Field(description="null for an inline plan (validated, never stored)")
    name: str
    supportedCurrencies: list[str]
    unsupportedAccounts: int = Field(
        default=0, description="accounts with cycles in a currency this plan does not price, or on a pricing cycle "
                               "other than its own pricingCycleConfig (left out of its totals; see `unsupported`)")


class CandidateAmount(Model):
    candidate: int
    amount: Decimal = Field(description="what the candidate plan charges for the cycle")
    difference: Decimal = Field(description="amount - actual (positive: the candidate charges more)")


class CycleComparison(Model):
    startDate: datetime = Field(description="start of the account's billing period (inclusive)")
    endDate: datetime = Field(description="end of the account's billing period (exclusive)")
    currency: str
    pricePlanId: str = Field(description="the plan the account was on for this period")
    status: ActualStatus = Field(
        description="the invoice's status; DRAFT = not invoiced yet, actual computed from the usage so far")
    invoiceId: str | None = None
    actual: Decimal = Field(description="the invoice's totalAmount (before wallet credits) with its advance invoice, "
                                        "less the credit notes a plan change issued on them; or the DRAFT's total")
    candidates: list[CandidateAmount] = Field(description="candidates that price this currency")


class AccountTotal(Model):
    candidate: int
    currency: str
    cycles: int
    actual: Decimal
    amount: Decimal
    difference: Decimal


class Unsupported(Model):
    candidate: int
    currency: str
    reason: str


class AccountComparison(Model):
    accountId: str
    customerId: str
    currency: str = Field(description="the account's invoiceCurrency")
    cycles: list[CycleComparison]
    totals: list[AccountTotal] = Field(description="per candidate (and currency) over the account's cycles")
    unsupported: list[Unsupported] = Field(default_factory=list)


class SkippedAccount(Model):
    accountId: str
    reason: str


class Mover(Model):
    accountId: str
    actual: Decimal
    amount: Decimal
    difference: Decimal


class CandidateTotal(Model):
    candidate: int
    name: str
    currency: str
    accounts: int
    cycles: int
    actual: Decimal = Field(description="what these accounts were charged over these cycles")
    amount: Decimal = Field(description="what the candidate would have charged")
    difference: Decimal = Field(description="amount - actual")
    differencePercent: Decimal | None = Field(description="difference / actual × 100, 2 decimals; null if actual is 0")
    biggestIncreases: list[Mover] = Field(description="accounts the candidate charges most above today (revenue won)")
    biggestDecreases: list[Mover] = Field(description="accounts the candidate charges most below today (revenue lost)")


class SimulationResult(Model):
    asOf: datetime
    startTime: datetime | None = None
    endTime: datetime | None = None
    lastCycles: int | None = None
    candidates: list[CandidateInfo]
    totals: list[CandidateTotal] = Field(description="per candidate and currency, over every simulated account")
    accountsSimulated: int
    accounts: list[AccountComparison] = Field(description="per account and cycle, ordered by account id")
    accountsShown: int = Field(description="len(accounts); fewer than accountsSimulated when trimmed")
    skipped: list[SkippedAccount] = Field(default_factory=list, description="accounts left out, with the reason")
    skippedCount: int = 0
    notes: list[str] = Field(default_factory=list)


class AppliedMeter(Model):
    name: str
    usageMeterId: str
    status: Literal["created", "exists"]


class AppliedPlan(Model):
    name: str
    pricePlanId: str
    status: Literal["created", "exists", "differs"] = Field(
        description="exists: a plan of that name whose latest version has this content; differs: its latest "
                    "version has other content (left as stored)")
    message: str | None = None
