"""Entitlement checks: the account's current plan, its cycle, and usage of metered features.

Usage counts every billable event of the current cycle [cycle start, cycle end) — including any
timestamped after `now`, since the cycle's invoice will bill them too — read from the rollups
(one query for all metered features). The cycle is the current plan's schedule cycle, not clipped
to a mid-cycle plan change (README). The account may be named by its id or an alias.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from togai_engine.billing.current import coverage_start, usage_cycle_at
from togai_engine.common.numbers import EXACT_QUANTITY_CONTEXT
from togai_engine.cycles import Cycle
from togai_engine.entitlements.features import Feature, evaluate, feature_overage, plan_features
from togai_engine.entitlements.schemas import AccountEntitlements, Entitlement, EntitlementCheck
from togai_engine.errors import InvalidInput, NotFound
from togai_engine.meters.usage import account_usage
from togai_engine.plans.overrides import UnresolvedPlan, plans_by_association
from togai_engine.plans.schemas import PricePlan
from togai_engine.store.database import raw_connection
from togai_engine.wallets.plan_view import plan_id

ZERO = Decimal(0)


async def check_entitlement(
    session: AsyncSession, account: str, feature_id: str, quantity: Decimal, now: datetime
) -> EntitlementCheck:
    """May the account use `quantity` more units of the feature now?

    Two round trips: the account with the plan association in effect (one statement), then the
    feature meter's definition with its usage (one statement, meters.usage.account_usage); plans are
    immutable and cached, and the cycle is computed in Python. A cycle a change cut reads its usage up to each
    cut too, for the overage its invoices bill (_cut_overage).
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
    billed = await _cut_overage(session, found, [feature], usage)
    result = evaluate(feature, used=usage.get(feature.usage_meter_id or ""), quantity=quantity,
                      cycle_start=cycle.start, cycle_end=cycle.end, used_overage=billed.get(feature.feature_id))
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
    billed = await _cut_overage(session, found, features, usage)
    data: list[Entitlement] = [
        evaluate(f, used=usage.get(f.usage_meter_id or ""), quantity=Decimal(1), cycle_start=cycle.start,
                 cycle_end=cycle.end, used_overage=billed.get(f.feature_id))
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
    # the parts of the cycle before the association in effect, each (its association id, start, end), in order:
    # a change cut the cycle there (empty when the association in effect began by the cycle's start)
    earlier: tuple[tuple[int, datetime, datetime], ...] = ()


async def _account_and_plan(session: AsyncSession, handle: str, now: datetime) -> _Found:
    """The account (by id or alias), the plan in effect at `now` and the cycle its quotas count
    (as billing.current.current_plan_and_usage_cycle computes it), in ONE statement: the association in effect, and the start and end
    of every association that began by `now` (to find where the account's uninterrupted plans began)."""
    conn = await raw_connection(session)
    row = await conn.fetchrow(
        "SELECT a.id, a.status, p.price_plan_id, p.anchor, p.association_id, h.ids, h.froms, h.untils "
        "FROM account_handles h0 JOIN accounts a ON a.id = h0.account_id "
        "LEFT JOIN LATERAL (SELECT price_plan_id, anchor, id AS association_id FROM plan_associations "
        "  WHERE account_id = a.id AND effective_from <= $2 AND (effective_until IS NULL OR $2 < effective_until) "
        "  ORDER BY effective_from LIMIT 1) AS p ON true "
        "LEFT JOIN LATERAL (SELECT array_agg(id ORDER BY effective_from) AS ids, "
        "  array_agg(effective_from ORDER BY effective_from) AS froms, "
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
    spans = list(zip(row["ids"], row["froms"], row["untils"], strict=True))
    cycle = usage_cycle_at(plan, row["anchor"], coverage_start([(begin, until) for _, begin, until in spans]), now)
    cut = next(begin for association_id, begin, _ in spans if association_id == row["association_id"])
    earlier = tuple((association_id, max(begin, cycle.start), until) for association_id, begin, until in spans
                    if until is not None and cycle.start < until <= cut)
    return _Found(conn, row["id"], row["status"], plan, cycle, earlier)


async def _cut_overage(session: AsyncSession, found: _Found, features: Sequence[Feature],
                       used: Mapping[str, Decimal]) -> dict[str, Decimal]:
    """Feature id -> the overage the cycle's invoices bill, for the overage features of a cycle a change cut (none
    otherwise: the cycle's overage under the plan in effect is what they bill). Each part before the change bills
    the overage its usage added to the cycle under its own plan (that plan's limit and maxQuantity, nothing without
    an overage card for the feature), the part in effect what its usage adds under this plan (invoices README,
    "Overage across a cut"). One usage read of the cycle up to each cut; plans are cached."""
    charged = [f for f in features if f.overage and f.limit is not None and f.usage_meter_id]
    if not found.earlier or not charged:
        return {}
    assert found.cycle is not None  # a plan is in effect
    plans = await plans_by_association(session, [association_id for association_id, _, _ in found.earlier])
    parts = []
    for association_id, start, end in found.earlier:
        try:
            plan = plans[association_id]
        except UnresolvedPlan as exc:
            raise await _earlier_problem(found, charged, association_id, start, end, exc) from None
        parts.append(({f.feature_id: f for f in plan_features(plan)}, start, end))
    meters = sorted({f.usage_meter_id for f in charged if f.usage_meter_id}
                    | {f.usage_meter_id for by_id, _, _ in parts for f in by_id.values() if f.usage_meter_id})
    so_far: dict[datetime, dict[str, Decimal]] = {found.cycle.start: {}}  # the cycle's usage up to each cut
    for end in sorted({end for _, _, end in parts}):
        so_far[end] = await account_usage(found.conn, found.account_id, meters, start=found.cycle.start, end=end)
    billed: dict[str, Decimal] = {}
    for feature in charged:
        meter = feature.usage_meter_id or ""
        total = feature_overage(feature, used.get(meter, ZERO), so_far[parts[-1][2]].get(meter, ZERO))
        for by_id, start, end in parts:
            earlier = by_id.get(feature.feature_id)
            if earlier is not None and earlier.metered:
                meter = earlier.usage_meter_id or ""
                total = EXACT_QUANTITY_CONTEXT.add(total, feature_overage(
                    earlier, so_far[end].get(meter, ZERO), so_far[start].get(meter, ZERO)))
        billed[feature.feature_id] = total
    return billed


async def _earlier_problem(found: _Found, charged: Sequence[Feature], association_id: int, start: datetime,
                          end: datetime, exc: UnresolvedPlan) -> InvalidInput:
    """Why the overage of a part before the cut cannot be counted: the plan association that priced it, its part of
    the cycle, what is wrong with its plan, and the way out (none through update_account once it is invoiced)."""
    assert found.cycle is not None
    billed_until = await found.conn.fetchval(
        "SELECT billed_until FROM account_billing WHERE account_id = $1", found.account_id)
    features = ", ".join(repr(f.feature_id) for f in charged)
    if billed_until is not None and end <= billed_until:
        way_out = (f"that part is invoiced already, so no update_account reaches it: this check works again when "
                   f"the cycle ends at {found.cycle.end.isoformat()}, or once plan association {association_id}'s "
                   "stored plan is corrected by hand")
    else:
        way_out = exc.reason.removeprefix(f"{exc.what}; ")
    return InvalidInput("", (
        f"usedOverage of {features} counts the overage of the whole cycle [{found.cycle.start.isoformat()}, "
        f"{found.cycle.end.isoformat()}), and its part [{start.isoformat()}, {end.isoformat()}) was on plan "
        f"association {association_id} of account {found.account_id!r}, which cannot be read: {exc.what}; "
        f"{way_out}"))


async def _usage(
    conn: Any, account_id: str, features: Sequence[Feature], start: datetime, end: datetime
) -> dict[str, Decimal]:
    """Usage per meter id over [start, end) for the metered features (no query when there are none);
    the same quantities as meters.usage.meter_quantities."""
    meter_ids = sorted({f.usage_meter_id for f in features if f.usage_meter_id})
    if not meter_ids:
        return {}
    return await account_usage(conn, account_id, meter_ids, start=start, end=end)
