"""What every tool call can reach: the database, the clock, the settings."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, TypeVar

from sqlalchemy.ext.asyncio import AsyncSession

from togai_engine.common.clock import Clock, SystemClock
from togai_engine.common.schemas import Page, SandboxMarked
from togai_engine.sandbox.service import read_now as sandbox_now
from togai_engine.store.database import Database

M = TypeVar("M", bound=SandboxMarked)
P = TypeVar("P", bound=Page[Any])


@dataclass
class AppContext:
    db: Database
    clock: Clock = field(default_factory=SystemClock)
    # Decided once when the server starts (serve --sandbox): only then does a call read its time from the
    # database, so a normal server's calls cost nothing more.
    sandbox: bool = False

    def call_now(self) -> datetime | None:
        """The `now` to open a unit of work with: None in sandbox mode (the call reads the sandbox clock row
        in its own transaction), the clock's time otherwise."""
        return None if self.sandbox else self.clock.now()

    async def now_in(self, session: AsyncSession) -> datetime:
        """The time of a call that reads without a unit of work: the sandbox clock row (read in `session`) in
        sandbox mode, the clock's time otherwise."""
        return await sandbox_now(session) if self.sandbox else self.clock.now()

    def marked(self, record: M) -> M:
        """The record with `sandbox: true` on a sandbox server (unchanged otherwise)."""
        return record.model_copy(update={"sandbox": True}) if self.sandbox else record

    def marked_page(self, page: P) -> P:
        """The page with each of its records marked (see `marked`)."""
        return page.model_copy(update={"data": [self.marked(r) for r in page.data]}) if self.sandbox else page
