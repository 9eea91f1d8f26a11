"""Wallet shapes (Togai field names). Money is Decimal, serialised as a decimal string."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Literal

from pydantic import Field

from togai_engine.common.schemas import Model, Page, SandboxMarked
from togai_engine.common.validation import Instant

GrantStatus = Literal["SCHEDULED", "ACTIVE", "CONSUMED", "EXPIRED"]


class GrantCreditInput(Model):
    accountId: str
    amount: Decimal
    currency: str | None = None
    purpose: str | None = Field(default=None, max_length=255)
    effectiveFrom: Instant | None = None
    effectiveUntil: Instant | None = None
    priority: int = Field(default=100, ge=0, le=2_147_483_647)
    idempotencyKey: str | None = Field(default=None, min_length=1, max_length=255)
    applicableEntityIds: list[str] | None = Field(default=None, max_length=100)


@dataclass(frozen=True)
class PayableCards:
    """The rate cards a grant may be limited to (applicableEntityIds): those of the plan the account is on that
    put lines on an invoice. Plans sit above wallets, so the application layer reads them off the plan."""

    plan: str  # how a message names the plan, e.g. "price plan 'Growth' (pp_x)"
    names: tuple[str, ...]


class CreditGrant(Model):
    id: str
    accountId: str
    currency: str
    amount: Decimal = Field(description="granted amount")
    remaining: Decimal = Field(description="what is left: amount minus applications (net of reversals) and expiry")
    purpose: str | None
    priority: int = Field(description="lower burns first")
    effectiveFrom: datetime
    effectiveUntil: datetime | None = Field(description="expiry; null = never expires")
    status: GrantStatus
    source: Literal["MANUAL", "RATE_CARD", "CREDIT_NOTE"] = Field(
        description="MANUAL (grant_credit), RATE_CARD (a plan's credit-grant card) or CREDIT_NOTE (the part of a "
                    "credit note the invoice no longer owed)")
    grantorId: str | None = Field(description="'<pricePlanId>:<rate card>' for grants issued by a plan; the credit "
                                              "note's id (cn_...) for CREDIT_NOTE grants")
    idempotencyKey: str | None
    createdAt: datetime
    applicableEntityIds: list[str] | None = Field(
        default=None, description="rate card names whose invoice lines this grant pays (its card's "
                                  "grantDetails.applicableEntityIds); null = any line")


class GrantCreditResult(SandboxMarked):
    grant: CreditGrant
    balance: Decimal | None = Field(description="wallet balance after the grant (ledger sum as of now); null when a "
                                                "replay cannot tell it (`problem` says why)")
    currency: str
    replayed: bool = Field(description="true when idempotencyKey matched an earlier identical grant")
    problem: str | None = Field(default=None, description="why balance is unknown, when it is")


class WalletBalance(SandboxMarked):
    accountId: str
    currency: str
    balance: Decimal = Field(description="sum of the wallet ledger as of asOf")
    accruedCharges: Decimal | None = Field(
        description="total of the open cycle's DRAFT invoice; null when the account has no plan")
    availableBalance: Decimal = Field(description="balance - accruedCharges; negative means overage")
    overage: bool = Field(description="true when accrued charges exceed the balance")
    scheduledCredits: Decimal = Field(description="credit granted with a future effectiveFrom (not in balance yet)")
    grants: list[CreditGrant] = Field(
        description="active and scheduled grants, and EXPIRED ones still holding credit (counted in balance) "
                    "for an invoice not DUE yet, which they may pay; in burn order")
    asOf: datetime


class WalletEntry(Model):
    id: int = Field(description="the entry's place in the ledger (entries are only ever appended)")
    kind: Literal["GRANT", "APPLICATION", "REVERSAL", "EXPIRY", "VOID"] = Field(
        description="GRANT adds a grant's credit; APPLICATION (negative) paid an invoice; REVERSAL gave an "
                    "application back when its invoice was voided; EXPIRY took what an expired grant had left; "
                    "VOID (negative) took back PREPAID credits because a credit note credited the invoice line "
                    "that sold them (creditNoteId)")
    amount: Decimal = Field(description="signed, in the wallet's currency")
    grantId: str = Field(description="the credit grant the entry belongs to")
    invoiceId: str | None = Field(description="the invoice an APPLICATION paid")
    reversesEntryId: int | None = Field(description="the APPLICATION a REVERSAL undoes")
    creditNoteId: str | None = Field(default=None, description="the credit note a VOID entry took credits back for")
    at: datetime = Field(description="when the entry counts in the balance (a scheduled grant's effectiveFrom, "
                                     "an expired grant's effectiveUntil)")
    recordedAt: datetime


class WalletLedger(Page[WalletEntry], SandboxMarked):
    accountId: str
    currency: str
    balance: Decimal = Field(description="the sum of the entries dated at or before asOf (the wallet balance)")
    asOf: datetime
