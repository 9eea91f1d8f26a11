"""A pooled connection left inside a transaction SQLAlchemy never recorded is never used again.

A unit of work cancelled while its BEGIN is under way (an MCP client cancelling a tool call, an import
stopped mid-batch) can leave the server in a transaction the asyncpg adapter does not know of. Reused,
that connection fails every later unit of work (asyncpg refuses to begin one), or, when asyncpg had
recorded the cancelled start, runs them inside it as savepoints whose "commits" are lost when the
connection closes; meanwhile the open transaction holds its locks (a TRUNCATE waited on one for good).
"""

from __future__ import annotations

import asyncio

from sqlalchemy import event, text

from conftest import pg_connection
from togai_engine.store import database


async def _leave_orphaned_transaction(db: database.Database) -> None:
    """The state a cancelled BEGIN leaves: the server in a transaction, the adapter unaware of it."""
    async with db.engine.connect() as conn:
        raw = await conn.get_raw_connection()
        await raw.driver_connection.execute("BEGIN")


async def _idle_in_transaction(database_url: str) -> int:
    async with pg_connection(database_url) as other:
        return await other.fetchval(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
            "AND state = 'idle in transaction'")


async def _units_of_work_commit(db: database.Database, database_url: str) -> None:
    # the pool hands out its idle connections oldest first: one unit of work per idle connection
    # reaches the one that was left behind, wherever it sits
    units = db.engine.pool.checkedin() + 1  # type: ignore[attr-defined]
    for n in range(units):
        async with db.unit_of_work() as session:
            await session.execute(text(f"INSERT INTO customers (id, name) VALUES ('orphan_{n}', 'C')"))
    async with pg_connection(database_url) as other:  # committed: visible to another session
        assert await other.fetchval("SELECT count(*) FROM customers WHERE id LIKE 'orphan_%'") == units
    assert await _idle_in_transaction(database_url) == 0


async def test_a_connection_returned_inside_an_unrecorded_transaction_is_closed(db, database_url):
    # the return hook alone (the checkout hook would also catch it later)
    event.remove(db.engine.sync_engine, "checkout", database._skip_orphaned_transaction)
    try:
        await _leave_orphaned_transaction(db)
        for _ in range(50):  # closed on return: the server ends the session (and its transaction) at once
            if await _idle_in_transaction(database_url) == 0:
                break
            await asyncio.sleep(0.02)
        assert await _idle_in_transaction(database_url) == 0
        await _units_of_work_commit(db, database_url)
    finally:
        event.listen(db.engine.sync_engine, "checkout", database._skip_orphaned_transaction)


async def test_a_connection_found_inside_one_at_checkout_is_replaced(db, database_url):
    # BEGIN's answer can arrive after the connection went back to the pool: the checkout hook catches it
    event.remove(db.engine.sync_engine, "reset", database._refuse_orphaned_transaction)
    try:
        await _leave_orphaned_transaction(db)
    finally:
        event.listen(db.engine.sync_engine, "reset", database._refuse_orphaned_transaction)
    assert await _idle_in_transaction(database_url) == 1  # the state the hook is for
    await _units_of_work_commit(db, database_url)
