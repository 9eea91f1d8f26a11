"""Pricing a license (seat) rate card over a billing period's seat counts: pure (no I/O, no clock).

A card's ratePlan prices a seat *count* as a usage card prices a quantity (TIERED or VOLUME slabs over the
count, minimumRate/maximumRate included): that is the card's amount for a whole cycle at that count.
- enableProration: each span of constant seats in the period pays that amount times the span's share of the
  full cycle (exact elapsed time); the shares' sum is rounded once, half-up.
- otherwise: the period pays the amount at its highest seat count, whole; when a plan change cut the period
  short (`cut`), by the period's share of the cycle, as fixed fees are.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from fractions import Fraction

from togai_engine.pricing.money import round_fraction
from togai_engine.pricing.rating import RateCardCharge, RatePlan, RateValue, rate_usage

SeatSpan = tuple[datetime, datetime, int]  # [start, end) holding `quantity` seats
_TICK = timedelta(microseconds=1)


@dataclass(frozen=True)
class SpanCharge:
    start: datetime
    end: datetime
    quantity: int
    share: Fraction  # of the full cycle
    charge: RateCardCharge  # the ratePlan at this count, for a whole cycle
    exact: Fraction  # (charge's subtotal + adjustment) x share


@dataclass(frozen=True)
class SeatCharge:
    prorated: bool
    highest: int  # the most seats held in the period
    spans: tuple[SpanCharge, ...]  # the period's spans of constant seats, in order
    charge_at_highest: RateCardCharge
    amount: Decimal  # rounded once, half-up


def fill_spans(spans: Sequence[SeatSpan], start: datetime, end: datetime) -> list[SeatSpan]:
    """`spans` clipped to [start, end), holes filled with 0 seats, neighbours of equal count merged."""
    result: list[SeatSpan] = []
    cursor = start

    def add(a: datetime, b: datetime, quantity: int) -> None:
        if result and result[-1][2] == quantity and result[-1][1] == a:
            result[-1] = (result[-1][0], b, quantity)
        else:
            result.append((a, b, quantity))

    for a, b, quantity in sorted(spans):
        a, b = max(a, cursor), min(b, end)
        if a >= b:
            continue
        if a > cursor:
            add(cursor, a, 0)
        add(a, b, quantity)
        cursor = b
    if cursor < end:
        add(cursor, end, 0)
    return result


def _exact(charge: RateCardCharge) -> Fraction:
    return Fraction(charge.subtotal) + Fraction(charge.adjustment)  # Decimal + would round past 28 digits


def rate_seats(plan: RatePlan, rate: RateValue, spans: Sequence[SeatSpan], start: datetime, end: datetime,
               cycle: timedelta, *, prorate: bool, cut: bool = False) -> SeatCharge:
    """The card's charge for the period [start, end) of a cycle lasting `cycle`, from its seat `spans`."""
    filled = fill_spans(spans, start, end)
    total = cycle // _TICK
    priced: list[SpanCharge] = []
    for a, b, quantity in filled:
        charge = rate_usage(plan, rate, Decimal(quantity))
        share = Fraction((b - a) // _TICK, total)
        priced.append(SpanCharge(a, b, quantity, share, charge, _exact(charge) * share))
    highest = max(s.quantity for s in priced)
    at_highest = next(s.charge for s in priced if s.quantity == highest)
    if prorate:
        amount = round_fraction(sum((s.exact for s in priced), Fraction(0)), rate.currency)
    elif cut:
        amount = round_fraction(_exact(at_highest) * Fraction((end - start) // _TICK, total), rate.currency)
    else:
        amount = at_highest.amount
    return SeatCharge(prorated=prorate, highest=highest, spans=tuple(priced), charge_at_highest=at_highest, amount=amount)
