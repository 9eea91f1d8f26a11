"""Which cycles a fixed fee pays for on one invoice: pure (no I/O, no clock). compose.py prices them.

Cycle index: the first period of the account's unbroken run on the plan (possibly partial, from its
effectiveFrom to the next boundary) is cycle 0; each plan cycle after it counts one more, whatever part of it the
association covers. A version migration or a new deal splits the association but not the run, so it neither
charges a setup fee again nor moves a recurrenceConfig's beat (cycles.run_starts).

- `type` RECURRING pays cycle i when i >= offset and (i - offset) % interval == 0 (`recurrenceConfig`; every
  cycle without it). ONE_TIME (a setup fee) pays cycle 0 only, in full: never prorated, never credited.
- `invoiceTiming` IN_ARREARS: a cycle's fee is on that cycle's own invoice. IN_ADVANCE (Togai: "invoiced in
  the previous billing cycle"): the invoice of period i carries the fee of cycle i + 1, if the association
  reaches it (prorated when the association ends inside it); the fee of the association's first period, which no
  invoice precedes, is on the advance invoice issued as the association starts (part OPENING).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache
from typing import Literal

from togai_engine.cycles import Cycle, CycleConfig, clip, cut_by_change, cycle_index, next_cycle
from togai_engine.plans.schemas import FixedFeeRateCard

FeePart = Literal["PERIOD", "OPENING", "BOTH"]


@dataclass(frozen=True)
class ChargeTiming:
    """The timing fields of a card charged like a fixed fee: a PREPAID credit-grant card's purchase is charged as
    an IN_ADVANCE fee that is never prorated (credits are bought whole)."""

    invoiceTiming: str
    type: str
    enableProration: bool = False
    recurrenceConfig: None = None


@dataclass(frozen=True)
class FeeSchedule:
    """Where a billed period sits in its plan association, as fixed fees need it."""

    config: CycleConfig
    anchor: datetime
    association_start: datetime  # effectiveFrom: its first invoice also carries its first IN_ADVANCE fee
    next_period: Cycle | None = None  # the association's period after this one; None when it ends first
    next_full_cycle: Cycle | None = None
    next_cut: bool = False  # the association ends inside next_period (its fees are prorated)
    plan_start: datetime | None = None  # where the account's run on the plan began: cycle 0 (association_start)

    @property
    def origin(self) -> datetime:
        return self.plan_start or self.association_start

    def cycle_index(self, period_start: datetime) -> int:
        return cycle_index(self.config, self.anchor, self.origin, period_start)


@dataclass(frozen=True)
class FeeCharge:
    """One cycle a fee line pays for."""

    period: Cycle  # the association's part of the cycle
    full_cycle: Cycle
    prorated: bool
    in_advance: bool  # paid for a later period than the invoice's own


@lru_cache(maxsize=4096)  # a bill run meets the same (plan, association start, cycle) for many accounts
def fee_schedule(config: CycleConfig, anchor: datetime, effective_from: datetime, effective_until: datetime | None,
                 full_cycle: Cycle, follows_another_plan: bool, plan_start: datetime | None = None) -> FeeSchedule:
    """The schedule of the association's period inside `full_cycle`; `plan_start` is where the account's run on
    the plan began (default: the association's start)."""
    following = next_cycle(config, anchor, full_cycle)
    upcoming = clip(following, effective_from, effective_until)
    if upcoming is None:
        return FeeSchedule(config, anchor, effective_from, plan_start=plan_start)
    cut = cut_by_change(upcoming, following, effective_from, effective_until, follows_another_plan)
    return FeeSchedule(config, anchor, effective_from, upcoming, following, cut, plan_start)


def fee_charges(fee: FixedFeeRateCard | ChargeTiming, period: Cycle, full_cycle: Cycle, cut: bool,
                schedule: FeeSchedule | None, *, part: FeePart = "PERIOD", quoted_cycle: int = 0) -> list[FeeCharge]:
    """The cycles `fee` is charged for on an invoice of `period`: its period invoice (`part` PERIOD), the advance
    invoice issued as the association starts (OPENING: the first period's in-advance fee), or both (an invoice
    opened before advance invoices existed). Without `schedule` the period is a quote of one cycle of the plan,
    cycle `quoted_cycle` (0: the association's first), with both parts: its own fee once, whatever its timing;
    a ONE_TIME fee in cycle 0 only; a recurrenceConfig's beat at that index."""
    start = schedule.association_start if schedule is not None else period.start
    origin = schedule.origin if schedule is not None else period.start
    if schedule is None:
        part = "BOTH"
    first = period.start == start
    covered: list[FeeCharge] = []
    own_cycle = part != "OPENING" if fee.invoiceTiming == "IN_ARREARS" else first and part != "PERIOD"
    if own_cycle:
        partial = period != full_cycle
        covered.append(FeeCharge(period, full_cycle, partial and (fee.enableProration or cut), in_advance=False))
    if (part != "OPENING" and fee.invoiceTiming == "IN_ADVANCE" and schedule is not None
            and schedule.next_period is not None):
        assert schedule.next_full_cycle is not None
        covered.append(FeeCharge(schedule.next_period, schedule.next_full_cycle, schedule.next_cut, in_advance=True))
    if fee.type == "ONE_TIME":
        first_cycle = schedule is not None or quoted_cycle == 0
        return [FeeCharge(c.period, c.full_cycle, False, c.in_advance) for c in covered
                if c.period.start == origin and first_cycle]
    recurrence = fee.recurrenceConfig
    if recurrence is None or (recurrence.interval == 1 and recurrence.offset == 0):
        return covered
    charged: list[FeeCharge] = []
    for charge in covered:
        if schedule is None:
            index = quoted_cycle
        else:
            index = 0 if charge.period.start == origin else schedule.cycle_index(charge.period.start)
        if index >= recurrence.offset and (index - recurrence.offset) % recurrence.interval == 0:
            charged.append(charge)
    return charged
