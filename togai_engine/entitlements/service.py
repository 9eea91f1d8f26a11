"""Entitlement checks: the account's current plan, its cycle, and usage of metered features.

Usage counts every billable event of the current cycle [cycle start, cycle end) — including any
timestamped after `now`, since the cycle's invoice will bill them too — read from the rollups
(one query for all metered features). The cycle is the current plan's schedule cycle, not clipped
to a mid-cycle plan change (README). The account may be named by its id or an alias.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from togai_engine.billing.current import coverage_start, usage_cycle_at
from togai_engine.cycles import Cycle
from togai_engine.entitlements.features import Feature, evaluate, plan_features
from togai_engine.entitlements.schemas import AccountEntitlements, Entitlement, EntitlementCheck
from togai_engine.errors import InvalidInput, NotFound
from togai_engine.meters.usage import account_usage
from togai_engine.plans.overrides import plans_by_association
from togai_engine.plans.schemas import PricePlan
from togai_engine.store.database import raw_connection
from togai_engine.wallets.plan_view import plan_id


async def check_entitlement(
    session: AsyncSession, account: str, feature_id: str, quantity: Decimal, now: datetime
) -> EntitlementCheck:
    """May the account use `quantity` more units of the feature now?

    Two round trips: the account with the plan association in effect (one statement), then the
    feature meter's definition with its usage (one statement, meters.usage.account_usage); plans are
    immutable and cached, and the cycle is computed in Python.
    """
    if quantity <= 0:
        raise InvalidInput("quantity", f"must be greater than 0; got {quantity}")
    found = await _account_and_plan(session, account, now)
    base = {"accountId": found.account_id, "featureId": feature_id, "quantity": quantity}
    if found.status == "ARCHIVED":
        return EntitlementCheck(**base, entitled=False, reason="ACCOUNT_ARCHIVED")
    if found.plan is None or found.cycle is None:  # both or neither
        return EntitlementCheck(**base, entitled=False, reason="NO_ACTIVE_PLAN")
    plan, cycle = found.plan, found.cycle
    feature = next((f for f in plan_features(plan) if f.feature_id == feature_id), None)
    if feature is None:
        return EntitlementCheck(**base, entitled=False, reason="FEATURE_NOT_IN_PLAN",
                                cycleStart=cycle.start, resetsAt=cycle.end)
    usage = await _usage(found.conn, found.account_id, [feature], cycle.start, cycle.end)
    result = evaluate(feature, used=usage.get(feature.usage_meter_id or ""), quantity=quantity,
                      cycle_start=cycle.start, cycle_end=cycle.end)
    return EntitlementCheck(**result.model_dump(), accountId=found.account_id, quantity=quantity)


async def get_entitlements(session: AsyncSession, account: str, now: datetime) -> AccountEntitlements:
    """Every feature of the account's current plan, each judged for one more unit."""
    found = await _account_and_plan(session, account, now)
    empty = {"accountId": found.account_id, "pricePlanId": None, "cycleStart": None, "resetsAt": None, "data": [],
             "asOf": now}
    if found.status == "ARCHIVED":
        return AccountEntitlements(**{**empty, "reason": "ACCOUNT_ARCHIVED"})
    if found.plan is None or found.cycle is None:  # both or neither
        return AccountEntitlements(**{**empty, "reason": "NO_ACTIVE_PLAN"})
    plan, cycle = found.plan, found.cycle
    features = plan_features(plan)
    usage = await _usage(found.conn, found.account_id, features, cycle.start, cycle.end)
    data: list[Entitlement] = [
        evaluate(f, used=usage.get(f.usage_meter_id or ""), quantity=Decimal(1), cycle_start=cycle.start,
                 cycle_end=cycle.end)
        for f in features
    ]
    return AccountEntitlements(accountId=found.account_id, pricePlanId=plan_id(plan), cycleStart=cycle.start,
                               resetsAt=cycle.end, data=data, asOf=now)


@dataclass(frozen=True)
class _Found:
    conn: Any  # the asyncpg connection of the session's transaction
    account_id: str
    status: str
    plan: PricePlan | None
    cycle: Cycle | None


async def _account_and_plan(session: AsyncSession, handle: str, now: datetime) -> _Found:
    """The account (by id or alias), the plan in effect at `now` and the cycle its quotas count
    (as billing.current.current_plan_and_usage_cycle computes it), in ONE statement: the association in effect, and the start and end
    of every association that began by `now` (to find where the account's uninterrupted plans began)."""
    conn = await raw_connection(session)
    row = await conn.fetchrow(
        "SELECT a.id, a.status, p.price_plan_id, p.anchor, p.association_id, h.froms, h.untils "
        "FROM account_handles h0 JOIN accounts a ON a.id = h0.account_id "
        "LEFT JOIN LATERAL (SELECT price_plan_id, anchor, id AS association_id FROM plan_associations "
        "  WHERE account_id = a.id AND effective_from <= $2 AND (effective_until IS NULL OR $2 < effective_until) "
        "  ORDER BY effective_from LIMIT 1) AS p ON true "
        "LEFT JOIN LATERAL (SELECT array_agg(effective_from ORDER BY effective_from) AS froms, "
        "  array_agg(effective_until ORDER BY effective_from) AS untils FROM plan_associations "
        "  WHERE account_id = a.id AND effective_from <= $2) AS h ON true "
        "WHERE h0.handle = $1",
        handle, now,
    )
    if row is None:
        raise NotFound(f"account {handle!r} does not exist; list_accounts shows the ids")
    if row["price_plan_id"] is None:
        return _Found(conn, row["id"], row["status"], None, None)
    plan = (await plans_by_association(session, [row["association_id"]]))[row["association_id"]]
    cycle = usage_cycle_at(plan, row["anchor"], coverage_start(list(zip(row["froms"], row["untils"], strict=True))),
                           now)
    return _Found(conn, row["id"], row["status"], plan, cycle)


async def _usage(
    conn: Any, account_id: str, features: Sequence[Feature], start: datetime, end: datetime
) -> dict[str, Decimal]:
    """Usage per meter id over [start, end) for the metered features (no query when there are none);
    the same quantities as meters.usage.meter_quantities."""
    meter_ids = sorted({f.usage_meter_id for f in features if f.usage_meter_id})
    if not meter_ids:
        return {}
    return await account_usage(conn, account_id, meter_ids, start=start, end=end)
