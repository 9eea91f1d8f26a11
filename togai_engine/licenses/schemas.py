"""What update_license returns: the account's seat timeline of one license."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import Field

from togai_engine.common.schemas import Model


class LicenseChange(Model):
    effectiveFrom: datetime
    updateType: Literal["ABSOLUTE", "RELATIVE"]
    requestedQuantity: int = Field(description="as sent: the new count (ABSOLUTE) or what was added (RELATIVE)")
    quantity: int = Field(description="seats from effectiveFrom on, until the next change")


class LicenseTimeline(Model):
    accountId: str
    licenseId: str
    pricePlanId: str = Field(description="the plan in effect at effectiveFrom, whose license card prices the seats")
    maxQuantity: int | None = Field(default=None, description="the card's config.maxQuantity (null: no limit)")
    quantity: int = Field(description="seats at effectiveFrom after this change")
    currentQuantity: int = Field(description="seats now")
    timeline: list[LicenseChange] = Field(description="every change of this license of the account, oldest first")
