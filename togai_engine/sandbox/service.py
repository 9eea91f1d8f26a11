"""Reading, starting and moving the sandbox clock. Every function takes the caller's session, so the time a
call reads is the time its writes are made at (the row is locked for the rest of the transaction)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from dateutil.relativedelta import relativedelta
from sqlalchemy import select, text
from sqlalchemy.ext.asyncio import AsyncSession

from togai_engine.common import validation
from togai_engine.common.durations import parse_duration
from togai_engine.errors import EngineError, InvalidInput
from togai_engine.sandbox.models import SandboxClockRow
from togai_engine.sandbox.schemas import SandboxClock

HOW_TO_START = "start a sandbox server with `togai-engine serve --sandbox` (on a new, empty database)"
# Tables whose rows make a database a real one: a sandbox starts empty, so its invoices are never real ones.
REAL_DATA_TABLES = ("accounts", "events", "invoices")


class NotASandbox(EngineError):
    code = "NOT_A_SANDBOX"

    @classmethod
    def here(cls) -> NotASandbox:
        """The database asked has no sandbox clock."""
        return cls(f"this database is not a sandbox; {HOW_TO_START}")


class IsASandbox(EngineError):
    """A server on the real clock was pointed at a sandbox database."""

    code = "IS_A_SANDBOX"


class HasRealData(EngineError):
    code = "HAS_REAL_DATA"


@dataclass(frozen=True)
class Advance:
    previous: datetime
    now: datetime


async def is_sandbox(session: AsyncSession) -> bool:
    return await session.scalar(select(SandboxClockRow.one)) is not None


async def read_now(session: AsyncSession, *, for_update: bool = False) -> datetime:
    """The sandbox time, held (FOR SHARE, or FOR UPDATE for the call that will move it) until the caller's
    transaction ends, so an advance waits for the calls reading the old time and a call never sees the time
    move under it."""
    now = await session.scalar(select(SandboxClockRow.now).with_for_update(read=not for_update))
    if now is None:
        raise NotASandbox.here()
    return now


async def read_clock(session: AsyncSession) -> SandboxClock:
    row = await session.get(SandboxClockRow, True)
    if row is None:
        raise NotASandbox.here()
    return SandboxClock(now=row.now, startedAt=row.started_at)


async def start(session: AsyncSession, at: datetime) -> tuple[datetime, bool]:
    """Makes the database a sandbox at `at`, or finds it one already: (its time, whether it was created).
    A database with accounts, events or invoices is refused: its data was made at real times."""
    existing = await session.scalar(select(SandboxClockRow.now))
    if existing is not None:
        return existing, False
    for table in REAL_DATA_TABLES:
        if await session.scalar(text(f"SELECT EXISTS (SELECT 1 FROM {table})")):
            raise HasRealData(f"this database already holds {table} made at real times, so it cannot become a "
                              "sandbox; use a new, empty database for the sandbox (TOGAI_DATABASE_URL)")
    session.add(SandboxClockRow(one=True, now=at, started_at=at))
    await session.flush()
    return at, True


def not_after_sandbox_time(asked: datetime, now: datetime, option: str, consequence: str) -> datetime:
    """A command's instant (`option`, e.g. --as-of) on a sandbox at `now`: a later one is refused, as
    `consequence` says (it would count what has not happened yet)."""
    if asked > now:
        raise InvalidInput(option, f"this database is a sandbox at {now.isoformat()} and {asked.isoformat()} is "
                                   f"later; {consequence}. Move its clock first (advance_clock, which bills as "
                                   "it moves), or leave the option out to use the sandbox time")
    return asked


@dataclass(frozen=True)
class Step:
    """Where advance_clock moves: to an instant, or by a calendar-aware duration."""

    to: datetime | None = None
    by: relativedelta | None = None


def parse_step(to: object = None, by: object = None) -> Step:
    """The arguments of advance_clock, checked before anything is read: exactly one of `to` and `by`."""
    if (to is None) == (by is None):
        raise InvalidInput("to", "give exactly one of `to` (an instant, e.g. '2026-03-01') or `by` (an ISO 8601 "
                                 "duration, e.g. 'P1M', 'PT36H', 'P2W')")
    if to is not None:
        return Step(to=validation.parse_instant(to, "to"))
    return Step(by=parse_duration(by, "by"))  # its pattern has no sign: never backwards


async def advance(session: AsyncSession, step: Step) -> Advance:
    """Moves the clock forward (never back). Locks the row FOR UPDATE, so two advances run one after the
    other and every call reading the old time finishes first."""
    row = await session.get(SandboxClockRow, True, with_for_update=True, populate_existing=True)
    if row is None:
        raise NotASandbox.here()
    previous = row.now
    if step.to is not None:
        target = step.to
        if target < previous:
            raise InvalidInput("to", f"{target.isoformat()} is before the sandbox time {previous.isoformat()}; "
                                     "the clock only moves forward (use a new sandbox to start over)")
    else:
        assert step.by is not None
        try:
            target = previous + step.by
        except (OverflowError, ValueError):
            raise InvalidInput("by", "moves the clock past the year 9999; give a shorter duration") from None
        if target > validation.LATEST_INSTANT:  # the bound `to` has: no call could attach a plan at a later now
            raise InvalidInput("by", f"moves the clock to {target.isoformat()}, after "
                                     f"{validation.instant_text(validation.LATEST_INSTANT)}, the last instant billing computes "
                                     "with; give a shorter duration")
    row.now = target
    await session.flush()
    return Advance(previous=previous, now=target)
