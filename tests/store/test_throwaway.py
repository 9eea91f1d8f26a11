"""Throwaway databases: cloned from a migrated template, built once per server and schema, even when many
processes ask at once; never dropping a database they did not make."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import pytest

from conftest import _admin
from togai_engine.store import throwaway
from togai_engine.store.throwaway import ThrowawayError, ThrowawayServer, connect


@pytest.fixture
async def private_template(monkeypatch: pytest.MonkeyPatch, server_url: str) -> AsyncIterator[str]:
    """A template name no other test run uses, dropped afterwards (so its build is exercised here)."""
    name = throwaway.template_name() + f"_{time.monotonic_ns() % 10**9}"
    monkeypatch.setattr(throwaway, "template_name", lambda: name)
    yield name
    await _admin(server_url, f'ALTER DATABASE "{name}" WITH IS_TEMPLATE false')
    await _admin(server_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


async def test_a_clone_has_the_schema_and_no_rows(server_url: str, private_template: str) -> None:
    server = ThrowawayServer(server_url)
    urls = await asyncio.gather(server.create(), server.create(), server.create())  # one build, three clones
    assert len(set(urls)) == 3
    try:
        for url in urls:
            conn = await connect(url)
            try:
                revision = await conn.fetchval("SELECT version_num FROM alembic_version")
                assert revision and await conn.fetchval("SELECT count(*) FROM accounts") == 0
            finally:
                await conn.close()
        conn = await connect(server_url)
        try:
            row = await conn.fetchrow("SELECT datistemplate, datallowconn FROM pg_database WHERE datname = $1",
                                      private_template)
            assert (row["datistemplate"], row["datallowconn"]) == (True, False)
            building = await conn.fetchval("SELECT count(*) FROM pg_database WHERE datname LIKE $1",
                                           f"{private_template}_building")
            assert building == 0
        finally:
            await conn.close()
    finally:
        for url in urls:
            await server.drop(url)
    conn = await connect(server_url)
    try:
        names = [throwaway.database_of(u) for u in urls]
        assert await conn.fetchval("SELECT count(*) FROM pg_database WHERE datname = ANY($1::text[])", names) == 0
    finally:
        await conn.close()


async def test_drop_refuses_a_database_it_did_not_make(server_url: str) -> None:
    with pytest.raises(ThrowawayError, match="not a throwaway database"):
        await ThrowawayServer(server_url).drop(throwaway.with_database(server_url, "postgres"))


async def test_an_unreachable_server_says_what_to_check() -> None:
    server = ThrowawayServer("postgresql+asyncpg://postgres@127.0.0.1:1/postgres")
    with pytest.raises(ThrowawayError, match=r"cannot reach the PostgreSQL server .* TOGAI_DATABASE_URL"):
        await server.create()
