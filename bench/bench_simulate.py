"""simulate_price_plans at scale: 3 candidate plans × 1,000 accounts × 3 cycles of usage (goal: <= 10 s).

    TOGAI_DATABASE_URL=postgresql+asyncpg://postgres@127.0.0.1:5432/postgres \
        .venv/bin/python bench/bench_simulate.py [--accounts 1000] [--events-per-cycle 10] [--runs 3]

Creates a throwaway database, builds the data with the engine's own services (meters, plans,
customers and accounts with the plan attached, usage through the bulk import, i.e. the metering
service with rollups as in production), then, side by side in the same run:
- baseline: one real billing run, `close_due_cycles`, invoicing the same accounts' 3 cycles;
- the simulation: `simulate_price_plans` with the accounts' own plan and two inline plans over the last
  3 cycles, timed over several runs. The own plan must reproduce every invoice (checked, not timed).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import secrets
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import asyncpg

from togai_engine.accounts.schemas import AccountCreate
from togai_engine.app.accounts import create_account
from togai_engine.billing.close import close_due_cycles
from togai_engine.common.clock import FixedClock
from togai_engine.customers.schemas import CustomerCreate
from togai_engine.customers.service import create_customer
from togai_engine.events.bulk import import_events
from togai_engine.lab.service import simulate_price_plans
from togai_engine.meters.schemas import UsageMeterCreate
from togai_engine.meters.service import create_usage_meter
from togai_engine.plans.schemas import PricePlanCreate
from togai_engine.plans.service import create_plan
from togai_engine.store import migrate
from togai_engine.store.database import Database

START = datetime(2026, 1, 1, tzinfo=UTC)
CYCLES = 3
BILL_AT = datetime(2026, 4, 3, tzinfo=UTC)  # January to March are past their 2-day grace period


def _libpq(url: str) -> str:
    return url.replace("postgresql+asyncpg://", "postgresql://")


def _with_database(url: str, name: str) -> str:
    base, _, query = url.partition("?")
    return f"{base.rsplit('/', 1)[0]}/{name}" + (f"?{query}" if query else "")


async def _admin(url: str, sql: str) -> None:
    conn = await asyncpg.connect(_libpq(_with_database(url, "postgres")))
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


def _slabs(model: str, *slabs: tuple[str, str]) -> dict[str, Any]:
    return {"ratePlan": {"pricingModel": model, "slabs": [
        {"order": i, "startAfter": start, "priceType": "PER_UNIT"} for i, (start, _) in enumerate(slabs, 1)]},
        "rateValues": [{"currency": "USD", "slabRates": [{"order": i, "rate": r} for i, (_, r) in enumerate(slabs, 1)]}]}


def _plans(tokens: str, requests: str) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
    cycle = {"interval": "MONTHLY", "gracePeriod": 2}
    current = {"name": "Current", "pricingCycleConfig": cycle, "rateCards": {
        "usageRateCards": [{"usageMeterId": tokens, **_slabs("TIERED", ("0", "0.00002"), ("100000", "0.000012"))},
                           {"usageMeterId": requests, **_slabs("VOLUME", ("0", "0.01"), ("50", "0.006"))}],
        "fixedFeeRateCards": [{"id": "platform", "rateValues": [{"currency": "USD", "rate": "29"}]}],
        "minimumCommitment": {"rateValues": [{"currency": "USD", "rate": "35"}]}}}
    volume = {"name": "Volume", "pricingCycleConfig": cycle, "rateCards": {
        "usageRateCards": [{"usageMeterId": tokens, **_slabs("VOLUME", ("0", "0.000018"), ("150000", "0.00001"))}],
        "fixedFeeRateCards": [{"id": "platform", "rateValues": [{"currency": "USD", "rate": "19"}]}]}}
    commit = {"name": "Commit", "pricingCycleConfig": cycle, "rateCards": {
        "usageRateCards": [{"usageMeterId": tokens, **_slabs("TIERED", ("0", "0"), ("50000", "0.000015"))},
                           {"usageMeterId": requests, **_slabs("TIERED", ("0", "0.004"))}],
        "minimumCommitment": {"rateValues": [{"currency": "USD", "rate": "60"}]}}}
    return current, volume, commit


async def _setup(db: Database, accounts: int) -> tuple[str, list[dict[str, Any]], list[str]]:
    """(current plan id, the two inline candidates, account ids), with every account on the current plan."""
    async with db.unit_of_work() as s:
        tokens, _ = await create_usage_meter(s, UsageMeterCreate(
            name="tokens", eventSchemaName="llm", aggregation="SUM", computations=[{"computation": "tokens"}]), START)
        requests, _ = await create_usage_meter(s, UsageMeterCreate(
            name="requests", eventSchemaName="api", aggregation="COUNT"), START)
        current, volume, commit = _plans(tokens.id, requests.id)
        plan, _ = await create_plan(s, PricePlanCreate.model_validate(current))
    ids = [f"acc_{n:05d}" for n in range(accounts)]
    for chunk in range(0, accounts, 250):
        async with db.unit_of_work() as s:
            for account_id in ids[chunk:chunk + 250]:
                await create_customer(s, CustomerCreate(id=f"cust_{account_id}", name=account_id))
                await create_account(s, AccountCreate(id=account_id, customerId=f"cust_{account_id}", name=account_id,
                                                      pricePlanId=plan.id, effectiveFrom=START), START)
    return plan.id, [volume, commit], ids


def _events(ids: list[str], cycle: int, per_cycle: int) -> Iterator[dict[str, Any]]:
    """One cycle's usage: small, medium and large users (tokens per event), the same users every cycle."""
    rng = random.Random(cycle)
    sizes = random.Random(7)
    month = datetime(2026, 1 + cycle, 1, tzinfo=UTC)
    for account_id in ids:
        size = sizes.choice((20_000, 400_000, 3_000_000))
        for n in range(per_cycle):
            moment = month + timedelta(minutes=rng.randrange(28 * 24 * 60))
            if n % 3 == 2:
                yield {"id": f"{account_id}-{cycle}-{n}", "schemaName": "api", "accountId": account_id,
                       "timestamp": moment.isoformat(), "attributes": {}}
            else:
                tokens = Decimal(rng.randrange(0, size * 1000)) / 1000
                yield {"id": f"{account_id}-{cycle}-{n}", "schemaName": "llm", "accountId": account_id,
                       "timestamp": moment.isoformat(), "attributes": {"tokens": str(tokens)}}


