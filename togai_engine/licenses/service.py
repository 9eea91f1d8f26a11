"""Seat changes: stored as asked (ABSOLUTE / RELATIVE from an instant), read as counts over time.

`fold` turns an account's changes of one license into its timeline (the count from each change on);
`spans_over` cuts a timeline to a billing period's spans of constant seats, which compose_invoice prices.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from togai_engine.licenses.models import LicenseUpdateRow
from togai_engine.pricing.seats import SeatSpan
from togai_engine.store.arrays import any_of

UpdateType = Literal["ABSOLUTE", "RELATIVE"]
Window = tuple[str, datetime, datetime]  # (account id, period start, period end)
Seats = dict[str, list[SeatSpan]]  # license id -> spans over one period


@dataclass(frozen=True)
class Change:
    effective_from: datetime
    update_type: UpdateType
    quantity: int  # as asked: the new count (ABSOLUTE) or what to add (RELATIVE)
    license_id: str = ""
    idempotency_key: str | None = None


@dataclass(frozen=True)
class Point:
    effective_from: datetime
    change: Change
    count: int  # seats from effective_from on (until the next point)


def fold(changes: Iterable[Change]) -> list[Point]:
    """The count after each change, in time order (changes at one instant in the order given), from 0 seats."""
    count = 0
    points: list[Point] = []
    for change in sorted(changes, key=lambda c: c.effective_from):
        count = change.quantity if change.update_type == "ABSOLUTE" else count + change.quantity
        points.append(Point(change.effective_from, change, count))
    return points


def count_at(points: Sequence[Point], instant: datetime) -> int:
    """The seats at `instant`: the last change at or before it (0 before any)."""
    return next((p.count for p in reversed(points) if p.effective_from <= instant), 0)


@dataclass(frozen=True)
class Limit:
    """A plan's ceiling on a license's seats over [start, end) (end None: open-ended)."""
    start: datetime
    end: datetime | None
    maximum: int
    plan: str  # how a refusal names the plan


def first_excess(points: Sequence[Point], limits: Iterable[Limit], since: datetime) -> tuple[datetime, int, Limit] | None:
    """The first (instant, count, limit) from `since` on where the seats held exceed the limit in effect; None
    when they never do. Counts are those that hold in time (changes at one instant folded)."""
    found: list[tuple[datetime, int, Limit]] = []
    for limit in limits:
        lower = max(limit.start, since)
        if limit.end is not None and limit.end <= lower:
            continue
        instants = [lower, *(p.effective_from for p in points
                             if lower < p.effective_from and (limit.end is None or p.effective_from < limit.end))]
        found.extend((instant, count, limit) for instant in instants
                     if (count := count_at(points, instant)) > limit.maximum)
    return min(found, key=lambda excess: excess[0], default=None)


def spans_over(points: Sequence[Point], start: datetime, end: datetime) -> list[SeatSpan]:
    """[start, end) as spans of constant seats (neighbours of equal count stay separate only when a change
    lies between them; pricing merges them)."""
    spans: list[SeatSpan] = []
    cursor, count = start, count_at(points, start)
    for point in points:
        if start < point.effective_from < end:
            spans.append((cursor, point.effective_from, count))
            cursor, count = point.effective_from, point.count
    spans.append((cursor, end, count))
    return spans


async def changes_of(session: AsyncSession, account_ids: Iterable[str]) -> dict[str, dict[str, list[Change]]]:
    """account id -> license id -> its changes in time order (accounts without any are absent)."""
    ids = sorted(set(account_ids))
    found: dict[str, dict[str, list[Change]]] = defaultdict(lambda: defaultdict(list))
    if not ids:
        return {}
    rows = await session.execute(
        select(LicenseUpdateRow.account_id, LicenseUpdateRow.license_id, LicenseUpdateRow.effective_from,
               LicenseUpdateRow.update_type, LicenseUpdateRow.quantity, LicenseUpdateRow.idempotency_key)
        .where(any_of(LicenseUpdateRow.account_id, ids))
        .order_by(LicenseUpdateRow.account_id, LicenseUpdateRow.license_id, LicenseUpdateRow.effective_from,
                  LicenseUpdateRow.id))
    for account_id, license_id, at, update_type, quantity, key in rows.tuples():
        found[account_id][license_id].append(Change(at, update_type, quantity, license_id, key))
    return {a: dict(by_license) for a, by_license in found.items()}


async def seats_by_window(session: AsyncSession, windows: Iterable[Window]) -> dict[Window, Seats]:
    """Each (account, start, end) -> license id -> its seat spans over [start, end); a window whose account
    never had a seat change is absent (every license at 0)."""
    windows = list(windows)
    changes = await changes_of(session, (w[0] for w in windows))
    return {
        (account_id, start, end): {license_id: spans_over(fold(items), start, end)
                                   for license_id, items in changes[account_id].items()}
        for account_id, start, end in windows if account_id in changes
    }


async def find_by_key(session: AsyncSession, account_id: str, key: str) -> Change | None:
    row = await session.scalar(select(LicenseUpdateRow).where(
        LicenseUpdateRow.account_id == account_id, LicenseUpdateRow.idempotency_key == key))
    if row is None:
        return None
    return Change(row.effective_from, row.update_type, row.quantity, row.license_id, row.idempotency_key)  # type: ignore[arg-type]


async def add_change(session: AsyncSession, account_id: str, change: Change) -> None:
    """Stores `change` after every change made before it (at its instant too)."""
    await session.execute(insert(LicenseUpdateRow).values(
        account_id=account_id, license_id=change.license_id, effective_from=change.effective_from,
        update_type=change.update_type, quantity=change.quantity, idempotency_key=change.idempotency_key))
