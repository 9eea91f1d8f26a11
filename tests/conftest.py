"""Test fixtures: a real PostgreSQL database per test session, migrated with Alembic.

TOGAI_TEST_DATABASE_URL points at a server (CI uses the local one); without it the suite starts
the embedded PostgreSQL in a temporary folder, exactly as a user without a server would.
Each test starts from empty tables (TRUNCATE), which is much faster than a new database.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import socket
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from hypothesis import HealthCheck, settings
from mcp import Client

from mcp_server.server import build_server
from togai_engine.common.clock import FixedClock
from togai_engine.store import migrate
from togai_engine.store.database import Database
from togai_engine.store.throwaway import connect
from togai_engine.store.throwaway import with_database as _with_database
from togai_engine.tables import metadata

START = datetime(2026, 1, 1, tzinfo=UTC)

# Database-backed properties are slower than pure ones: no per-example deadline, and fixtures
# (a clean database) are shared by the examples of one test on purpose.
settings.register_profile(
    "togai", deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow]
)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "togai"))


@pytest.fixture(scope="session")
def server_url() -> Iterator[str]:
    """URL of a PostgreSQL server's maintenance database (no database part is used)."""
    configured = os.environ.get("TOGAI_TEST_DATABASE_URL")
    if configured:
        yield configured
        return
    from togai_engine.store.embedded import temporary_server

    with temporary_server("togai-test-embedded-") as url:
        yield url


async def _admin(url: str, sql: str) -> None:
    """Runs `sql` on the server's maintenance database (CREATE/DROP DATABASE)."""
    async with pg_connection(_with_database(url, "postgres")) as conn:
        await conn.execute(sql)


@pytest.fixture(scope="session")
def database_url(server_url: str) -> Iterator[str]:
    """A fresh database for this test session, migrated to head."""
    name = f"togai_t_{os.getpid()}_{secrets.token_hex(3)}"
    asyncio.run(_admin(server_url, f'CREATE DATABASE "{name}"'))
    url = _with_database(server_url, name)
    migrate.upgrade(url)
    try:
        yield url
    finally:
        asyncio.run(_admin(server_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@pytest.fixture(scope="session")
async def shared_db(database_url: str) -> AsyncIterator[Database]:
    database = Database(database_url)
    yield database
    await database.dispose()


TABLES = ", ".join(f'"{t.name}"' for t in metadata.sorted_tables)


async def emptied(database: Database) -> Database:
    """`database` with every table emptied."""
    async with database.engine.begin() as conn:
        raw = await conn.get_raw_connection()
        await raw.driver_connection.execute(f"TRUNCATE {TABLES} RESTART IDENTITY CASCADE")
    return database


@pytest.fixture
async def db(shared_db: Database) -> Database:
    """The session database, emptied before the test."""
    return await emptied(shared_db)


@pytest.fixture
def clock() -> FixedClock:
    return FixedClock(START)


@asynccontextmanager
async def hosted(context: AbstractAsyncContextManager[Any]) -> AsyncIterator[Any]:
    """Enters and exits `context` inside one dedicated task.

    anyio cancel scopes (inside every MCP client) must be exited by the task that entered them,
    while pytest-asyncio runs a fixture's setup and teardown in different tasks.
    """
    entered: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
    release = asyncio.Event()

    async def host() -> None:
        try:
            async with context as value:
                entered.set_result(value)
                await release.wait()
        except BaseException as exc:
            if not entered.done():
                entered.set_exception(exc)
            raise

    task = asyncio.create_task(host())
    try:
        yield await entered
    finally:
        release.set()
        await task


@pytest.fixture
async def client(db: Database, clock: FixedClock) -> AsyncIterator[Client]:
    """A real MCP client session, in memory, against a server on the test database."""
    async with hosted(Client(build_server(db, clock=clock), raise_exceptions=False)) as c:
        yield c


async def row_counts(db: Database) -> dict[str, int]:
    """Row count of every table: a failed call must leave these unchanged."""
    counts = {}
    async with db.engine.connect() as conn:
        raw = (await conn.get_raw_connection()).driver_connection
        for table in metadata.sorted_tables:
            counts[table.name] = await raw.fetchval(f'SELECT count(*) FROM "{table.name}"')
    return counts


@pytest.fixture
def scratch_url(server_url: str) -> Iterator[str]:
    """An empty database of its own (not migrated), for tests of migrations; dropped afterwards."""
    name = f"togai_t_scratch_{os.getpid()}_{secrets.token_hex(3)}"
    asyncio.run(_admin(server_url, f'CREATE DATABASE "{name}"'))
    try:
        yield _with_database(server_url, name)
    finally:
        asyncio.run(_admin(server_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@asynccontextmanager
async def pg_connection(url: str) -> AsyncIterator[asyncpg.Connection]:
    """A plain asyncpg connection to `url` (a SQLAlchemy URL), closed afterwards."""
    conn = await connect(url)
    try:
        yield conn
    finally:
        await conn.close()


# --- a real `togai-engine serve --transport http` on the session database (HTTP tests)

SERVE_BIN = Path(sys.executable).parent / "togai-engine"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
async def http_server(database_url: str, db) -> AsyncIterator[str]:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("TOGAI_")}
    env |= {"TOGAI_DATABASE_URL": database_url, "TOGAI_BILLING_INTERVAL_SECONDS": "0"}
    proc = subprocess.Popen([str(SERVE_BIN), "serve", "--transport", "http", "--port", str(port)], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        for _ in range(150):
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                    break
            except OSError:
                if proc.poll() is not None:
                    raise AssertionError(proc.stderr.read().decode()[-2000:]) from None
                await asyncio.sleep(0.1)
        yield f"http://127.0.0.1:{port}/mcp"
    finally:
        proc.terminate()
        proc.wait(timeout=20)
