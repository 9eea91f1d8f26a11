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
        names = [database_of(url) for url in (url_a, url_b)]
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


async def _tokens_invoice(server_url: str, aggregation: str) -> str:
    """A sandbox at 2026-01-01 with meter "tokens" (`aggregation` of the tokens attribute), a plan pricing it at
    1.00 a unit and account "acme" on it, two events of 5 and 7 tokens on Jan 10: January's DRAFT total."""
    async with sandbox_engine(server_url, at(2026, 1, 1)) as engine:
        client = engine.client
        await call(client, "create_usage_meter", id="tokens", name="tokens", eventSchemaName="llm",
                   aggregation=aggregation, computations=[{"computation": "tokens"}])
        plan = await call(client, "create_price_plan", name="Tokens", pricingCycleConfig={
            "interval": "MONTHLY", "startOffset": {"dayOffset": "1"}, "gracePeriod": 0}, rateCards={
            "usageRateCards": [{"usageMeterId": "tokens", "ratePlan": {"pricingModel": "TIERED", "slabs": [
                {"order": 1, "startAfter": "0", "priceType": "PER_UNIT"}]},
                "rateValues": [{"currency": "USD", "slabRates": [{"order": 1, "rate": "1"}]}]}]})
        await call(client, "create_customer", id="acme", name="Acme", account={
            "id": "acme", "name": "Acme", "invoiceCurrency": "USD", "pricePlanId": plan["id"],
            "effectiveFrom": "2026-01-01T00:00:00Z"})
        await call(client, "advance_clock", to="2026-01-10T00:00:00Z")
        await call(client, "ingest_batch_events", events=[
            {"id": f"e{tokens}", "schemaName": "llm", "timestamp": "2026-01-10T00:00:00Z", "accountId": "acme",
             "attributes": {"tokens": tokens}} for tokens in ("5", "7")])
        return (await call(client, "get_invoice", accountId="acme"))["totalAmount"]


async def test_a_meter_is_priced_by_its_own_definition_in_each_sandbox(server_url: str) -> None:
    # Two sandboxes one after the other in this process (as two scenario files or two plugin tests), each
    # with a meter "tokens" created at the same sandbox time, 2026-01-01, but aggregated differently.
    assert await _tokens_invoice(server_url, "MAX") == "7.00"  # max(5, 7) x 1.00
    assert await _tokens_invoice(server_url, "SUM") == "12.00"  # (5 + 7) x 1.00, not the first sandbox's MAX
