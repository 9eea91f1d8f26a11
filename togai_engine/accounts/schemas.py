from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Literal

from pydantic import Field

from togai_engine.common.schemas import PROFILE_PROBLEM, Address, Model, SandboxMarked
from togai_engine.common.validation import Instant


class AccountFields(Model):
    """Fields an account can be created with; shared by create_account and create_customer's inline account."""

    id: str = Field(description="caller-supplied account id (1-50 chars); reusing it with the same fields "
                                "returns the account, with a field that differs is refused")
    name: str = Field(min_length=1, max_length=255)
    invoiceCurrency: str = Field(default="USD", description="ISO 4217 code; the wallet uses it too")
    aliases: list[str] = Field(default_factory=list, max_length=10,
                               description="other ids events may use in accountId; unique across all accounts")
    primaryEmail: str | None = None
    address: Address | None = None
    netTermDays: int = Field(default=0, ge=0, le=365)
    metadata: dict[str, str] | None = None
    pricePlanId: str | None = Field(default=None, description="attach this price plan")
    effectiveFrom: Instant | None = Field(default=None, description="when the plan starts (default: now)")


class AccountCreate(AccountFields):
    customerId: str


class AccountUpdate(Model):
    name: str | None = Field(default=None, min_length=1, max_length=255)
    status: Literal["ACTIVE", "ARCHIVED"] | None = None
    invoiceCurrency: str | None = None
    primaryEmail: str | None = None
    address: Address | None = None
    netTermDays: int | None = Field(default=None, ge=0, le=365)
    metadata: dict[str, str] | None = None
    aliases: list[str] | None = Field(default=None, max_length=10, description="replaces the alias list")
    pricePlanId: str | None = None
    effectiveFrom: Instant | None = None
    effectiveUntil: Instant | None = None


class Period(Model):
    start: datetime
    end: datetime


class PlanRef(Model):
    id: str
    name: str
    effectiveFrom: datetime
    effectiveUntil: datetime | None = Field(default=None, description="when the plan ends (null: open-ended)")
    version: int = Field(default=1, description="the plan version the account is on")
    isOverridden: bool = Field(default=False, description="the account has its own rateCardOverrides (a deal)")


class WalletSummary(Model):
    currency: str
    balance: Decimal
    availableBalance: Decimal | None = Field(description="balance - accruedCharges; null when accruedCharges "
                                                         "cannot be computed (the financial section's problem says why)")


class CurrencyAmount(Model):
    currency: str = Field(description="ISO 4217 code")
    amount: Decimal = Field(description="in that currency's minor unit")


class PendingLatePeriod(Model):
    """Late usage (ACCEPTED_LATE) of one invoiced period, not billed by any invoice yet."""

    invoiceId: str = Field(description="the DUE or PAID invoice of the period the late events are dated in")
    invoiceSequenceId: str | None = None
    periodStart: datetime
    periodEnd: datetime
    eventCount: int = Field(description="its late events; 0 for a later period of the same quota cycle whose "
                                        "entitlement overage the earlier periods' late usage moves (invoices README)")
    amount: Decimal | None = Field(description="what the next invoice bills for this period (its late-usage line), "
                                               "in the section's currency; null when it cannot be priced (`problem`)")
    description: str | None = Field(default=None, description="that line's description: says when a difference "
                                                              "is not billed (a credit note or invoicing by hand)")


class PendingLateUsage(Model):
    """Money owed and not invoiced yet: late usage that waits for the account's next invoice (billing README)."""

    currency: str
    total: Decimal | None = Field(description="the periods' amounts added; null when they cannot be priced")
    billedOn: str | None = Field(description="the DRAFT invoice that will bill it when it closes (its total, and "
                                             "accruedCharges once it started, include it); null when none does yet "
                                             "(`problem` says why)")
    periods: list[PendingLatePeriod]
    problem: str | None = Field(default=None, description="why no invoice bills it yet, or why it cannot be priced")


class AccountFinancial(Model):
    """The account's money picture; a field is null when there is nothing to show, never invented."""

    pricePlan: PlanRef | None = None
    currentCycle: Period | None = None
    accruedCharges: Decimal | None = Field(default=None, description="the open cycle's DRAFT invoice total")
    wallet: WalletSummary | None = Field(default=None, description=(
        "null when the balance is unknown: a grant expired unrecorded and the plan that says whether it is held for "
        "a period not invoiced yet cannot be resolved (`problem` says why)"))
    outstanding: Decimal | None = Field(default=None, description="sum of the amounts due of the DUE invoices in "
                                                                  "`currency` (the account's invoiceCurrency)")
    outstandingByCurrency: list[CurrencyAmount] = Field(
        default_factory=list, description="what the DUE invoices owe per invoice currency (an invoiceCurrency "
                                          "change leaves earlier invoices in theirs; currencies are never added), "
                                          "sorted by currency; empty when nothing is due")
    currency: str | None = None
    problem: str | None = Field(default=None, description="why accruedCharges (or the wallet) cannot be computed, "
                                                          "if it cannot")
    billingProblem: str | None = Field(default=None, description=(
        "why bill runs cannot bill the account: since when its run is due and the reason it fails (each run and read "
        "retries it; until fixed none of its periods becomes DUE); null when it bills"))
    pendingLateUsage: PendingLateUsage | None = Field(
        default=None, description="late usage owed and not invoiced yet, by period; null when there is none")


class Account(SandboxMarked):
    id: str
    customerId: str
    name: str
    invoiceCurrency: str
    aliases: list[str]
    primaryEmail: str | None
    address: Address | None
    netTermDays: int
    metadata: dict[str, str] | None
    status: Literal["ACTIVE", "ARCHIVED"]
    createdAt: datetime
    updatedAt: datetime
    problem: str | None = Field(default=None, description=PROFILE_PROBLEM)
    financial: AccountFinancial | None = Field(default=None, description="present on get_account")
