"""Entitlement shapes: what an account may use of each feature of its current plan."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Literal

from pydantic import Field

from togai_engine.common.schemas import Model

Reason = Literal["ENTITLED", "NO_ACTIVE_PLAN", "FEATURE_NOT_IN_PLAN", "LIMIT_REACHED", "ACCOUNT_ARCHIVED"]


class Entitlement(Model):
    featureId: str
    displayName: str | None = None
    featureType: Literal["METERED", "BOOLEAN"] | None = Field(
        default=None, description="METERED counts usage of usageMeterId against limit; BOOLEAN is on by presence")
    usageMeterId: str | None = None
    entitled: bool
    reason: Reason
    limit: Decimal | None = Field(default=None, description="units per cycle; null = unlimited or not metered")
    used: Decimal | None = Field(default=None, description="usage in the current cycle (metered features)")
    remaining: Decimal | None = Field(default=None, description="limit - used, never below 0; null = unlimited")
    cycleStart: datetime | None = None
    resetsAt: datetime | None = Field(default=None, description="end of the current cycle, when usage resets")
    overage: bool | None = Field(
        default=None, description="true when an entitlement overage card bills usage past `limit`: entitled then "
                                  "means used + quantity <= limit + overageLimit (no overageLimit: no ceiling)")
    overageLimit: Decimal | None = Field(default=None, description="the overage card's maxQuantity: units allowed "
                                                                   "and billed past limit per cycle; null = no ceiling")
    usedOverage: Decimal | None = Field(
        default=None, description="usage past limit this cycle, as the cycle's invoices bill it as overage (after a "
                                  "mid-cycle change of limit, units used before it count by the plan then in effect)")
    overageRemaining: Decimal | None = Field(
        default=None, description="overage units still allowed this cycle; null = no ceiling")


class EntitlementCheck(Entitlement):
    accountId: str
    quantity: Decimal = Field(description="units asked for: entitled means used + quantity <= limit")
    consumed: bool | None = Field(
        default=None, description="with `consume`: true when the usage is recorded under eventId (by this call, or "
                                  "by an earlier one with the same id: eventStatus DUPLICATE), false when not "
                                  "entitled (nothing was written); null without `consume`")
    eventId: str | None = Field(default=None, description="with `consume`: the event's id (your idempotency key)")
    eventStatus: Literal["ACCEPTED", "ACCEPTED_LATE", "DUPLICATE"] | None = Field(
        default=None, description="ACCEPTED: this call recorded the event; ACCEPTED_LATE: it did, dated in a period "
                                  "already invoiced whose plan bills late usage (the account's next invoice bills "
                                  "it); DUPLICATE: an earlier call did (nothing new was written)")
    usedAfter: Decimal | None = Field(default=None, description="with `consume`: usage this cycle after the call")
    remainingAfter: Decimal | None = Field(
        default=None, description="with `consume`: limit - usedAfter, never below 0; null = unlimited")


class AccountEntitlements(Model):
    accountId: str
    pricePlanId: str | None
    reason: Reason | None = Field(
        default=None, description="why there are no features: NO_ACTIVE_PLAN or ACCOUNT_ARCHIVED")
    cycleStart: datetime | None
    resetsAt: datetime | None
    data: list[Entitlement]
    asOf: datetime
