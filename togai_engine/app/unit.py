"""One call = one transaction, with its `now` and, for a write, its audit record in the same transaction."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from togai_engine.audit.service import record as record_audit
from togai_engine.sandbox.service import is_sandbox
from togai_engine.sandbox.service import read_now as sandbox_now
from togai_engine.store.database import Database


@dataclass
class Unit:
    session: AsyncSession
    now: datetime
    changed_ids: list[str] = field(default_factory=list)

    def changed(self, *ids: str) -> None:
        self.changed_ids.extend(i for i in ids if i)


async def call_now(database: Database) -> datetime | None:
    """The `now` a unit of work outside a server (a CLI command) opens with: None on a sandbox database (each
    unit reads its clock row in its own transaction), the wall clock otherwise. A server decides this once
    when it starts (AppContext.call_now)."""
    async with database.unit_of_work() as session:
        return None if await is_sandbox(session) else datetime.now(UTC)


@asynccontextmanager
async def unit_of_work(
    database: Database, now: datetime | None, *, actor: str, action: str | None = None,
    arguments: dict[str, Any] | None = None, moves_clock: bool = False,
) -> AsyncIterator[Unit]:
    """Commits when the block ends without an error (rolls back otherwise). With `action`, the call is a
    write: its audit record (actor, action, arguments, the ids it changed) commits with it. `now` None: the
    database is a sandbox, and the call's time is its clock row, read (and held) in this transaction; locked
    for update when the call `moves_clock` (taking the update lock at once: two advances upgrading a shared
    lock would deadlock)."""
    async with database.unit_of_work() as session:
        unit = Unit(session=session, now=now if now is not None else await sandbox_now(session, for_update=moves_clock))
        yield unit
        if action is not None:
            await record_audit(session, actor=actor, tool=action, arguments=arguments or {},
                               changed_ids=unit.changed_ids, at=unit.now)
