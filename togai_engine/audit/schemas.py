from __future__ import annotations

from datetime import datetime
from typing import Any

from togai_engine.common.schemas import Model


class AuditRecord(Model):
    id: int
    at: datetime
    actor: str
    tool: str
    arguments: dict[str, Any]
    changedIds: list[str]