async def _bench(url: str, accounts: int, per_cycle: int, runs: int) -> None:
    db = Database(url, pool_size=4)
    try:
        started = time.perf_counter()
        current_id, inline, ids = await _setup(db, accounts)
        accepted = 0
        for cycle in range(CYCLES):  # loaded before any cycle is due, so one billing run invoices all three
            summary = await import_events(db, _events(ids, cycle, per_cycle), clock=FixedClock(START), concurrency=4)
            accepted += summary.accepted
        print(f"data: {accounts} accounts on one plan, {CYCLES} monthly cycles, {accepted} events "
              f"(built with the engine's services in {time.perf_counter() - started:.1f} s)")

        async with db.unit_of_work() as session:
            started = time.perf_counter()
            closed = await close_due_cycles(session, BILL_AT)
            billing = time.perf_counter() - started
        print(f"baseline: one real billing run (close_due_cycles): {billing:6.2f} s "
              f"({closed.invoicesDue} invoices DUE, {closed.draftsOpened} drafts opened)")

        candidates: list[Any] = [current_id, *inline]
        timings = []
        result = None
        for _ in range(runs):
            async with db.unit_of_work() as session:
                started = time.perf_counter()
                result = await simulate_price_plans(session, candidates, now=BILL_AT, start_time=START,
                                                    end_time=datetime(2026, 1 + CYCLES, 1, tzinfo=UTC))
                timings.append(time.perf_counter() - started)
        assert result is not None
        periods = sum(len(a.cycles) for a in result.accounts)
        print(f"simulation: {len(candidates)} candidates × {result.accountsSimulated} accounts × {CYCLES} cycles "
              f"({periods * len(candidates)} priced periods): first {timings[0]:6.2f} s, best {min(timings):6.2f} s "
              f"over {runs} runs (goal <= 10 s; {min(timings) / billing:.2f}× the billing run)")
        own = [c for a in result.accounts for cycle in a.cycles for c in cycle.candidates if c.candidate == 0]
        reproduced = len(own) == closed.invoicesDue and all(c.difference == 0 for c in own)
        print(f"the accounts' own plan reproduces all {closed.invoicesDue} invoices to the cent: "
              f"{'yes' if reproduced else 'NO'}")
        for total in result.totals:
            print(f"  {total.name:<8} {total.currency} actual {total.actual:>12,} candidate {total.amount:>12,} "
                  f"difference {total.difference:>+12,} ({total.differencePercent}%)")
        if not reproduced:
            raise SystemExit("the simulation does not reproduce the invoices")
    finally:
        await db.dispose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--accounts", type=int, default=1000)
    parser.add_argument("--events-per-cycle", type=int, default=10)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    server = os.environ.get("TOGAI_DATABASE_URL", "postgresql+asyncpg://postgres@127.0.0.1:5432/postgres")
    name = f"togai_bench_sim_{os.getpid()}_{secrets.token_hex(3)}"
    asyncio.run(_admin(server, f'CREATE DATABASE "{name}"'))
    url = _with_database(server, name)
    try:
        migrate.upgrade(url)
        asyncio.run(_bench(url, args.accounts, args.events_per_cycle, args.runs))
    finally:
        asyncio.run(_admin(server, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


if __name__ == "__main__":
    main()
