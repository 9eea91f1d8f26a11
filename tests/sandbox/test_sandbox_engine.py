"""Throwaway sandbox engines share one server but never each other's data, and leave no database behind."""

from __future__ import annotations

import asyncio
from datetime import datetime

import anyio

from conftest import pg_connection
from helpers import at, call
from mcp_server.sandbox_engine import sandbox_engine
from togai_engine.store.throwaway import ThrowawayServer, database_of


async def _story(server_url: str, start: datetime, customer: str) -> tuple[str, list[str], str]:
    async with sandbox_engine(server_url, start) as engine:
        await call(engine.client, "create_customer", id=customer, name=customer.title(),
                   account={"id": f"{customer}-main", "name": "Main"})
        await call(engine.client, "advance_clock", by="P1D")
        clock = await call(engine.client, "get_clock")
        accounts = await call(engine.client, "list_accounts")
        return engine.url, [a["id"] for a in accounts["data"]], clock["now"]


async def test_concurrent_engines_keep_their_own_data_and_time(server_url: str) -> None:
    (url_a, accounts_a, now_a), (url_b, accounts_b, now_b) = await asyncio.gather(
        _story(server_url, at(2026, 1, 1), "acme"), _story(server_url, at(2027, 6, 15), "globex"))
    assert (accounts_a, now_a) == (["acme-main"], "2026-01-02T00:00:00Z")
    assert (accounts_b, now_b) == (["globex-main"], "2027-06-16T00:00:00Z")
    async with pg_connection(server_url) as conn:
        names = [url.rsplit("/", 1)[1].split("?")[0] for url in (url_a, url_b)]
        assert await conn.fetchval("SELECT count(*) FROM pg_database WHERE datname = ANY($1::text[])", names) == 0


async def test_an_engine_cancelled_by_a_timeout_still_drops_its_database(server_url: str) -> None:
    made = []
    try:
        with anyio.CancelScope() as timeout:  # a test's own timeout around the engine, running out inside it
            async with sandbox_engine(server_url, at(2026, 1, 1)) as engine:
                made.append(engine.url)
                timeout.cancel()
                await anyio.sleep(30)
        assert timeout.cancelled_caught and made
        async with pg_connection(server_url) as conn:
            left = await conn.fetchval("SELECT count(*) FROM pg_database WHERE datname = $1", database_of(made[0]))
        assert left == 0
    finally:
        for url in made:  # not to leave it on a shared server when the test fails
            await ThrowawayServer(server_url).drop(url)


QUIET = 1.0  # seconds without a notification that show none was sent (a sent one arrives in milliseconds)


async def test_a_write_in_one_sandbox_is_not_announced_to_a_watcher_of_another(server_url: str) -> None:
    async with sandbox_engine(server_url, at(2026, 1, 1)) as watcher, \
            sandbox_engine(server_url, at(2026, 1, 1)) as writer:
        for engine in (watcher, writer):  # the same account id in two databases, as two tests would make it
            await call(engine.client, "create_customer", id="acme", name="Acme",
                       account={"id": "acme-main", "name": "Main", "invoiceCurrency": "USD"})
        async with watcher.client.listen(resource_subscriptions=["togai://accounts/acme-main"]) as subscription:
            await call(writer.client, "grant_credit", accountId="acme-main", amount="5.00", idempotencyKey="g1")
            with anyio.move_on_after(QUIET) as waited:
                event = await subscription.__anext__()
                raise AssertionError(f"a grant in the writer's database was announced to the watcher: {event}")
            assert waited.cancelled_caught
