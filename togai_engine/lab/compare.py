"""Comparing plans on an account's own billing periods: pure (no I/O, no clock).

Every amount comes from `compose_invoice`, the function that composes real invoices, applied to the
account's real period (`BillingPeriod.period` and the `full_cycle` it is prorated against) and the
quantities billing reads for that period (with its quota cycle's usage around it, the base of its overage). So
pricing the account's own plan gives its invoice: a stored candidate that is the period's own plan version is
priced with the account's rateCardOverrides, if any.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from fractions import Fraction

from togai_engine.billing.schedule import BillingPeriod
from togai_engine.common.numbers import EXACT_MONEY_CONTEXT, exact_sum
from togai_engine.cycles.cycles import cycle_containing
from togai_engine.invoices.compose import CycleUsage, compose_invoice, compose_opening_invoice
from togai_engine.lab.candidates import Candidate, priced_for
from togai_engine.lab.schemas import (
    AccountComparison,
    AccountTotal,
    CandidateAmount,
    CandidateTotal,
    CycleComparison,
    Mover,
    Unsupported,
)
from togai_engine.licenses.service import Seats
from togai_engine.plans.schemas import PricePlan
from togai_engine.pricing import round_fraction_places, round_money

ZERO = Decimal(0)
Quantities = Mapping[str, Decimal]  # usage meter id -> quantity over one period


@dataclass(frozen=True)
class InvoiceFact:
    """What an invoice that is no longer DRAFT says about its period."""

    id: str
    status: str
    currency: str
    total: Decimal


@dataclass(frozen=True)
class AccountUsage:
    account_id: str
    customer_id: str
    currency: str  # the account's invoiceCurrency
    periods: Sequence[BillingPeriod]  # the periods to compare, in order
    invoices: Mapping[datetime, InvoiceFact]  # by period start
    quantities: Mapping[datetime, Quantities]  # by period start
    seats: Mapping[datetime, Seats] = field(default_factory=dict)  # by period start: the account's seat spans
    # by period start: the quota's cycle usage around the period, which its overage is based on (absent: none)
    cycle_usage: Mapping[datetime, CycleUsage | None] = field(default_factory=dict)


def price(plan: PricePlan, currency: str, bp: BillingPeriod, quantities: Quantities,
          seats: Seats | None = None, cycle_usage: CycleUsage | None = None) -> Decimal:
    """What `plan` invoices (totals, before credits) for the account's period `bp`, its seats included: the
    period's invoice, and for an association's first period the advance invoice of its in-advance fees.
    `cycle_usage`: the quota's cycle usage around the period (its overage cards' base, as billing reads it)."""
    total = compose_invoice(plan, currency, bp.period, bp.full_cycle, quantities, cut_by_change=bp.cut_by_change,
                            licenses=seats or {}, cycle_index=bp.cycle_index_for(plan), fees=bp.fees,
                            cycle_usage=cycle_usage).total
    if bp.opens_association:
        assert bp.fees is not None
        opening = compose_opening_invoice(plan, currency, bp.period, bp.full_cycle, cut_by_change=bp.cut_by_change,
                                          fees=bp.fees)
        total = EXACT_MONEY_CONTEXT.add(total, opening.total if opening is not None else ZERO)  # exact past 28 digits
    return round_money(total, currency)  # already rounded: this only shows 0 as 0.00


def other_cycle(plan: PricePlan, bp: BillingPeriod) -> str | None:
    """Why `plan` cannot be priced on the account's period `bp` (None: it can): its pricingCycleConfig cuts another
    cycle there. Its fees, minimum commitment and tiers count per its own cycle, so priced on the account's periods
    a QUARTERLY fee would be charged every month; the lab never cuts periods of its own, so it refuses the period."""
    own = cycle_containing(plan.cycle_config, bp.association.anchor, bp.period.start)
    if own == bp.full_cycle:
        return None
    return (f"pricingCycleConfig: {plan.name!r} bills {plan.pricingCycleConfig.interval} cycles, "
            f"[{own.start.isoformat()}, {own.end.isoformat()}) here, and this account's periods on "
            f"{bp.plan.name!r} are {bp.plan.pricingCycleConfig.interval} cycles, [{bp.full_cycle.start.isoformat()}, "
            f"{bp.full_cycle.end.isoformat()}): the lab prices candidates on the account's own periods, so those "
            f"periods are left out of its totals. To compare its rates here, give it this account's "
            f"pricingCycleConfig {bp.plan.pricingCycleConfig.model_dump(exclude_none=True)}, or simulate accounts "
            f"billed on its cycle")


def compare_account(account: AccountUsage, candidates: Sequence[Candidate]) -> AccountComparison:
    cycles: list[CycleComparison] = []
    unsupported: dict[tuple[int, str, str], str] = {}  # (candidate, currency, field at fault) -> why
    for bp in account.periods:
        quantities = account.quantities.get(bp.period.start, {})
        seats = account.seats.get(bp.period.start, {})
        around = account.cycle_usage.get(bp.period.start)
        invoice = account.invoices.get(bp.period.start)
        if invoice is not None:
            currency, status, invoice_id, actual = invoice.currency, invoice.status, invoice.id, invoice.total
        else:  # not invoiced yet: what its DRAFT says now
            currency, status, invoice_id = account.currency, "DRAFT", None
            actual = price(bp.plan, currency, bp, quantities, seats, around)
        actual = round_money(actual, currency)
        amounts: list[CandidateAmount] = []
        for candidate in candidates:
            plan = priced_for(candidate.plan, candidate.stored, bp.plan)
            if currency not in plan.supportedCurrencies:
                unsupported[(candidate.index, currency, "supportedCurrencies")] = (
                    f"{plan.name!r} does not price {currency} (it supports {', '.join(plan.supportedCurrencies)}); "
                    f"this account's {currency} cycles are left out of its totals")
                continue
            refused = other_cycle(plan, bp)
            if refused is not None:
                unsupported[(candidate.index, currency, "pricingCycleConfig")] = refused
                continue
            amount = price(plan, currency, bp, quantities, seats, around)
            amounts.append(CandidateAmount(candidate=candidate.index, amount=amount,
                                           difference=EXACT_MONEY_CONTEXT.subtract(amount, actual)))
        cycles.append(CycleComparison(
            startDate=bp.period.start, endDate=bp.period.end, currency=currency, pricePlanId=bp.plan.id,
            status=status, invoiceId=invoice_id, actual=actual, candidates=amounts))  # type: ignore[arg-type]
    return AccountComparison(
        accountId=account.account_id, customerId=account.customer_id, currency=account.currency, cycles=cycles,
        totals=_account_totals(cycles),
        unsupported=[Unsupported(candidate=i, currency=c, reason=r) for (i, c, _), r in sorted(unsupported.items())],
    )


def _account_totals(cycles: Sequence[CycleComparison]) -> list[AccountTotal]:
    sums: dict[tuple[int, str], tuple[int, Decimal, Decimal]] = {}
    for cycle in cycles:
        for priced in cycle.candidates:
            key = (priced.candidate, cycle.currency)
            count, actual, amount = sums.get(key, (0, ZERO, ZERO))
            sums[key] = (count + 1, EXACT_MONEY_CONTEXT.add(actual, cycle.actual),
                         EXACT_MONEY_CONTEXT.add(amount, priced.amount))
    return [
        AccountTotal(candidate=i, currency=c, cycles=count, actual=actual, amount=amount,
                     difference=EXACT_MONEY_CONTEXT.subtract(amount, actual))
        for (i, c), (count, actual, amount) in sorted(sums.items())
    ]


def summarize(
    accounts: Sequence[AccountComparison], candidates: Sequence[Candidate], top: int
) -> list[CandidateTotal]:
    """Totals per candidate and currency, with the accounts whose charge moves most either way."""
    groups: dict[tuple[int, str], list[tuple[str, AccountTotal]]] = defaultdict(list)
    for account in accounts:
        for total in account.totals:
            groups[(total.candidate, total.currency)].append((account.accountId, total))
    names = {c.index: c.plan.name for c in candidates}
    results = []
    for (index, currency), members in sorted(groups.items()):
        actual = exact_sum(t.actual for _, t in members)
        amount = exact_sum(t.amount for _, t in members)
        difference = EXACT_MONEY_CONTEXT.subtract(amount, actual)
        movers = [Mover(accountId=a, actual=t.actual, amount=t.amount, difference=t.difference) for a, t in members]
        increases = sorted((m for m in movers if m.difference > 0),
                           key=lambda m: (m.difference.copy_negate(), m.accountId))
        decreases = sorted((m for m in movers if m.difference < 0), key=lambda m: (m.difference, m.accountId))
        results.append(CandidateTotal(
            candidate=index, name=names[index], currency=currency, accounts=len(members),
            cycles=sum(t.cycles for _, t in members), actual=actual, amount=amount, difference=difference,
            differencePercent=percent(difference, actual), biggestIncreases=increases[:top],
            biggestDecreases=decreases[:top],
        ))
    return results


def percent(part: Decimal, whole: Decimal) -> Decimal | None:
    """part / whole × 100, rounded once half-up (ties away from zero) to 2 decimals from the exact quotient: the
    default context would round it to 28 digits first (a second rounding) and raise past them."""
    if whole == 0:
        return None
    return round_fraction_places(Fraction(part) * 100 / Fraction(whole), 2, EXACT_MONEY_CONTEXT)
