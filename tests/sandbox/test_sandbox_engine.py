"""Throwaway sandbox engines share one server but never each other's data, and leave no database behind."""

from __future__ import annotations

import asyncio
from datetime import datetime

from conftest import pg_connection
from helpers import at, call
from mcp_server.sandbox_engine import sandbox_engine


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
