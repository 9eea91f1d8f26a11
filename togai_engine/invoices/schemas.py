"""Invoice shapes (Togai field names where Togai has them). Money is a decimal string in JSON."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any, Literal

from pydantic import Field

from togai_engine.common.schemas import Model, SandboxMarked
from togai_engine.invoices.credit_note_schemas import CreditNoteRef

InvoiceStatus = Literal["DRAFT", "DUE", "PAID", "VOID"]


class UsagePeriod(Model):
    start: datetime
    end: datetime = Field(description="exclusive")


class InvoiceLine(Model):
    type: str = Field(description="USAGE_RATE_CARD_AMOUNT, USAGE_RATE_CARD_SLAB_AMOUNT, RATE_CONFIG_ADJUSTMENT_AMOUNT, "
                                  "ENTITLEMENT_OVERAGE_AMOUNT (quantity: usage past the feature's limit), "
                                  "FIXED_FEE_RATE_CARD_AMOUNT, LICENSE_RATE_CARD_AMOUNT (seats; under it "
                                  "LICENSE_RATE_CARD_SLAB_AMOUNT or, prorated, one LICENSE_SPAN_AMOUNT per span of "
                                  "constant seats), TRUE_UP_AMOUNT or LATE_USAGE_AMOUNT (usage of an "
                                  "earlier period received after it closed; details name that invoice and events), "
                                  "PRICING_RULE_AMOUNT (a line a pricing rule added; pricingRuleLogs says why)")
    description: str
    rateCardName: str | None = None
    quantity: Decimal | None = Field(default=None, description="usage units (usage and slab lines); seats (license "
                                                                "lines: the period's highest count)")
    valuePerQuantity: Decimal | None = Field(default=None, description="the rate applied")
    value: Decimal = Field(description="rounded to the currency's minor unit on top-level lines; exact on the "
                                       "slab and adjustment lines below them, which round to their parent")
    units: str = Field(description="the currency of value")
    usageMeterId: str | None = None
    usagePeriod: UsagePeriod | None = Field(default=None, description="the usage window this line billed")
    details: dict[str, Any] | None = None
    lineItems: list[InvoiceLine] = Field(default_factory=list)


class UsageInfo(Model):
    usageMeterId: str
    quantity: Decimal
    usagePeriod: UsagePeriod


class InvoiceSummary(SandboxMarked):
    id: str
    sequenceId: str | None = Field(default=None, description="the invoice number, assigned when it becomes DUE")
    accountId: str
    customerId: str
    pricePlanId: str
    pricePlanName: str
    pricePlanVersion: int = Field(default=1, description="the version of the price plan that priced it")
    isOverridden: bool = Field(default=False, description="priced with the account's rateCardOverrides (its deal) "
                                                          "in place of some of the plan's cards")
    invoiceType: Literal["STANDARD", "STANDARD_ADVANCED"] = Field(
        default="STANDARD", description="STANDARD: a billing period's invoice; STANDARD_ADVANCED: issued DUE as a "
                                        "plan association starts, for its first period's in-advance fees (its "
                                        "period is empty, startDate = endDate; each line names the period it pays)")
    status: InvoiceStatus
    currency: str
    startDate: datetime = Field(description="start of the billed period (inclusive)")
    endDate: datetime = Field(description="end of the billed period (exclusive)")
    closesAt: datetime = Field(description="when the invoice becomes (or became) DUE: period end + grace period")
    invoiceDate: datetime | None = Field(default=None, description="when it became DUE")
    dueDate: datetime | None = Field(default=None, description="invoiceDate + the account's netTermDays")
    subTotalAmount: Decimal | None = Field(default=None, description="sum of the rate card and pricing-rule lines (never below 0)")
    trueUpAmount: Decimal | None = Field(default=None, description="minimum commitment true-up")
    totalAmount: Decimal | None = Field(default=None, description="subTotalAmount + trueUpAmount; never negative")
    creditsApplied: Decimal | None = Field(default=None, description="wallet credits applied when it became DUE")
    amountDue: Decimal | None = Field(default=None, description="totalAmount - creditsApplied - the creditedFromDue of its credit notes")
    # credit notes (credit_notes.py): corrections after DUE; totalAmount never changes
    creditNotesTotal: Decimal = Field(default=Decimal(0), description="the sum of its credit notes (0 on a DRAFT)")
    creditNotes: list[CreditNoteRef] = Field(default_factory=list, description="its credit notes, oldest first")
    statusUpdatedAt: datetime | None = None
    problem: str | None = Field(default=None, description=(
        "set only on a DRAFT: when its amounts cannot be computed (then null), what is wrong with the account's "
        "data and how to fix it; with amounts, the late usage it does not bill yet and why; other invoices are "
        "unaffected"))


class PricingRuleLog(Model):
    """What one pricing rule of the plan did on this invoice (Togai's pricing_rules_logs)."""

    name: str
    order: int
    action: Literal["ADD", "UPDATE"]
    target: str | None = Field(default=None, description="UPDATE: the rate card whose line it set")
    status: Literal["APPLIED", "SKIPPED", "FAILED"] = Field(
        description="SKIPPED: its condition was false; FAILED: it could not be evaluated (reason) and changed nothing")
    reason: str | None = None
    computedAmount: Decimal | None = Field(default=None, description="the computation, rounded to the minor unit")
    amount: Decimal | None = Field(default=None, description="the line's value as applied (ADD: the added line; "
                                                             "UPDATE: the card's new value)")
    previousAmount: Decimal | None = Field(default=None, description="UPDATE: the card's line before the rule")
    change: Decimal | None = Field(default=None, description="what the rule changed the total by")
    clamped: bool | None = Field(default=None, description="the amount was limited: the total never goes below 0 "
                                                           "and an UPDATEd line never below 0")
    totalBefore: Decimal
    totalAfter: Decimal


class Invoice(InvoiceSummary):
    lineItems: list[InvoiceLine]
    usageInfo: list[UsageInfo] = Field(description="the quantity billed per usage meter")
    pricingRuleLogs: list[PricingRuleLog] = Field(
        default_factory=list, description="each pricing rule of the plan in the order it ran, with what it changed; "
                                          "empty when the plan has none")
