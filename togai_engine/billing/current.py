"""The plan and billing period an account is in at an instant (for entitlements, wallets, get_account),
and the periods not invoiced yet (for the wallet's hold on expiring credit, and PREPAID credits paid late)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession

from togai_engine.billing.schedule import Association
from togai_engine.billing.state import AccountState, load_states
from togai_engine.cycles import Cycle, clip, cycle_containing, usage_cycle
from togai_engine.errors import EngineError
from togai_engine.plans.overrides import ResolvedPlans, UnresolvedPlan
from togai_engine.plans.schemas import PricePlan
from togai_engine.plans.service import get_versions


@dataclass(frozen=True)
class Schedule:
    """One account's billing state and the plans it bills with, loaded once (`load_schedule`) for a read that asks
    both what is in effect now and which periods are not invoiced yet; nothing may change them in between (a bill
    run would: load after closing)."""

    account_id: str
    state: AccountState | None
    plans: ResolvedPlans

    def plan_and_cycle(self, now: datetime) -> tuple[PricePlan, Cycle, Association] | None:
        """current_plan_and_cycle from the loaded state."""
        association = self.state.association_at(now) if self.state is not None else None
        if association is None:
            return None
        plan = self.plans[association.plan_key]
        cycle = period_at(plan, association.anchor, association.effective_from, association.effective_until, now)
        return plan, cycle, association

    async def in_effect(self, session: AsyncSession, now: datetime
                        ) -> tuple[tuple[PricePlan, Cycle, Association] | None, UnresolvedPlan | None]:
        """(plan_and_cycle, None); when the plan that prices the association in effect cannot be resolved (its
        stored deal no longer validates), its version's plan and period (a deal replaces cards only: the version
        names the plan and its cycles) with why; (None, why) when the version cannot be read either."""
        try:
            return self.plan_and_cycle(now), None
        except UnresolvedPlan as exc:
            assert self.state is not None
            association = self.state.association_at(now)
            assert association is not None  # plan_and_cycle looked its plan up
            key = (association.plan_id, association.version)
            version = (await get_versions(session, [key], problems={})).get(key)
            if version is None:
                return None, exc
            cycle = period_at(version, association.anchor, association.effective_from, association.effective_until,
                              now)
            return (version, cycle, association), exc

    def unclosed(self, now: datetime) -> list[tuple[datetime, datetime]]:
        """unclosed_periods from the loaded state."""
        return [(end, due) for end, due in self.pending(now) if end <= now]

    def pending(self, now: datetime) -> list[tuple[datetime, datetime]]:
        """pending_periods from the loaded state."""
        state = self.state
        if state is None or not state.associations:
            return []
        try:
            timeline = state.timeline(self.plans, now)
        except UnresolvedPlan:
            # its periods are unknown, not none: [] would expire a grant that may pay one (its deal fixed, the run
            # closes them), so the caller fails naming the deal or version and the way out
            raise
        except EngineError:
            return []
        return [(bp.period.end, bp.due_at) for bp in timeline.due + timeline.open]

    async def unclosed_periods(self, session: AsyncSession, account_id: str,
                               now: datetime) -> list[tuple[datetime, datetime]]:
        """`unclosed` as the wallet asks it (wallets.service.UnclosedPeriods), for this account only."""
        assert account_id == self.account_id, (account_id, self.account_id)
        return self.unclosed(now)


async def load_schedule(session: AsyncSession, account_id: str) -> Schedule:
    states, plans = await load_states(session, [account_id])
    return Schedule(account_id, states.get(account_id), plans)


async def current_plan_and_cycle(
    session: AsyncSession, account_id: str, now: datetime
) -> tuple[PricePlan, Cycle, Association] | None:
    """(plan in effect at `now`, the billing period containing `now`, the association in effect),
    or None when no plan is in effect. The period is clipped to the association: after a mid-cycle plan
    change the new plan's first period starts at the change."""
    return (await load_schedule(session, account_id)).plan_and_cycle(now)


def period_at(plan: PricePlan, anchor: datetime, effective_from: datetime, effective_until: datetime | None,
              now: datetime) -> Cycle:
    """The billing period containing `now` of an association in effect at `now`: the plan's cycle,
    clipped to the association (after a mid-cycle plan change the new plan's first period starts at
    the change)."""
    cycle = clip(cycle_containing(plan.cycle_config, anchor, now), effective_from, effective_until)
    assert cycle is not None  # the association contains `now`, and so does its cycle
    return cycle


async def current_plan_and_usage_cycle(
    session: AsyncSession, account_id: str, now: datetime
) -> tuple[PricePlan, Cycle] | None:
    """(plan in effect at `now`, the cycle its quotas count: usage_cycle_at), or None when no plan is in
    effect. entitlements reads the same in one statement; this is the reference it is tested against."""
    states, plans = await load_states(session, [account_id])
    state = states.get(account_id)
    association = state.association_at(now) if state is not None else None
    if state is None or association is None:
        return None
    plan = plans[association.plan_key]
    spans = [(a.effective_from, a.effective_until) for a in state.associations if a.effective_from <= now]
    return plan, usage_cycle_at(plan, association.anchor, coverage_start(spans), now)


def usage_cycle_at(plan: PricePlan, anchor: datetime, since: datetime, now: datetime) -> Cycle:
    """The plan's schedule cycle containing `now`, NOT clipped to the association: after a mid-cycle plan
    change it still starts where the cycle started (under the previous plan), so quotas count the whole
    cycle. Only `since` (coverage_start: when the account's uninterrupted run of plans began) bounds its
    start: usage from before the account had a plan never counts. Its end is the cycle end."""
    return usage_cycle(cycle_containing(plan.cycle_config, anchor, now), since)


def coverage_start(spans: Sequence[tuple[datetime, datetime | None]]) -> datetime:
    """Where the run of back-to-back plan associations in effect now began. `spans`: (effectiveFrom,
    effectiveUntil) of the account's associations that began by now, in order; the last is in effect. A
    plan change keeps the run going; a gap with no plan starts a new one."""
    start = spans[-1][0]
    for begin, until in reversed(spans[:-1]):
        if until != start:
            break
        start = begin
    return start


async def unclosed_periods(session: AsyncSession, account_id: str, now: datetime) -> list[tuple[datetime, datetime]]:
    """(period end, due instant) of the account's periods that ended by `now` and are not invoiced DUE
    yet: in their grace period, or due but not closed by a bill run. A credit grant that may pay one of
    them is held by the wallet (not expired) until it is. Empty when billing cannot read the schedule
    (a bill run reports that account as failed); raises when a plan it prices with cannot be resolved."""
    return (await load_schedule(session, account_id)).unclosed(now)


async def pending_periods(session: AsyncSession, account_id: str, now: datetime) -> list[tuple[datetime, datetime]]:
    """(period end, due instant) of every period of the account whose invoice is not DUE yet at `now`: those that
    ended (unclosed_periods) and the one under way. A credit grant can still pay one of them, no other. Empty when
    billing cannot read the schedule (a bill run reports that account as failed); raises when a plan it prices with
    cannot be resolved."""
    return (await load_schedule(session, account_id)).pending(now)
