"""The engine on a Citus cluster (tables distributed by account, catalogs as reference tables): ingest
with ids already stored at every batch size around the fast path's threshold, concurrent batches and
imports of overlapping files counting each event once, a bill run with the wallet paying part of the
invoice while grants are written concurrently, verify, and the reads."""

from __future__ import annotations

import asyncio
import json
from contextlib import AsyncExitStack
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from mcp import Client

from cluster import cclient, cclock, cdb, citus_database, citus_url, empty_citus_url
from conftest import hosted
from helpers import at, call, scalar
from mcp_server.cli import bill_run
from mcp_server.server import build_server
from togai_engine.events.importer import import_file
from togai_engine.events.ingest import FAST_PATH_MIN_EVENTS
from togai_engine.meters.rollups import verify_rollups
from togai_engine.meters.usage import meter_quantities
from togai_engine.store.database import Database

JAN, FEB = at(2026, 1, 1), at(2026, 2, 1)
ACCOUNTS = ("acme", "beta", "corp", "dyna")  # spread over the shards of both workers


def event(number: int, account: str | None = None) -> dict[str, Any]:
    return {"id": f"e{number}", "schemaName": "llm", "accountId": account or ACCOUNTS[number % len(ACCOUNTS)],
            "timestamp": f"2026-01-{5 + number % 20:02d}T{number % 24:02d}:{number % 60:02d}:00Z",
            "attributes": {"tokens": str(number)}}


async def setup(client: Client) -> str:
    """Four accounts on a plan billing tokens at 0.01 USD each; returns the tokens meter's id."""
    meter = await call(client, "create_usage_meter", name="tokens", eventSchemaName="llm", aggregation="SUM",
                       computations=[{"computation": "tokens"}])
    plan = await call(client, "create_price_plan", name="Tokens", pricingCycleConfig={
        "interval": "MONTHLY", "startOffset": {"dayOffset": "1", "monthOffset": "NIL"}, "gracePeriod": 3},
        rateCards={"usageRateCards": [{"usageMeterId": meter["id"], "ratePlan": {"pricingModel": "TIERED", "slabs": [
            {"order": 1, "startAfter": "0", "priceType": "PER_UNIT"}]},
            "rateValues": [{"currency": "USD", "slabRates": [{"order": 1, "rate": "0.01"}]}]}]})
    for account in ACCOUNTS:
        await call(client, "create_customer", id=f"c_{account}", name=account, account={
            "id": account, "name": account, "pricePlanId": plan["id"], "effectiveFrom": "2026-01-01T00:00:00Z"})
    return str(meter["id"])


async def tokens_by_account(db: Database, meter: str) -> dict[str, Decimal]:
    async with db.unit_of_work() as session:
        assert await verify_rollups(session) == []
        got = await meter_quantities(session, start=JAN, end=FEB, meter_ids=[meter])
    return {account: value for (account, _), value in got.items()}


def expected_tokens(numbers: range | list[int]) -> dict[str, Decimal]:
    sums: dict[str, Decimal] = {}
    for n in numbers:
        account = ACCOUNTS[n % len(ACCOUNTS)]
        sums[account] = sums.get(account, Decimal(0)) + n
    return sums


