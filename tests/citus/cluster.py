"""A database of its own on the Citus cluster at TOGAI_CITUS_TEST_URL, migrated and distributed.

TOGAI_CITUS_TEST_URL is a SQLAlchemy URL of the coordinator's maintenance database, e.g.
postgresql+asyncpg://postgres@127.0.0.1:9700/postgres, whose workers are added (pg_dist_node). Citus keeps
its node list per database, so a new database needs the extension on every node and the workers added
again: `new_database` does that. Without the variable every test here is skipped (CI has no cluster).
"""

from __future__ import annotations

import asyncio
import os
import secrets
from collections.abc import AsyncIterator, Iterator

import pytest
from mcp import Client
from sqlalchemy.engine import make_url

from conftest import START, TABLES, hosted, pg_connection
from mcp_server.server import build_server
from togai_engine.common.clock import FixedClock
from togai_engine.store import migrate
from togai_engine.store.database import Database
from togai_engine.store.throwaway import with_database

CITUS_URL = os.environ.get("TOGAI_CITUS_TEST_URL", "")
NO_CLUSTER = ("TOGAI_CITUS_TEST_URL is unset: these tests need a Citus coordinator with workers "
              "(README, Scaling out -> Citus, says how to start one)")
SHARDS = 4  # per distributed table: enough to spread accounts over both workers, quick to create


def _node_url(url: str, host: str, port: int) -> str:
    return make_url(url).set(host=host, port=port).render_as_string(hide_password=False)


async def new_database(name: str) -> str:
    """Creates database `name` on the coordinator and its workers, with Citus and the workers added."""
    async with pg_connection(CITUS_URL) as conn:
        await conn.execute("SET citus.enable_create_database_propagation = on")
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await conn.execute(f'CREATE DATABASE "{name}"')
        workers = await conn.fetch("SELECT nodename, nodeport FROM pg_dist_node "
                                   "WHERE groupid <> 0 AND noderole = 'primary' AND isactive ORDER BY nodeid")
        coordinator = await conn.fetchrow("SELECT nodename, nodeport FROM pg_dist_node WHERE groupid = 0")
    url = with_database(CITUS_URL, name)
    for host, port in workers:
        async with pg_connection(_node_url(url, host, port)) as conn:
            await conn.execute("CREATE EXTENSION IF NOT EXISTS citus")
    async with pg_connection(url) as conn:
        await conn.execute("CREATE EXTENSION IF NOT EXISTS citus")
        if coordinator is not None:
            await conn.execute("SELECT citus_set_coordinator_host($1, $2)", *coordinator)
        for host, port in workers:
            await conn.execute("SELECT citus_add_node($1, $2)", host, port)
    return url


async def drop_database(name: str) -> None:
    async with pg_connection(CITUS_URL) as conn:
        await conn.execute("SET citus.enable_create_database_propagation = on")
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(scope="module")
def empty_citus_url() -> Iterator[str]:
    """A new database on the cluster with Citus ready and no schema."""
    if not CITUS_URL:
        pytest.skip(NO_CLUSTER)
    name = f"togai_citus_{os.getpid()}_{secrets.token_hex(3)}"
    url = asyncio.run(new_database(name))
    try:
        yield url
    finally:
        asyncio.run(drop_database(name))


@pytest.fixture(scope="module")
def citus_url(empty_citus_url: str) -> str:
    """The module's cluster database, migrated and distributed."""
    migrate.upgrade(empty_citus_url)
    migrate.distribute(empty_citus_url, SHARDS)
    return empty_citus_url


@pytest.fixture(scope="module")
async def citus_database(citus_url: str) -> AsyncIterator[Database]:
    database = Database(citus_url)
    yield database
    await database.dispose()


@pytest.fixture
async def cdb(citus_database: Database) -> Database:
    """The cluster database, emptied before the test."""
    async with citus_database.engine.begin() as conn:
        raw = await conn.get_raw_connection()
        await raw.driver_connection.execute(f"TRUNCATE {TABLES} RESTART IDENTITY CASCADE")
    return citus_database


@pytest.fixture
def cclock() -> FixedClock:
    return FixedClock(START)


@pytest.fixture
async def cclient(cdb: Database, cclock: FixedClock) -> AsyncIterator[Client]:
    """A real MCP client session against a server on the cluster database."""
    async with hosted(Client(build_server(cdb, clock=cclock), raise_exceptions=False)) as c:
        yield c
