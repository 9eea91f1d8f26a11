"""The database handle: one async engine, and units of work (one call = one transaction)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import anyio
from sqlalchemy import event, exc, text
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker, create_async_engine

# How long a cancelled unit of work may take to stop its statement and roll back before its connection
# is closed instead (a server that answers nothing; normally this takes milliseconds).
FINISH_SECONDS = 10.0


class Database:
    def __init__(self, url: str, *, pool_size: int = 10, echo: bool = False) -> None:
        self.url = url
        self.engine: AsyncEngine = create_async_engine(
            url, pool_size=pool_size, max_overflow=pool_size, pool_pre_ping=False, echo=echo
        )
        self._sessions = async_sessionmaker(self.engine, expire_on_commit=False, autoflush=True)
        event.listen(self.engine.sync_engine, "reset", _refuse_orphaned_transaction)
        event.listen(self.engine.sync_engine, "checkout", _skip_orphaned_transaction)
        event.listen(self.engine.sync_engine, "handle_error", _keep_connection_of_cancelled_statement)

    @asynccontextmanager
    async def unit_of_work(self) -> AsyncIterator[AsyncSession]:
        """A session inside one transaction: committed when the block succeeds, rolled back otherwise.

        Services take this session and never commit, so a failed call leaves nothing behind. A cancelled
        one too (an MCP client cancelling its call, an import stopped): see `_finishing`.
        """
        session = self._sessions()
        try:
            yield session
            # Once the work is done, a cancellation waits for the commit (atomic either way): a COMMIT cut
            # off in the middle leaves its outcome unknown and the connection unusable.
            with anyio.CancelScope(shield=True):
                await session.commit()
        except BaseException:
            with _finishing():
                await session.rollback()
            raise
        finally:
            with _finishing():
                await session.close()

    async def dispose(self) -> None:
        await self.engine.dispose()


def _finishing() -> anyio.CancelScope:
    """The rollback and the connection's return, shielded from the cancellation that stopped the work.

    anyio (under the MCP server) cancels every await inside a cancelled scope, the rollback's too: the
    pool then closes the connection before asyncpg has asked the server to cancel the running statement,
    and that server process runs on, inside the transaction and holding its locks (a statement waiting
    for a lock waits on) until the statement ends. Shielded, asyncpg's cancel request goes out, the
    statement stops, the transaction rolls back and a clean connection goes back to the pool."""
    return anyio.move_on_after(FINISH_SECONDS, shield=True)


def _keep_connection_of_cancelled_statement(context: Any) -> None:
    """A statement cancelled under way is not a lost connection: asyncpg asks the server to cancel it and
    finishes that before the connection's next command, so the unit of work's rollback can follow. Treated
    as lost (SQLAlchemy's default for CancelledError), the connection would be closed at once, the cancel
    request dropped, and the server would run the statement on, holding the transaction's locks. A cancelled
    rollback or commit (no statement) still closes the connection: its state is unknown."""
    if isinstance(context.original_exception, asyncio.CancelledError) and context.statement is not None:
        context.is_disconnect = False


class OrphanedTransaction(Exception):
    """A pooled connection came back inside a transaction its adapter does not know of."""


def _refuse_orphaned_transaction(dbapi_connection: Any, _record: Any, _state: Any) -> None:
    """Pool reset hook: a unit of work cancelled while BEGIN was under way (an MCP client cancelling a
    tool call, an import stopped mid-batch) can leave the server in a transaction that SQLAlchemy's
    asyncpg adapter never recorded, so its rollback-on-return sends nothing and the next checkout would
    inherit the open transaction and its locks. Raising here makes the pool close that connection
    (the server then rolls the transaction back); connections in any other state are reset as usual."""
    if _orphaned(dbapi_connection):
        raise OrphanedTransaction("connection returned inside an unrecorded transaction; closing it")


def _orphaned(dbapi_connection: Any) -> bool:
    driver = getattr(dbapi_connection, "driver_connection", None)
    return bool(driver is not None and driver.is_in_transaction()
                and getattr(dbapi_connection, "_transaction", None) is None)


def _skip_orphaned_transaction(dbapi_connection: Any, _record: Any, _proxy: Any) -> None:
    """Pool checkout hook, for the same case when BEGIN's answer arrived only after the reset: the pool
    then drops the connection and hands out another one."""
    if _orphaned(dbapi_connection):
        raise exc.DisconnectionError("connection inside an unrecorded transaction")


async def raw_connection(session: AsyncSession) -> Any:
    """The asyncpg connection under a session, for hot paths (COPY, array binds), inside the
    session's transaction.

    SQLAlchemy's asyncpg adapter sends BEGIN lazily with its first statement; a raw statement sent
    before that would run in autocommit, and a FOR UPDATE / FOR SHARE lock it took would vanish at once.
    """
    conn = await session.connection()
    raw = await conn.get_raw_connection()
    driver = raw.driver_connection
    if not driver.is_in_transaction():
        adapter = raw.dbapi_connection
        start = getattr(adapter, "_start_transaction", None)
        if start is not None and getattr(adapter, "_transaction", None) is None:
            await start()
        else:  # a future adapter without the hook: any statement through SQLAlchemy begins it
            await session.execute(text("SELECT 1"))
    return driver
