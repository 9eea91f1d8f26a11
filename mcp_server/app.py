"""What every tool call can reach: the database, the clock, the settings."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from togai_engine.common.clock import Clock, SystemClock
from togai_engine.store.database import Database


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