@pytest.mark.parametrize("size", [1, FAST_PATH_MIN_EVENTS - 1, FAST_PATH_MIN_EVENTS, 1000])
async def test_a_batch_resending_stored_ids_stores_only_the_new_ones(cclient, cdb, size: int) -> None:
    meter = await setup(cclient)
    first = await call(cclient, "ingest_batch_events", events=[event(n) for n in range(size)])
    assert (first["accepted"], first["duplicates"]) == (size, 0)
    # the same ids again with as many new ones: on Citus a stored id is reported by the worker's shard
    # (pk_event_ids_<shard>), and the fast path (batches of FAST_PATH_MIN_EVENTS or more) must still fall back
    # half of them again with as many new ones (at most 1000 per call): on Citus a stored id is reported by
    # the worker's shard (pk_event_ids_<shard>), and the fast path (batches of FAST_PATH_MIN_EVENTS or more)
    # must still fall back to storing only the new ones
    resent = range(size // 2, size // 2 + size)
    again = await call(cclient, "ingest_batch_events", events=[event(n) for n in resent])
    assert (again["accepted"], again["duplicates"], again["rejected"]) == (size // 2, size - size // 2, 0)
    assert await scalar(cdb, "SELECT count(*) FROM events") == size + size // 2
    assert await tokens_by_account(cdb, meter) == expected_tokens(range(size + size // 2))


async def test_concurrent_batches_with_overlapping_ids_count_each_event_once(cdb, cclock) -> None:
    async with AsyncExitStack() as stack:
        sessions = [await stack.enter_async_context(hosted(Client(build_server(cdb, clock=cclock),
                                                                  raise_exceptions=False))) for _ in range(4)]
        meter = await setup(sessions[0])
        # client k sends ids k*250 .. k*250+499 (in its own order): neighbours overlap by 250
        batches = [[event(n) for n in sorted(range(k * 250, k * 250 + 500), key=lambda n, k=k: (n * (k + 7)) % 503)]
                   for k in range(4)]
        results = await asyncio.gather(*(call(s, "ingest_batch_events", events=b)
                                         for s, b in zip(sessions, batches, strict=True)))
    # ids 0 .. 1249 are distinct: 1250 stored; 4 * 500 - 1250 = 750 duplicates
    assert sum(r["accepted"] for r in results) == 1250
    assert sum(r["duplicates"] for r in results) == 750
    assert await tokens_by_account(cdb, meter) == expected_tokens(range(1250))


async def test_two_concurrent_imports_of_overlapping_files_store_each_event_once(cclient, cdb, citus_url,
                                                                                 tmp_path: Path) -> None:
    meter = await setup(cclient)
    # an import runs at the wall clock's time: events of yesterday are in an open cycle, so they are billed
    # (and the accounts' past cycles are closed by the first batch that finds them due)
    base = (datetime.now(UTC) - timedelta(days=1)).replace(minute=0, second=0, microsecond=0)

    def line(n: int) -> str:
        return json.dumps(event(n) | {"timestamp": (base + timedelta(seconds=n)).isoformat()}) + "\n"

    first, second = tmp_path / "first.jsonl", tmp_path / "second.jsonl"
    first.write_text("".join(line(n) for n in range(0, 3000)))
    second.write_text("".join(line(n) for n in range(2000, 5000)))  # 1000 events in common
    databases = [Database(citus_url), Database(citus_url)]
    try:
        summaries = await asyncio.gather(*(
            import_file(db, path, tmp_path / f"{path.stem}.rejected.jsonl", show_progress=False)
            for db, path in zip(databases, (first, second), strict=True)))
        # re-running an import stores nothing again
        again = await import_file(databases[0], first, tmp_path / "again.jsonl", show_progress=False)
    finally:
        for db in databases:
            await db.dispose()
    assert sum(s.accepted for s in summaries) == 5000 and sum(s.duplicates for s in summaries) == 1000
    assert (again.accepted, again.duplicates, again.rejected) == (0, 3000, 0)
    assert await scalar(cdb, "SELECT count(*) FROM event_ids") == 5000
    async with cdb.unit_of_work() as session:
        assert await verify_rollups(session) == []
        got = await meter_quantities(session, start=base, end=base + timedelta(hours=2), meter_ids=[meter])
    assert {account: value for (account, _), value in got.items()} == expected_tokens(range(5000))


async def test_a_bill_run_with_the_wallet_paying_while_grants_are_written_concurrently(cclient, cdb, cclock) -> None:
    await setup(cclient)
    await call(cclient, "ingest_batch_events", events=[event(n) for n in range(400)])
    async with AsyncExitStack() as stack:
        sessions = [await stack.enter_async_context(hosted(Client(build_server(cdb, clock=cclock),
                                                                  raise_exceptions=False))) for _ in range(4)]
        # eight grants of 1.00 to acme at once, each key sent twice: eight grants written, eight replays
        results = await asyncio.gather(*(
            call(sessions[k % 4], "grant_credit", accountId="acme", amount="1.00", currency="USD",
                 idempotencyKey=f"top-up-{k % 8}") for k in range(16)))
    assert sorted(r["replayed"] for r in results) == [False] * 8 + [True] * 8
    wallet = await call(cclient, "get_wallet_balance", accountId="acme")
    assert wallet["balance"] == "8.00"

    cclock.set(at(2026, 2, 4))  # January's grace period has ended: its invoices become DUE
    summary, _, _ = await bill_run(cdb, at(2026, 2, 4))
    assert (summary.invoicesDue, summary.failed) == (4, [])
    again, _, _ = await bill_run(cdb, at(2026, 2, 4))
    assert again.invoicesDue == 0
    due = {}
    for account in ACCOUNTS:
        invoices = (await call(cclient, "list_invoices", accountId=account))["data"]
        due[account] = [(i["totalAmount"], i["creditsApplied"], i["amountDue"]) for i in invoices
                        if i["status"] == "DUE"]
    # acme's events are e0, e4, ..., e396: tokens 0 + 4 + ... + 396 = 4 * (0 + ... + 99) = 19800 -> 198.00,
    # of which the wallet's 8.00 pays; beta 1 + 5 + ... + 397 = 19800 + 100 = 19900 -> 199.00, and so on
    assert due == {"acme": [("198.00", "8.00", "190.00")], "beta": [("199.00", "0.00", "199.00")],
                   "corp": [("200.00", "0.00", "200.00")], "dyna": [("201.00", "0.00", "201.00")]}
    assert (await call(cclient, "get_wallet_balance", accountId="acme"))["balance"] == "0.00"
    entries = (await call(cclient, "list_wallet_entries", accountId="acme", pageSize=100))["data"]
    assert sorted(e["kind"] for e in entries) == ["APPLICATION"] * 8 + ["GRANT"] * 8
    # a late event of January (its invoice is DUE) is not billed, and verify still finds every rollup exact
    late = await call(cclient, "ingest_event", event=event(1000, "acme"))
    assert late["status"] == "NOT_BILLED_CYCLE_CLOSED"
    async with cdb.unit_of_work() as session:
        assert await verify_rollups(session) == []


async def test_reads_on_the_cluster(cclient, cdb) -> None:
    meter = await setup(cclient)
    await call(cclient, "ingest_batch_events", events=[event(n) for n in range(100)])
    account = await call(cclient, "get_account", accountId="beta")
    assert account["id"] == "beta"
    # beta: e1, e5, ..., e97: 1 + 5 + ... + 97 = 25 * 49 = 1225 tokens -> 12.25 USD accrued on its DRAFT
    draft = next(i for i in (await call(cclient, "list_invoices", accountId="beta"))["data"] if i["status"] == "DRAFT")
    assert draft["totalAmount"] == "12.25"
    result = await call(cclient, "get_metrics", startTime="2026-01-01T00:00:00Z", endTime="2026-02-01T00:00:00Z",
                        metricQueries=[{"id": "u", "name": "USAGE", "aggregationPeriod": "DAY", "groupBy": "ACCOUNT_ID",
                                        "filters": [{"fieldName": "USAGE_METER_ID", "fieldValues": [meter]}]},
                                       {"id": "n", "name": "EVENTS", "aggregationPeriod": "DAY"}])
    usage, events = result["results"]
    by_account = {(d["groupedBy"] or {}).get("fieldValue"): sum(Decimal(v) for v in d["metricValues"])
                  for d in usage["data"]}
    assert by_account == expected_tokens(range(100))
    assert sum(Decimal(v) for d in events["data"] for v in d["metricValues"]) == 100
    accounts = (await call(cclient, "list_accounts"))["data"]
    assert sorted(a["id"] for a in accounts) == sorted(ACCOUNTS)
