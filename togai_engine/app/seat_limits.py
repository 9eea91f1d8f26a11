"""Seats stay within the license card's config.maxQuantity of the plan in effect at every instant
(licenses/README.md): a seat change is checked against every plan it carries into, and a plan change against
the seats the account holds from the change on."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from togai_engine.errors import InvalidInput
from togai_engine.licenses import service as licenses
from togai_engine.licenses.service import Limit
from togai_engine.plans.models import PlanAssociationRow
from togai_engine.plans.overrides import plans_by_association
from togai_engine.plans.schemas import LicenseRateCard, PricePlan

# how a refusal sends the caller on when no better way is known
ANOTHER_PLAN = "or choose a plan that allows them"


def named(plan: PricePlan) -> str:
    return f"price plan {plan.name!r} ({plan.id})"


def limit_of(plan: PricePlan, license_id: str, start: datetime, end: datetime | None) -> Limit | None:
    """The plan's ceiling on `license_id` over [start, end); None when its card sets none (or it has no card:
    it charges none of those seats)."""
    maximum = _maximum(plan.license_card(license_id))
    return None if maximum is None else Limit(start, end, maximum, named(plan))


def has_seat_limits(plan: PricePlan) -> bool:
    """Whether a license card of the plan sets a ceiling: a plan without one allows any seats, none need reading."""
    return any(_maximum(card) is not None for card in plan.rateCards.licenseRateCards)


def _maximum(card: LicenseRateCard | None) -> int | None:
    return card.config.maxQuantity if card is not None and card.config is not None else None


async def limits_from(session: AsyncSession, account_id: str, license_id: str, since: datetime) -> list[Limit]:
    """The ceilings of the account's plans on `license_id` from `since` on, the scheduled ones included."""
    associations = list(await session.scalars(select(PlanAssociationRow).where(
        PlanAssociationRow.account_id == account_id,
        PlanAssociationRow.effective_until.is_(None) | (PlanAssociationRow.effective_until > since))))
    plans = await plans_by_association(session, [a.id for a in associations])
    limits = (limit_of(plans[a.id], license_id, a.effective_from, a.effective_until) for a in associations)
    return [limit for limit in limits if limit is not None]


async def check_plan_allows_seats(session: AsyncSession, account_id: str, plan: PricePlan, since: datetime,
                                  field: str, *, until: datetime | None = None,
                                  way_out: str = ANOTHER_PLAN) -> None:
    """Refuses putting the account on `plan` over [since, until) (None: open-ended) while it holds, at some
    instant then, more seats of a license than the plan's card allows: the plan would bill seats past its limit."""
    if has_seat_limits(plan):
        held = (await licenses.changes_of(session, [account_id])).get(account_id, {})
        check_seats_allowed(account_id, held, plan, since, field, until=until, way_out=way_out)


def check_seats_allowed(account_id: str, held: Mapping[str, list[licenses.Change]], plan: PricePlan,
                        since: datetime, field: str, *, until: datetime | None = None,
                        way_out: str = ANOTHER_PLAN) -> None:
    """check_plan_allows_seats on the account's seat changes already read (`held`: license id -> its changes)."""
    for license_id, changes in sorted(held.items()):
        limit = limit_of(plan, license_id, since, until)
        excess = None if limit is None else licenses.first_excess(licenses.fold(changes), [limit], since)
        if excess is not None:
            instant, count, limit = excess
            raise InvalidInput(field, (
                f"account {account_id!r} holds {count} seats of {license_id!r} from {instant.isoformat()}, above "
                f"the config.maxQuantity {limit.maximum} of {named(plan)}'s license card; lower those seats "
                f"to at most {limit.maximum} first (update_license from {instant.isoformat()}), {way_out}"))
