"""Credit note shapes (Stripe's credit note, in Togai's camelCase). Money is a decimal string in JSON."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Annotated, Any, Literal

from pydantic import BeforeValidator, Field

from togai_engine.common.schemas import Model, SandboxMarked
from togai_engine.errors import InvalidInput
from togai_engine.pricing.money import parse_decimal

Reason = Literal["DUPLICATE", "FRAUDULENT", "ORDER_CHANGE", "PRODUCT_UNSATISFACTORY", "OTHER"]
REASON_HELP = ("why the invoice is credited (Stripe's reasons): DUPLICATE (billed twice), FRAUDULENT, ORDER_CHANGE "
               "(what was bought or used changed, e.g. usage corrected), PRODUCT_UNSATISFACTORY, or OTHER (then "
               "memo must say why)")


def _to_decimal(value: Any) -> Decimal:
    try:
        return parse_decimal(value, "")
    except InvalidInput as exc:
        raise ValueError(exc.reason) from None


Money = Annotated[Decimal, BeforeValidator(_to_decimal)]


class CreditNoteLineInput(Model):
    lineNumber: int | None = Field(default=None, ge=1, le=100_000, description=(
        "the invoice line to credit: 1 for the first entry of get_invoice's lineItems, 2 for the second, ..."))
    rateCardName: str | None = Field(default=None, min_length=1, max_length=50, description=(
        "instead of lineNumber: the rateCardName of the invoice line (it must name exactly one line)"))
    amount: Money = Field(description='how much of that line to credit, > 0, e.g. "12.50"; at most the line\'s value '
                                      "minus what earlier credit notes credited on it")


class CreditNoteCreate(Model):
    invoiceId: str = Field(min_length=1, max_length=50)
    reason: Reason
    memo: str | None = Field(default=None, max_length=500)
    amount: Decimal | None = None
    lines: list[CreditNoteLineInput] | None = Field(default=None, min_length=1, max_length=100)
    idempotencyKey: str | None = Field(default=None, min_length=1, max_length=255)


class CreditNoteLine(Model):
    lineNumber: int = Field(description="the invoice line credited (1 = the first of get_invoice's lineItems)")
    rateCardName: str | None
    description: str = Field(description="the invoice line's description")
    amount: Decimal = Field(description="credited on that line")
    creditsVoided: Decimal | None = Field(default=None, description=(
        "a line that sold PREPAID credits only: the credits this credit took back (amount / the line's value × the "
        "credits it sold): voided from their grant (a VOID wallet entry) when the invoice was PAID, else withheld "
        "from what marking it PAID grants"))


class CreditNote(SandboxMarked):
    id: str
    sequenceId: str = Field(description="the credit note's number, CN-000001, gapless")
    invoiceId: str
    invoiceSequenceId: str | None = Field(description="the credited invoice's number (INV-...)")
    accountId: str
    currency: str = Field(description="the invoice's currency")
    amount: Decimal = Field(description="the note's total: creditedFromDue + creditedToWallet")
    reason: Reason
    memo: str | None
    lines: list[CreditNoteLine] = Field(description="per invoice line credited; empty for a note by amount")
    invoiceStatus: Literal["DUE", "PAID"] = Field(description="the invoice's status when the note was issued")
    creditedFromDue: Decimal = Field(description="taken off the invoice's amountDue (a DUE invoice, down to 0)")
    creditedToWallet: Decimal = Field(description="the rest, credited to the account's wallet as a CREDIT_NOTE grant")
    grantId: str | None = Field(description="the wallet grant holding creditedToWallet; null when it is 0")
    idempotencyKey: str | None
    createdAt: datetime


class CreditNoteRef(Model):
    """A credit note as its invoice shows it."""

    id: str
    sequenceId: str
    amount: Decimal
    reason: Reason
    creditedFromDue: Decimal
    creditedToWallet: Decimal
    createdAt: datetime


class CreditedInvoice(Model):
    """The credited invoice's money after the note: its totals never change."""

    id: str
    status: Literal["DUE", "PAID"]
    currency: str
    totalAmount: Decimal
    creditsApplied: Decimal = Field(description="wallet credits applied when it became DUE")
    creditNotesTotal: Decimal = Field(description="the sum of its credit notes")
    creditedFromDue: Decimal = Field(description="the part of creditNotesTotal taken off amountDue")
    amountDue: Decimal = Field(description="totalAmount - creditsApplied - creditedFromDue")
    creditableAmount: Decimal = Field(description="totalAmount - creditNotesTotal: what further notes may credit")


class CreditNoteResult(SandboxMarked):
    creditNote: CreditNote
    invoice: CreditedInvoice
    walletBalance: Decimal | None = Field(description="the account's wallet balance after the note (its ledger sum); "
                                                      "null when a replay cannot tell it (`problem` says why)")
    replayed: bool = Field(description="true when idempotencyKey matched an earlier identical credit note")
    problem: str | None = Field(default=None, description="why walletBalance is unknown, when it is")
