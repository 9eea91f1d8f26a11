"""Entitlement tools: check_entitlement, get_entitlements."""

from __future__ import annotations

from typing import Annotated, Any

from mcp.server.mcpserver import Context
from pydantic import Field, WithJsonSchema

from mcp_server.reads import pure_read
from mcp_server.registry import UnitOfWork, require_scope, tool
from mcp_server.tools.events import EVENT_JSON_SCHEMA, with_retry
from togai_engine.app.consume import consume_if_entitled
from togai_engine.entitlements import service as entitlements
from togai_engine.entitlements.schemas import AccountEntitlements, EntitlementCheck
from togai_engine.pricing.money import parse_decimal

AccountId = Annotated[str, Field(description="the account's id or one of its aliases")]
CONSUME_JSON_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {name: EVENT_JSON_SCHEMA["properties"][name]
                   for name in ("id", "schemaName", "timestamp", "attributes", "dimensions")},
    "required": ["id", "schemaName"],
    "additionalProperties": False,
}
ConsumeArgument = Annotated[Any, WithJsonSchema(CONSUME_JSON_SCHEMA)]


@tool("check_entitlement", scope="entitlements:read", idempotent=True, title="Check entitlement (and consume)")
async def check_entitlement(
    ctx: Context,
    accountId: AccountId,
    featureId: Annotated[str, Field(description="a featureId from the plan's billingEntitlementRateCards")],
    quantity: Annotated[str | int | float, Field(
        description="units about to be used (default 1); entitled means used + quantity <= limit")] = 1,
    consume: Annotated[ConsumeArgument | None, Field(description=(
        "optional: the usage event to record if (and only if) entitled, in the same transaction as the check: "
        "{id (your idempotency key, required), schemaName, attributes, dimensions, timestamp (default now)}; "
        "no accountId (it is this call's). Its value for the feature's meter must be exactly `quantity`"))] = None,
) -> EntitlementCheck:
    """Decide whether an account may use a feature right now. `entitled` is true when the account's
    current price plan includes the feature and, for a metered feature, usage this cycle plus
    `quantity` stays within the limit. `reason` says why not (NO_ACTIVE_PLAN, FEATURE_NOT_IN_PLAN,
    LIMIT_REACHED, ACCOUNT_ARCHIVED); `used`, `limit`, `remaining` and `resetsAt` (cycle end) explain it.
    When the plan has an entitlementOverageRateCard for the feature, usage past the limit is allowed (and
    billed as overage) up to limit + its maxQuantity (`overage` true, `overageLimit`, `usedOverage`,
    `overageRemaining`); without maxQuantity there is no ceiling.
    Without `consume` this only checks (record the usage with ingest_event).
    With `consume` (consume if entitled; needs scope events:write too) the call also records that usage
    event when entitled, atomically: concurrent consumers of one account are serialised, so of two
    racing for the last unit exactly one gets consumed true. Example: quantity "1", consume {"id":
    "req-8812", "schemaName": "api_call", "attributes": {}} for a COUNT meter. The answer adds `consumed`
    (false = not entitled, nothing written), `eventId`, `eventStatus` (ACCEPTED; ACCEPTED_LATE when dated in
    a period already invoiced whose plan bills late usage), `usedAfter`, `remainingAfter`.
    Retry with the SAME id and usage: it returns the first answer (entitled, consumed, eventStatus
    DUPLICATE) and records nothing more; an id already used for other usage is an error on consume.id; a
    refused call stored nothing, so its id may be tried again. The feature's meter must be COUNT or SUM; an
    event that would not add exactly `quantity` to it, or dated outside the current cycle, is an error naming
    the field, and nothing is stored."""
    if consume is not None:  # scope first, as for every tool: a caller without it learns nothing about its input
        require_scope("check_entitlement", "events:write", "consume")
    amount = parse_decimal(quantity, "quantity")
    if consume is None:
        async with pure_read(ctx) as u:
            return await entitlements.check_entitlement(u.session, accountId, featureId, amount, u.now)

    async def work(u: UnitOfWork) -> EntitlementCheck:
        result = await consume_if_entitled(u.session, accountId, featureId, amount, consume, u.now,
                                           sandbox=u.app.sandbox)
        if result.eventStatus in ("ACCEPTED", "ACCEPTED_LATE"):  # this call wrote the event
            u.changed(result.accountId, result.eventId or "")
        return result

    return await with_retry(ctx, work)


@tool("get_entitlements", scope="entitlements:read", read_only=True, idempotent=True, title="Get entitlements")
async def get_entitlements(ctx: Context, accountId: AccountId) -> AccountEntitlements:
    """List every feature of the account's current price plan with, for each: entitled (room for one
    more unit), limit, used this cycle, remaining, and resetsAt (when the cycle and its usage reset)."""
    async with pure_read(ctx) as u:
        return await entitlements.get_entitlements(u.session, accountId, u.now)
