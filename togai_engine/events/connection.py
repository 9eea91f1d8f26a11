"""The asyncpg connection of a session's transaction, for set-based SQL on the hot path."""

from __future__ import annotations

from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from togai_engine.store.database import raw_connection


async def transaction_connection(session: AsyncSession) -> Any:
    """`raw_connection`, with the session's transaction begun.

    SQLAlchemy sends BEGIN lazily, with its first statement; a statement sent on the raw
    connection before that would run (and commit) on its own, outside the unit of work.
    """
    conn = await raw_connection(session)
    if not conn.is_in_transaction():
        await session.execute(text("SELECT 1"))
    return conn
