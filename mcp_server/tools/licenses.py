"""License (seat) tools: update_license."""

from __future__ import annotations

from typing import Annotated, Literal

from mcp.server.mcpserver import Context
from pydantic import Field

from mcp_server.registry import AN_INSTANT, tool, uow
from togai_engine.app import licenses
from togai_engine.common.validation import Instant
from togai_engine.licenses.schemas import LicenseTimeline

MAX_SEATS = 10**12  # far beyond any seat count; keeps the column (bigint) and the arithmetic in range


@tool("update_license", scope="licenses:write", title="Update license seats")
async def update_license(
    ctx: Context,
    accountId: Annotated[str, Field(description="the account's id or one of its aliases")],
    licenseId: Annotated[str, Field(description="the id of a license rate card (rateCards.licenseRateCards[].id) "
                                                "of the account's plan")],
    quantity: Annotated[int, Field(ge=-MAX_SEATS, le=MAX_SEATS, description=(
        "ABSOLUTE: the seat count from effectiveFrom on; RELATIVE: seats to add (negative removes)"))],
    updateType: Annotated[Literal["ABSOLUTE", "RELATIVE"], Field(
        description="ABSOLUTE sets the count; RELATIVE adds to the count just before effectiveFrom")] = "ABSOLUTE",
    effectiveFrom: Annotated[Instant | None, Field(
        description=f"when the change takes effect (default now): {AN_INSTANT}. Not in a period already invoiced "
                    "(DUE); at most 366 days ahead. Changes at the same instant apply in the order they are made")
    ] = None,
    idempotencyKey: Annotated[str | None, Field(
        max_length=255, description="a key of yours for this change, unique per account: retrying with it (same "
                                    "arguments) changes nothing and returns the timeline; reusing it for another "
                                    "change is refused. Without it every call is a new change (a RELATIVE retry "
                                    "would add again)")] = None,
) -> LicenseTimeline:
    """Change an account's seat count of a license (a licenseRateCards card of its plan) from an instant on,
    and return that license's timeline. Each billing period charges the card's ratePlan (TIERED or VOLUME
    slabs over the seat count). With enableProration, each span of constant seats pays its share of the
    cycle by time; without it, the period pays for its highest seat count.

    Example: a plan's card {id: "seats", enableProration: true, PER_UNIT 10 USD per seat}, a 30-day
    month. update_license(accountId, "seats", quantity=5) on day 1, then update_license(accountId, "seats",
    quantity=3, updateType="RELATIVE", effectiveFrom=the 16th): 5 seats × 10 for the whole month = 50.00, plus
    3 seats × 10 for 15 of 30 days = 15.00: the invoice line is 65.00 (one child line per span). Without
    proration the month is charged at its highest count: 8 × 10 = 80.00.

    Refused: a licenseId the plan in effect at effectiveFrom has no card for (the message lists its license
    ids), a count below 0 or above the card's config.maxQuantity at effectiveFrom or after it, and an
    effectiveFrom in a period already invoiced (DUE: correct it with a credit note)."""
    async with uow(ctx) as u:
        timeline = await licenses.update_license(u.session, accountId, licenseId, quantity, updateType,
                                                 effectiveFrom, u.now, idempotency_key=idempotencyKey)
        u.changed(timeline.accountId)
        return timeline
