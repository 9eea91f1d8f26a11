"""Entitlement checks: the account's current plan, its cycle, and usage of metered features.

Usage counts every billable event of the current cycle [cycle start, cycle end) — including any
timestamped after `now`, since the cycle's invoice will bill them too — read from the rollups
(one query for all metered features). The account may be named by its id or an alias.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime
from decimal import Decimal
from typing import Any, NamedTuple

from sqlalchemy.ext.asyncio import AsyncSession

from togai_engine.entitlements.features import Feature, evaluate, plan_features
from togai_engine.entitlements.schemas import AccountEntitlements, Entitlement, EntitlementCheck
from togai_engine.errors import InvalidInput, NotFound
from togai_engine.store.database import raw_connection
from togai_engine.wallets.plan_view import plan_id


async def check_entitlement(
    session: AsyncSession, account: str, feature_id: str, quantity: Decimal, now: datetime
) -> EntitlementCheck:
    """May the account use `quantity` more units of the feature now?"""
    if quantity <= 0:
        raise InvalidInput("quantity", f"must be greater than 0; got {quantity}")
    account_id, status = await _resolve(session, account)
    base = {"accountId": account_id, "featureId": feature_id, "quantity": quantity}
    if status == "ARCHIVED":
        return EntitlementCheck(**base, entitled=False, reason="ACCOUNT_ARCHIVED")
    current = await _current_plan_and_cycle(session, account_id, now)
    if current is None:
        return EntitlementCheck(**base, entitled=False, reason="NO_ACTIVE_PLAN")
    plan, cycle = current[0], current[1]
    feature = next((f for f in plan_features(plan) if f.feature_id == feature_id), None)
    if feature is None:
        return EntitlementCheck(**base, entitled=False, reason="FEATURE_NOT_IN_PLAN",
                                cycleStart=cycle.start, resetsAt=cycle.end)
    usage = await _usage(session, account_id, [feature], cycle.start, cycle.end)
    result = evaluate(feature, used=usage.get(feature.usage_meter_id or ""), quantity=quantity,
                      cycle_start=cycle.start, cycle_end=cycle.end)
    return EntitlementCheck(**result.model_dump(), accountId=account_id, quantity=quantity)


async def get_entitlements(session: AsyncSession, account: str, now: datetime) -> AccountEntitlements:
    """Every feature of the account's current plan, each judged for one more unit."""
    account_id, status = await _resolve(session, account)
    empty = {"accountId": account_id, "pricePlanId": None, "cycleStart": None, "resetsAt": None, "data": [],
             "asOf": now}
    if status == "ARCHIVED":
        return AccountEntitlements(**{**empty, "reason": "ACCOUNT_ARCHIVED"})
    current = await _current_plan_and_cycle(session, account_id, now)
    if current is None:
        return AccountEntitlements(**{**empty, "reason": "NO_ACTIVE_PLAN"})
    plan, cycle = current[0], current[1]
    features = plan_features(plan)
    usage = await _usage(session, account_id, features, cycle.start, cycle.end)
    data: list[Entitlement] = [
        evaluate(f, used=usage.get(f.usage_meter_id or ""), quantity=Decimal(1), cycle_start=cycle.start,
                 cycle_end=cycle.end)
        for f in features
    ]
    return AccountEntitlements(accountId=account_id, pricePlanId=plan_id(plan), cycleStart=cycle.start,
                               resetsAt=cycle.end, data=data, asOf=now)


async def _resolve(session: AsyncSession, handle: str) -> tuple[str, str]:
    """(account id, status) of an account id or alias, in one primary-key lookup (raw: this is the hot path)."""
    conn = await raw_connection(session)
    row = await conn.fetchrow(
        "SELECT a.id, a.status FROM account_handles h JOIN accounts a ON a.id = h.account_id WHERE h.handle = $1",
        handle,
    )
    if row is None:
        raise NotFound(f"account {handle!r} does not exist; list_accounts shows the ids")
    return row["id"], row["status"]


async def _usage(
    session: AsyncSession, account_id: str, features: Sequence[Feature], start: datetime, end: datetime
) -> dict[str, Decimal]:
    """Usage per meter id over [start, end) for the metered features (no query when there are none).

    Same computation as meters.usage.meter_quantities (rollups for whole hours, raw events for partial
    ones), with the meters read by one raw query instead of through the ORM.
    """
    meter_ids = sorted({f.usage_meter_id for f in features if f.usage_meter_id})
    if not meter_ids:
        return {}
    from togai_engine.meters.catalog import compiled
    from togai_engine.meters.usage import usage_by_bucket

    conn = await raw_connection(session)
    rows = await conn.fetch(
        "SELECT id, event_schema_name, aggregation, computations::text AS computations, updated_at "
        "FROM usage_meters WHERE id = ANY($1::text[]) ORDER BY id", meter_ids)
    meters = compiled(_MeterRow(r["id"], r["event_schema_name"], r["aggregation"], json.loads(r["computations"]),
                                r["updated_at"]) for r in rows)
    quantities = await usage_by_bucket(session, meters, start=start, end=end, account_ids=[account_id])
    return {meter_id: quantities.get((account_id, meter_id, None), Decimal(0)) for meter_id in meter_ids}


class _MeterRow(NamedTuple):
    id: str
    event_schema_name: str
    aggregation: str
    computations: list[Any]
    updated_at: datetime


async def _current_plan_and_cycle(session: AsyncSession, account_id: str, now: datetime) -> Any:
    from togai_engine.billing.current import current_plan_and_cycle

    return await current_plan_and_cycle(session, account_id, now)
