"""Changing an account's seat count of a license from an instant on (Togai's GRANT_LICENSE / license updates).

Policies (licenses/README.md): the account's plan in effect at effectiveFrom must have a license rate card with
that id; every count from effectiveFrom on must stay within 0 and the card's config.maxQuantity; effectiveFrom
may not fall in a period already invoiced DUE (as attach_plan), nor more than MAX_AHEAD ahead of now. Changes
at one instant apply in the order they were made. A call with the idempotencyKey of an earlier change and the
same arguments changes nothing and returns the timeline (a retry); with other arguments it is refused (Stripe's
idempotency keys).
"""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from togai_engine.accounts import service as accounts
from togai_engine.app.plan_changes import check_not_invoiced, locked_billing_row
from togai_engine.app.seat_limits import limits_from, named
from togai_engine.common.validation import check_id, utc_instant
from togai_engine.errors import Conflict, InvalidInput
from togai_engine.licenses import service as licenses
from togai_engine.licenses.schemas import LicenseChange, LicenseTimeline
from togai_engine.plans.models import PlanAssociationRow
from togai_engine.plans.overrides import plans_by_association
from togai_engine.plans.schemas import PricePlan

MAX_AHEAD = timedelta(days=366)  # a scheduled change may be at most this far ahead of now


async def update_license(
    session: AsyncSession, account: str, license_id: str, quantity: int, update_type: licenses.UpdateType,
    effective_from: datetime | None, now: datetime, *, idempotency_key: str | None = None,
) -> LicenseTimeline:
    """Sets (ABSOLUTE) or moves (RELATIVE) the account's seats of `license_id` from `effective_from` (default
    now) on; returns the license's timeline."""
    check_id(license_id, "licenseId")
    at = utc_instant(effective_from or now, "effectiveFrom")
    if idempotency_key is not None and not idempotency_key.strip():
        raise InvalidInput("idempotencyKey", "must not be blank; omit it or send a unique key per change")
    if at > now + MAX_AHEAD:
        raise InvalidInput("effectiveFrom", f"{at.isoformat()} is more than {MAX_AHEAD.days} days after now "
                                            f"({now.isoformat()}); schedule seat changes at most that far ahead")
    account_id = await accounts.account_id_of(session, account)
    await accounts.get_row(session, account_id, lock=True)  # one seat change of an account at a time
    if idempotency_key is not None:
        earlier = await licenses.find_by_key(session, account_id, idempotency_key)
        if earlier is not None:
            _check_replay(earlier, license_id, update_type, quantity, effective_from, idempotency_key)
            return await _timeline(session, account_id, license_id, earlier.effective_from, now)
    plan = await _plan_at(session, account_id, at)
    card = plan.license_card(license_id)
    if card is None:
        ids = [c.id for c in plan.rateCards.licenseRateCards]
        listing = f"its license ids: {', '.join(ids)}" if ids else "it has no licenseRateCards"
        raise InvalidInput("licenseId", f"price plan {plan.name!r} ({plan.id}), account {account_id!r}'s plan at "
                                        f"{at.isoformat()}, has no license rate card {license_id!r}; {listing}")
    billing = await locked_billing_row(session, account_id, now)
    check_not_invoiced(billing, at, account_id, "effectiveFrom")
    change = licenses.Change(at, update_type, quantity, license_id, idempotency_key)
    points = licenses.fold([*await _changes(session, account_id, license_id), change])
    for point in points:
        if point.effective_from >= at and point.count < 0:
            raise InvalidInput("quantity", f"this change would leave {point.count} seats of {license_id!r}"
                                           f"{_when(point.effective_from, at)}; a seat count cannot be negative")
    excess = licenses.first_excess(points, await limits_from(session, account_id, license_id, at), at)
    if excess is not None:
        instant, count, limit = excess
        under = "" if limit.plan == named(plan) else f" of {limit.plan}, in effect then"
        why = "a later change" if any(p.effective_from == instant for p in points) else f"{limit.plan} starts"
        raise InvalidInput("quantity", f"this change would make {count} seats of {license_id!r}"
                                       f"{_when(instant, at, why)}, "
                                       f"above the card's config.maxQuantity {limit.maximum}{under}; stay at or "
                                       f"below {limit.maximum}")
    await licenses.add_change(session, account_id, change)
    return _shown(account_id, license_id, plan, points, at, now)


def _when(instant: datetime, at: datetime, why: str = "a later change") -> str:
    return "" if instant == at else f" from {instant.isoformat()} ({why})"


def _check_replay(earlier: licenses.Change, license_id: str, update_type: str, quantity: int,
                  effective_from: datetime | None, key: str) -> None:
    asked = (license_id, update_type, quantity)
    if asked != (earlier.license_id, earlier.update_type, earlier.quantity) or (
            effective_from is not None and utc_instant(effective_from, "effectiveFrom") != earlier.effective_from):
        raise Conflict(f"idempotencyKey {key!r} was used for another change ({earlier.update_type} "
                       f"{earlier.quantity} seats of {earlier.license_id!r} from "
                       f"{earlier.effective_from.isoformat()}); send a new key for a new change")


async def _changes(session: AsyncSession, account_id: str, license_id: str) -> list[licenses.Change]:
    return (await licenses.changes_of(session, [account_id])).get(account_id, {}).get(license_id, [])


async def _timeline(session: AsyncSession, account_id: str, license_id: str, at: datetime,
                    now: datetime) -> LicenseTimeline:
    plan = await _plan_at(session, account_id, at)
    return _shown(account_id, license_id, plan, licenses.fold(await _changes(session, account_id, license_id)),
                  at, now)


def _shown(account_id: str, license_id: str, plan: PricePlan, points: list[licenses.Point], at: datetime,
           now: datetime) -> LicenseTimeline:
    card = plan.license_card(license_id)
    return LicenseTimeline(
        accountId=account_id, licenseId=license_id, pricePlanId=plan.id,
        maxQuantity=card.config.maxQuantity if card is not None and card.config is not None else None,
        quantity=licenses.count_at(points, at), currentQuantity=licenses.count_at(points, now),
        timeline=[LicenseChange(effectiveFrom=p.effective_from, updateType=p.change.update_type,
                                requestedQuantity=p.change.quantity, quantity=p.count) for p in points])


async def _plan_at(session: AsyncSession, account_id: str, at: datetime) -> PricePlan:
    association = await session.scalar(select(PlanAssociationRow).where(
        PlanAssociationRow.account_id == account_id, PlanAssociationRow.effective_from <= at,
        (PlanAssociationRow.effective_until.is_(None)) | (PlanAssociationRow.effective_until > at)))
    if association is None:
        raise InvalidInput("effectiveFrom", f"account {account_id!r} has no price plan in effect at {at.isoformat()}; "
                                            "attach a plan with a license rate card first (update_account "
                                            "pricePlanId), or choose an instant the plan covers")
    return (await plans_by_association(session, [association.id]))[association.id]
