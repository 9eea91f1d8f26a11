"""An account's billing periods from its plan associations: pure (no I/O, no clock).

Each association contributes its plan's cycles clipped to [effectiveFrom, effectiveUntil), so a
mid-cycle plan change ends the old plan's period at the change and starts the new plan's there.
Periods close in order: a period is due at max(its end + grace period, the previous period's due
instant). Because the due instant is a function of the schedule only, billing in several runs
gives the same invoices (and invoice dates) as billing once.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache

from togai_engine.cycles import (
    Cycle,
    CycleConfig,
    cut_by_change,
    cycle_containing,
    cycle_index,
    grace_end,
    schedule_periods,
)
from togai_engine.invoices.fixed_fees import FeeSchedule, fee_schedule
from togai_engine.invoices.periods import QuotaWindows, quota_windows
from togai_engine.plans.overrides import PlanRef
from togai_engine.plans.schemas import PricePlan


@dataclass(frozen=True)
class Association:
    id: int
    account_id: str
    plan_id: str
    effective_from: datetime
    effective_until: datetime | None
    anchor: datetime
    version: int = 1
    overridden: bool = False  # it carries rateCardOverrides: its plan is its own
    plan_since: datetime | None = None  # where the account's unbroken run on this plan began (cycles.run_starts)
    usage_since: datetime | None = None  # where its uninterrupted run of plans (any, back to back) began

    @property
    def plan_key(self) -> str:
        """Its key in the `plans` mappings: plan version, and the association itself when it has overrides."""
        return PlanRef(self.plan_id, self.version, self.id if self.overridden else None).key


@dataclass(frozen=True)
class BillingPeriod:
    association: Association
    plan: PricePlan
    period: Cycle  # the billed window, clipped to the association
    full_cycle: Cycle  # the plan's schedule cycle containing it (the base for proration)
    due_at: datetime  # when it becomes DUE (the invoice date)
    cut_by_change: bool = False  # a plan change or end cut it short: its fixed fees are prorated
    fees: FeeSchedule | None = None  # where it sits in its association, for fixed fees (invoices/fixed_fees.py)

    @property
    def opens_association(self) -> bool:
        """The association's first period: its in-advance charges are on the advance invoice issued as it starts
        (invoices/compose.compose_opening_invoice)."""
        return self.fees is not None and self.period.start == self.association.effective_from

    @property
    def quota_windows(self) -> QuotaWindows | None:
        """The quota's cycle before the period and through its end, which its entitlement overage is based on
        (invoices/periods.quota_windows); None when the period starts that cycle."""
        association = self.association
        return quota_windows(association.account_id, self.period, self.full_cycle,
                             association.usage_since or association.effective_from)

    def cycle_index_for(self, plan: PricePlan) -> int:
        """The period's place on its plan (0 for the first; a version migration or a new deal does not restart
        the count), which only pricing rules read: 0 when
        `plan` (the one priced: the association's, or a lab candidate) has none, saving two cycle lookups."""
        if not plan.pricingRules:
            return 0
        association = self.association
        return cycle_index(self.plan.cycle_config, association.anchor,
                           association.plan_since or association.effective_from, self.period.start)


@dataclass(frozen=True)
class Timeline:
    due: list[BillingPeriod]  # started, due at `now`, not yet invoiced: close these, in order
    open: list[BillingPeriod]  # started, not due: their invoices are DRAFT
    next_run_at: datetime | None  # the next instant something starts or becomes due


def full_cycle_of(plan: PricePlan, association: Association, period_start: datetime) -> Cycle:
    return cycle_containing(plan.cycle_config, association.anchor, period_start)


@lru_cache(maxsize=4096)
def _periods(
    config: CycleConfig, anchor: datetime, begin: datetime, until: datetime | None, now: datetime
) -> tuple[tuple[Cycle, Cycle, datetime], ...]:
    """(period, full cycle, grace end) of a schedule up to the period containing `now`; cached because
    a bill run meets the same (plan, start) for thousands of accounts."""
    return tuple(
        (period, cycle_containing(config, anchor, period.start), grace_end(period, config))
        for period in schedule_periods(config, anchor, begin, until, now)
    )


def account_timeline(
    associations: Sequence[Association],
    plans: Mapping[str, PricePlan],
    billed_until: datetime | None,
    now: datetime,
    billed_due: datetime | None = None,
) -> Timeline:
    """The periods of one account after `billed_until`, split into due and open at `now`.

    `associations` must be the account's, ordered by effective_from and not overlapping. `billed_due` is the due
    instant of the period ending at `billed_until` (its invoice date): the periods skipped are not walked, and a
    plan attached from `billed_until` on after they were invoiced still waits for it.
    """
    started: list[BillingPeriod] = []
    upcoming: list[datetime] = []
    previous_due = billed_due if billed_until is not None else None
    ends = {a.effective_until for a in associations}
    for association in associations:
        if billed_until is not None and association.effective_until is not None \
                and association.effective_until <= billed_until:
            continue
        begin = association.effective_from
        if billed_until is not None and billed_until > begin:
            begin = billed_until  # always a period boundary, so clipping here changes no period
        if begin > now:
            upcoming.append(begin)
            continue
        plan = plans[association.plan_key]
        periods = _periods(plan.cycle_config, association.anchor, begin, association.effective_until, now)
        for period, full_cycle, due_at in periods:
            if previous_due is not None and previous_due > due_at:
                due_at = previous_due
            previous_due = due_at
            follows = association.effective_from in ends
            cut = cut_by_change(period, full_cycle, association.effective_from, association.effective_until, follows)
            fees = fee_schedule(plan.cycle_config, association.anchor, association.effective_from,
                                association.effective_until, full_cycle, follows, association.plan_since)
            started.append(BillingPeriod(association, plan, period, full_cycle, due_at, cut, fees))
        last = periods[-1][0] if periods else None
        if last is not None and last.end > now and (
            association.effective_until is None or last.end < association.effective_until
        ):
            upcoming.append(last.end)
    due = [p for p in started if p.due_at <= now]
    open_ = started[len(due):]
    candidates = upcoming + ([open_[0].due_at] if open_ else [])
    return Timeline(due=due, open=open_, next_run_at=min(candidates) if candidates else None)
