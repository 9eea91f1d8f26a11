"""Entitlement tools: check_entitlement, get_entitlements."""

from __future__ import annotations

from typing import Annotated

from mcp.server.mcpserver import Context
from pydantic import Field

from mcp_server.reads import pure_read
from mcp_server.registry import tool
from togai_engine.entitlements import service as entitlements
from togai_engine.entitlements.schemas import AccountEntitlements, EntitlementCheck
from togai_engine.pricing.money import parse_decimal

AccountId = Annotated[str, Field(description="the account's id or one of its aliases")]


@tool("check_entitlement", scope="entitlements:read", read_only=True, idempotent=True, title="Check entitlement")
async def check_entitlement(
    ctx: Context,
    accountId: AccountId,
    featureId: Annotated[str, Field(description="a featureId from the plan's billingEntitlementRateCards")],
    quantity: Annotated[str | int | float, Field(
        description="units about to be used (default 1); entitled means used + quantity <= limit")] = 1,
) -> EntitlementCheck:
    """Decide whether an account may use a feature right now. `entitled` is true when the account's
    current price plan includes the feature and, for a metered feature, usage this cycle plus
    `quantity` stays within the limit. `reason` says why not (NO_ACTIVE_PLAN, FEATURE_NOT_IN_PLAN,
    LIMIT_REACHED, ACCOUNT_ARCHIVED); `used`, `limit`, `remaining` and `resetsAt` (cycle end) explain it.
    This only checks: record the usage itself with ingest_event."""
    amount = parse_decimal(quantity, "quantity")
    async with pure_read(ctx) as u:
        return await entitlements.check_entitlement(u.session, accountId, featureId, amount, u.now)


@tool("get_entitlements", scope="entitlements:read", read_only=True, idempotent=True, title="Get entitlements")
async def get_entitlements(ctx: Context, accountId: AccountId) -> AccountEntitlements:
    """List every feature of the account's current price plan with, for each: entitled (room for one
    more unit), limit, used this cycle, remaining, and resetsAt (when the cycle and its usage reset)."""
    async with pure_read(ctx) as u:
        return await entitlements.get_entitlements(u.session, accountId, u.now)
