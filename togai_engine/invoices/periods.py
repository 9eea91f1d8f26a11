"""Composing the invoice of a stored invoice row's period from the usage recorded so far: the DRAFT view, and
the recomposition of a closed period that late usage reopens (late_usage.py). Pure given its inputs."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from decimal import Decimal

from togai_engine.cycles import Cycle, cut_by_change, cycle_containing, cycle_index, run_starts, usage_cycle
from togai_engine.errors import EngineError
from togai_engine.invoices.compose import ComposedInvoice, CycleUsage, compose_invoice
from togai_engine.invoices.fixed_fees import fee_schedule
from togai_engine.invoices.models import InvoiceRow
from togai_engine.licenses.service import Seats
from togai_engine.meters.usage import Window
from togai_engine.plans.models import PlanAssociationRow
from togai_engine.plans.schemas import PricePlan

QuotaWindows = tuple[Window, Window]  # the quota's cycle before a period and through its end


def compose_period(row: InvoiceRow, plan: PricePlan, associations: list[PlanAssociationRow],
                   quantities: Mapping[Window, Mapping[str, Decimal]], *,
                   seats: Mapping[Window, Seats] | None = None, cycle_overage: bool = True) -> ComposedInvoice:
    """The invoice of `row`'s period under its plan and association, from `quantities` (quantities_by_window
    over the windows `period_windows` names) and `seats` (licenses.seats_by_window); `associations` are the
    account's. Without `cycle_overage` the overage is the period's alone, as invoices closed before it was counted
    over the quota's cycle billed it (late usage recomposes those as they were billed)."""
    association = _association(row, associations)
    period = Cycle(row.period_start, row.period_end)
    full_cycle = cycle_containing(plan.cycle_config, association.anchor, period.start)
    follows = any(a.effective_until == association.effective_from for a in associations)
    cut = cut_by_change(period, full_cycle, association.effective_from, association.effective_until, follows)
    window = (row.account_id, period.start, period.end)
    plan_since = _plan_since(associations, association)
    index = cycle_index(plan.cycle_config, association.anchor, plan_since, period.start) \
        if plan.pricingRules else 0  # only rules read it
    fees = fee_schedule(plan.cycle_config, association.anchor, association.effective_from,
                        association.effective_until, full_cycle, follows, plan_since)
    windows = quota_windows(row.account_id, period, full_cycle, _usage_since(associations, association)) \
        if cycle_overage else None
    return compose_invoice(plan, row.currency, period, full_cycle, quantities.get(window, {}), cut_by_change=cut,
                           licenses=(seats or {}).get(window, {}), cycle_index=index, fees=fees,
                           opening_fees=row.carries_opening_fees, cycle_usage=cycle_usage(quantities, windows))


def period_windows(row: InvoiceRow, plan: PricePlan,
                   associations: list[PlanAssociationRow]) -> list[tuple[str, datetime, datetime, list[str]]]:
    """What quantities_by_window reads for compose_period of `row`: the plan's meters over the period, and its
    overage cards' meters over the quota's cycle before it and through its end (none when the period starts that
    cycle, or its association is gone: compose_period says why)."""
    wanted = [(row.account_id, row.period_start, row.period_end, plan.billed_meter_ids)]
    if any(a.id == row.association_id for a in associations):
        wanted += overage_windows(plan, row_quota_windows(row, plan, associations))
    return wanted


def row_quota_windows(row: InvoiceRow, plan: PricePlan,
                      associations: list[PlanAssociationRow]) -> QuotaWindows | None:
    """quota_windows of `row`'s period under its plan and association (compose_period raises when it is gone)."""
    association = _association(row, associations)
    full_cycle = cycle_containing(plan.cycle_config, association.anchor, row.period_start)
    return quota_windows(row.account_id, Cycle(row.period_start, row.period_end), full_cycle,
                         _usage_since(associations, association))


def quota_windows(account_id: str, period: Cycle, full_cycle: Cycle, since: datetime) -> QuotaWindows | None:
    """The windows a period's entitlement overage is based on (README): the quota's cycle (cycles.usage_cycle, what
    check_entitlement counts; `since` is where the account's uninterrupted run of plans began) before the period and
    through its end. None when the period starts that cycle: its own usage is the cycle's."""
    start = usage_cycle(full_cycle, since).start
    if start >= period.start:
        return None
    return (account_id, start, period.start), (account_id, start, period.end)


def overage_windows(plan: PricePlan, windows: QuotaWindows | None) -> list[tuple[str, datetime, datetime, list[str]]]:
    """quantities_by_window's requests for `windows` (quota_windows): the plan's overage cards' meters."""
    meters = sorted({overage.usage_meter_id for overage in plan.overage_pricing})
    if windows is None or not meters:
        return []
    return [(account_id, start, end, meters) for account_id, start, end in windows]


def cycle_usage(quantities: Mapping[Window, Mapping[str, Decimal]], windows: QuotaWindows | None) -> CycleUsage | None:
    """The quota's cycle usage over `windows` (quota_windows), read from `quantities`."""
    if windows is None:
        return None
    before, through = windows
    return CycleUsage(before[1], quantities.get(before, {}), quantities.get(through, {}))


def _association(row: InvoiceRow, associations: list[PlanAssociationRow]) -> PlanAssociationRow:
    association = next((a for a in associations if a.id == row.association_id), None)
    if association is None:
        raise EngineError(f"its plan association was replaced by a plan change; list_invoices again for "
                          f"account {row.account_id!r}'s current invoices")
    return association


def _usage_since(associations: list[PlanAssociationRow], association: PlanAssociationRow) -> datetime:
    """Where the account's uninterrupted run of plans holding `association` began (any plans, back to back): a
    quota's cycle never starts before it (cycles.usage_cycle)."""
    return _run_start(associations, association, by_plan=False)


def _plan_since(associations: list[PlanAssociationRow], association: PlanAssociationRow) -> datetime:
    """Where the account's unbroken run on `association`'s plan began (cycles.run_starts)."""
    return _run_start(associations, association, by_plan=True)


def _run_start(associations: list[PlanAssociationRow], association: PlanAssociationRow, *, by_plan: bool) -> datetime:
    """cycles.run_starts of `association` among the account's: its runs on one plan, or on any plans."""
    ordered = sorted(associations, key=lambda a: a.effective_from)
    runs = run_starts([(a.price_plan_id if by_plan else "", a.effective_from, a.effective_until) for a in ordered])
    return next(since for a, since in zip(ordered, runs, strict=True) if a.id == association.id)
