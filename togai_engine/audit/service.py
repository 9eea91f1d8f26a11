"""The audit log: who did what, when, written in the same transaction as the change."""

from __future__ import annotations

import hashlib
import json
import math
from datetime import datetime
from typing import Any

from pydantic import BaseModel
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from togai_engine.audit.models import AuditRow
from togai_engine.audit.schemas import AuditRecord
from togai_engine.common.messages import quote
from togai_engine.common.pagination import fetch_page
from togai_engine.common.schemas import Page

_HUGE = 10**1000  # an integer this long is kept as a note, not as digits
SECRET_KEYS = {"key", "apikey", "api_key", "token", "secret", "password", "authorization"}


def redact(value: Any) -> Any:
    """Arguments as JSON, with secret-looking fields replaced: by key ({"token": ...}), or by name in a {name, value}
    entry ([{"name": "token", "value": ...}])."""
    if isinstance(value, BaseModel):
        value = value.model_dump(mode="json", exclude_none=True)
    if isinstance(value, str):
        # jsonb cannot hold NUL or a lone surrogate; a rejected argument (one event of a batch) may contain
        # one, and its audit record must not fail: both are kept as their escapes' text
        return value.replace("\x00", "\\u0000").encode("utf-8", "backslashreplace").decode("utf-8")
    if isinstance(value, dict):
        # a {name, value} entry (an event attribute as a list item) is the {name: value} pair written out: its
        # value is redacted by its name, as the pair's would be by its key
        named = value.get("name")
        secret = {"value"} if isinstance(named, str) and named.lower() in SECRET_KEYS else set()
        return {redact(k): "[redacted]" if k.lower() in SECRET_KEYS or k in secret else redact(v)
                for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [redact(v) for v in value]
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)  # JSON has no NaN or Infinity
    if isinstance(value, int) and not isinstance(value, bool) and not -_HUGE < value < _HUGE:
        return quote(value)  # (past 4300 digits Python cannot even write it out)
    if isinstance(value, int | float | bool) or value is None:
        return value
    return str(value)


async def record(
    session: AsyncSession, *, actor: str, tool: str, arguments: dict[str, Any], changed_ids: list[str], at: datetime
) -> None:
    session.add(AuditRow(actor=actor, tool=tool, arguments=redact(arguments), changed_ids=changed_ids, at=at))
    await session.flush()


def page_kind(tool: str | None, actor: str | None, entity_id: str | None) -> str:
    """The list a page token belongs to: a token is a position in the list of these filters, refused under others
    (as a credit note list's is). A digest of them: a filter may be long text, and a token is short."""
    filters = json.dumps([tool or None, actor or None, entity_id or None], ensure_ascii=True)
    return f"audit:{hashlib.sha256(filters.encode()).hexdigest()[:16]}"


async def list_audit(
    session: AsyncSession,
    *,
    tool: str | None = None,
    actor: str | None = None,
    entity_id: str | None = None,
    page_size: int | None = None,
    next_token: str | None = None,
) -> Page[AuditRecord]:
    stmt = select(AuditRow)
    if tool:
        stmt = stmt.where(AuditRow.tool == tool)
    if actor:
        stmt = stmt.where(AuditRow.actor == actor)
    if entity_id:
        stmt = stmt.where(AuditRow.changed_ids.any(entity_id))
    rows, token = await fetch_page(session, stmt, AuditRow.id, page_kind(tool, actor, entity_id), page_size,
                                   next_token, descending=True)
    data = [
        AuditRecord(id=r.id, at=r.at, actor=r.actor, tool=r.tool, arguments=r.arguments, changedIds=r.changed_ids)
        for r in rows
    ]
    return Page[AuditRecord](data=data, nextToken=token)
