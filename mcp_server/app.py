"""What every tool call can reach: the database, the clock, the settings."""

from __future__ import annotations

from dataclasses import dataclass, field

from togai_engine.common.clock import Clock, SystemClock
from togai_engine.store.database import Database


@dataclass
class AppContext:
    db: Database
    clock: Clock = field(default_factory=SystemClock)
