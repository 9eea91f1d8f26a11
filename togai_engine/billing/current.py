"""The plan and billing period an account is in at an instant (for entitlements, wallets, get_account),
and the ended periods not invoiced yet (for the wallet's hold on expiring credit)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession

from togai_engine.billing.state import load_states
from togai_engine.cycles import Cycle, clip, cycle_containing
from togai_engine.errors import EngineError
from togai_engine.plans.schemas import PricePlan


async def current_plan_and_cycle(
    session: AsyncSession, account_id: str, now: datetime
) -> tuple[PricePlan, Cycle, datetime] | None:
    """(plan in effect at `now`, the billing period containing `now`, when that association started),
    or None when no plan is in effect. The period is clipped to the association: after a mid-cycle plan
    change the new plan's first period starts at the change."""
    states, plans = await load_states(session, [account_id])
    state = states.get(account_id)
    association = state.association_at(now) if state is not None else None
    if association is None:
        return None
    plan = plans[association.plan_id]
    cycle = period_at(plan, association.anchor, association.effective_from, association.effective_until, now)
    return plan, cycle, association.effective_from


def period_at(plan: PricePlan, anchor: datetime, effective_from: datetime, effective_until: datetime | None,
              now: datetime) -> Cycle:
    """The billing period containing `now` of an association in effect at `now`: the plan's cycle,
    clipped to the association (after a mid-cycle plan change the new plan's first period starts at
    the change)."""
    cycle = clip(cycle_containing(plan.cycle_config, anchor, now), effective_from, effective_until)
    assert cycle is not None  # the association contains `now`, and so does its cycle
    return cycle


async def unclosed_periods(session: AsyncSession, account_id: str, now: datetime) -> list[tuple[datetime, datetime]]:
    """(period end, due instant) of the account's periods that ended by `now` and are not invoiced DUE
    yet: in their grace period, or due but not closed by a bill run. A credit grant that may pay one of
    them is held by the wallet (not expired) until it is. Empty when billing cannot read the schedule
    (a bill run reports that account as failed)."""
    states, plans = await load_states(session, [account_id])
    state = states.get(account_id)
    if state is None or not state.associations:
        return []
    try:
        timeline = state.timeline(plans, now)
    except EngineError:
        return []
    return [(bp.period.end, bp.due_at) for bp in timeline.due + timeline.open if bp.period.end <= now]
