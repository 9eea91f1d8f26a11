"""The database handle: one async engine, and units of work (one call = one transaction)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker, create_async_engine


class Database:
    def __init__(self, url: str, *, pool_size: int = 10, echo: bool = False) -> None:
        self.url = url
        self.engine: AsyncEngine = create_async_engine(
            url, pool_size=pool_size, max_overflow=pool_size, pool_pre_ping=True, echo=echo
        )
        self._sessions = async_sessionmaker(self.engine, expire_on_commit=False, autoflush=True)

    @asynccontextmanager
    async def unit_of_work(self) -> AsyncIterator[AsyncSession]:
        """A session inside one transaction: committed when the block succeeds, rolled back otherwise.

        Services take this session and never commit, so a failed call leaves nothing behind.
        """
        async with self._sessions() as session, session.begin():
            yield session

    async def dispose(self) -> None:
        await self.engine.dispose()


async def raw_connection(session: AsyncSession) -> Any:
    """The asyncpg connection under a session, for hot paths (COPY, array binds)."""
    conn = await session.connection()
    raw = await conn.get_raw_connection()
    return raw.driver_connection
