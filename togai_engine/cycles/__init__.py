"""Billing-cycle arithmetic (pure): Togai's PricingCycleConfig, cycles, partial periods, proration."""

from togai_engine.cycles.cycles import (
    ANNUALLY,
    HALF_YEARLY,
    INTERVALS,
    MONTHLY,
    QUARTERLY,
    WEEKLY,
    Cycle,
    CycleConfig,
    clip,
    cycle_containing,
    cycle_fraction,
    cycles_between,
    grace_end,
    next_cycle,
    resolve_offsets,
    schedule_periods,
)

__all__ = [
    "ANNUALLY",
    "HALF_YEARLY",
    "INTERVALS",
    "MONTHLY",
    "QUARTERLY",
    "WEEKLY",
    "Cycle",
    "CycleConfig",
    "clip",
    "cycle_containing",
    "cycle_fraction",
    "cycles_between",
    "grace_end",
    "next_cycle",
    "resolve_offsets",
    "schedule_periods",
]
