"""A tool call that runs past its time limit is stopped with a clear error; nothing of it is kept, and
the server goes on serving. The bulk tools have a limit of their own."""

from __future__ import annotations

import logging
import time

from mcp import Client

from conftest import hosted, pg_connection, row_counts
from helpers import call, call_error
from mcp_server.server import build_server
from togai_engine.settings import Settings


async def test_a_call_past_its_limit_is_stopped_and_the_next_one_works(db, clock, database_url, caplog):
    caplog.set_level(logging.WARNING)
    server = build_server(db, clock=clock, tool_timeout_seconds=0.5, bulk_tool_timeout_seconds=1.5)
    async with hosted(Client(server, raise_exceptions=False)) as client:
        await call(client, "create_customer", id="c", name="C", account={"id": "a", "name": "A"})
        before = await row_counts(db)
        async with pg_connection(database_url) as blocker:
            # another transaction holds the accounts table: every call that reads it waits
            await blocker.execute("BEGIN; LOCK TABLE accounts IN ACCESS EXCLUSIVE MODE")
            start = time.perf_counter()
            error = await call_error(client, "grant_credit", accountId="a", amount="5.00", idempotencyKey="k")
            took = time.perf_counter() - start
            assert 0.5 <= took < 5, took
            assert "grant_credit did not finish within 0.5 s and was stopped" in error, error
            assert "rolled back" in error and "same id or idempotencyKey is safe" in error, error
            start = time.perf_counter()
            error = await call_error(client, "simulate_price_plan", candidates=[{"name": "x", "pricingCycleConfig": {
                "interval": "MONTHLY"}}], accountIds=["a"])
            took = time.perf_counter() - start
            assert 1.5 <= took < 6 and "simulate_price_plan did not finish within 1.5 s" in error, (took, error)
            await blocker.execute("ROLLBACK")
        assert await row_counts(db) == before
        # the stopped calls left no connection behind in a transaction: the same call now succeeds
        granted = await call(client, "grant_credit", accountId="a", amount="5.00", idempotencyKey="k")
        assert granted["balance"] == "5.00"  # 0 + 5.00: the stopped grant was not kept
    assert not [r.getMessage() for r in caplog.records if r.exc_info or r.levelno >= logging.ERROR]


def test_the_limits_are_settings(monkeypatch):
    monkeypatch.setenv("TOGAI_TOOL_TIMEOUT_SECONDS", "12.5")
    settings = Settings()
    assert (settings.tool_timeout_seconds, settings.bulk_tool_timeout_seconds) == (12.5, 300)
