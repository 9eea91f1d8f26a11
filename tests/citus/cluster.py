"""A database of its own on the Citus cluster at TOGAI_CITUS_TEST_URL, migrated and distributed.

TOGAI_CITUS_TEST_URL is a SQLAlchemy URL of the coordinator's maintenance database, e.g.
postgresql+asyncpg://postgres@127.0.0.1:9700/postgres, whose workers are added (pg_dist_node); each module
gets a database of its own (store/citus_cluster.py). Without the variable every test here is skipped (CI
has no cluster).
"""

from __future__ import annotations

import asyncio
import os
import secrets
from collections.abc import AsyncIterator, Iterator

import pytest
from mcp import Client

from conftest import START, emptied, hosted
from mcp_server.server import build_server
from togai_engine.common.clock import FixedClock
from togai_engine.store import migrate
from togai_engine.store.citus_cluster import create_database, drop_database
from togai_engine.store.database import Database

CITUS_URL = os.environ.get("TOGAI_CITUS_TEST_URL", "")
NO_CLUSTER = ("TOGAI_CITUS_TEST_URL is unset: these tests need a Citus coordinator with workers "
              "(README, Scaling out -> Citus, says how to start one)")
SHARDS = 4  # per distributed table: enough to spread accounts over both workers, quick to create


@pytest.fixture(scope="module")
def empty_citus_url() -> Iterator[str]:
    """A new database on the cluster with Citus ready and no schema."""
    if not CITUS_URL:
        pytest.skip(NO_CLUSTER)
    name = f"togai_citus_{os.getpid()}_{secrets.token_hex(3)}"
    url = asyncio.run(create_database(CITUS_URL, name))
    try:
        yield url
    finally:
        asyncio.run(drop_database(CITUS_URL, name))


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
    return await emptied(citus_database)


@pytest.fixture
def cclock() -> FixedClock:
    return FixedClock(START)


@pytest.fixture
async def cclient(cdb: Database, cclock: FixedClock) -> AsyncIterator[Client]:
    """A real MCP client session against a server on the cluster database."""
    async with hosted(Client(build_server(cdb, clock=cclock), raise_exceptions=False)) as c:
        yield c
