"""get_metrics REVENUE over many closed invoices: Python cost per invoice.

One account on the Scale plan (bench/dataset.py: 3 usage cards, a minimum commitment) gets some January usage
through the engine's ingest and its January invoice closed DUE by a real bill run; that account, its plan
association, invoice and lines are then copied N times in PostgreSQL (generate_series, as
tests/billing/test_revenue.py does for 33,001 invoices), so N accounts each have one closed January invoice; the
first K copies get the template's usage rollups times their copy number (so no two price the same quantities;
amounts inside the period then differ from the invoice, which the period's end sets back), and a customer of
their own.
Timed: get_metrics REVENUE over January, MONTH buckets over all N invoices (one point per period: no usage read
inside it), and DAY buckets (31 cuts per period, usage read and priced at each) over the first K of them (their
accounts belong to a customer of their own, the query's CUSTOMER_ID filter).
Baseline, same run, alternating: one plain SELECT of the same invoices' top-level lines (what REVENUE must read
at the least). Also reported: process CPU per invoice (time.process_time of the whole call).

Run on its own: `.venv/bin/python -m bench.bench_revenue [--invoices 33001] [--day-invoices 1000] [--runs 3]`.
"""

from __future__ import annotations

import asyncio
import statistics
import time
from datetime import UTC, datetime
from decimal import Decimal

from bench import dataset
from bench.common import Figure, report, scratch_database
from togai_engine.billing.close import close_due_cycles
from togai_engine.common.gc_tuning import tune_gc
from togai_engine.customers.schemas import CustomerCreate
from togai_engine.customers.service import create_customer
from togai_engine.events.ingest import ingest_events
from togai_engine.metrics.schemas import MetricFilter, MetricQuery
from togai_engine.metrics.service import get_metrics
from togai_engine.store.clones import clone_rows
from togai_engine.store.database import Database, raw_connection
from togai_engine.store.partitions import ensure_range

JAN = datetime(2026, 1, 1, tzinfo=UTC)
FEB = datetime(2026, 2, 1, tzinfo=UTC)
MAR = datetime(2026, 3, 1, tzinfo=UTC)
BILL_AT = datetime(2026, 2, 3, 1, tzinfo=UTC)
TEMPLATE = "acc_00000"
DAY_CUSTOMER = "c_day"
BASELINE_SQL = (
    "SELECT l.invoice_id, l.line_type, l.rate_card_name, l.value, l.details, l.usage_meter_id "
    "FROM invoices i JOIN invoice_lines l ON l.invoice_id = i.id "
    "WHERE i.period_start < $2 AND i.period_end > $1 AND i.status <> 'VOID' AND l.parent_position IS NULL "
    "AND ($3::text IS NULL OR i.customer_id = $3)")


async def _build(url: str, copies: int, day_copies: int) -> Database:
    db = Database(url, pool_size=3)
    await ensure_range(db.engine, JAN, MAR)
    meters = await dataset.create_meters(db)
    plans = await dataset.create_plans(db, meters)
    await dataset.create_accounts(db, [TEMPLATE], {TEMPLATE: plans.scale}, effective_from=JAN, now=JAN)
    async with db.unit_of_work() as session:
        await create_customer(session, CustomerCreate(id=DAY_CUSTOMER, name="DAY buckets"))
    events = [{"id": f"e{i}", "schemaName": schema, "accountId": TEMPLATE,
               "timestamp": datetime(2026, 1, 1 + i % 31, i % 24, tzinfo=UTC).isoformat(), "attributes": attributes,
               **({"dimensions": {"tier": "gpu"}} if schema == "compute" else {})}
              for i in range(600)
              for schema, attributes in [(("api_call", {}), ("llm", {"input_tokens": "40000", "output_tokens": "9000"}),
                                          ("compute", {"seconds": "5000"}))[i % 3]]]
    async with db.unit_of_work() as session:
        await ingest_events(session, events, FEB)
    async with db.unit_of_work() as session:
        summary = await close_due_cycles(session, BILL_AT)
        assert summary.invoicesDue == 1, summary
    async with db.unit_of_work() as session:
        conn = await raw_connection(session)
        invoice = await conn.fetchval("SELECT id FROM invoices WHERE account_id = $1 AND status = 'DUE'", TEMPLATE)
        customer = f"CASE WHEN n <= {day_copies} THEN '{DAY_CUSTOMER}' ELSE t.customer_id END"
        await clone_rows(conn, "accounts", f"t.id = '{TEMPLATE}'", {
            "id": "'acc_c' || n", "name": "'A' || n", "customer_id": customer}, copies)
        await clone_rows(conn, "account_handles", f"t.account_id = '{TEMPLATE}' AND t.kind = 'ID'",
                         {"handle": "'acc_c' || n", "account_id": "'acc_c' || n"}, copies)
        await clone_rows(conn, "plan_associations", f"t.account_id = '{TEMPLATE}'", {"account_id": "'acc_c' || n"},
                         copies)
        # usage only for the DAY accounts (MONTH buckets read none inside a period): ~600 rollup rows each, the
        # template's times n, so no two accounts price the same quantities (their invoices stay the template's)
        scaled = {"account_id": "'acc_c' || n", "event_count": "t.event_count * n", "value_sum": "t.value_sum * n",
                  "value_max": "t.value_max * n", "latest_value": "t.latest_value * n"}
        for table in ("usage_rollups", "usage_rollups_daily"):
            await clone_rows(conn, table, f"t.account_id = '{TEMPLATE}'", scaled, day_copies)
        await clone_rows(conn, "invoices", f"t.id = '{invoice}'", {
            "id": "'inv_c' || n", "account_id": "'acc_c' || n", "sequence_number": "t.sequence_number + n",
            "customer_id": customer,
            "association_id": "(SELECT p.id FROM plan_associations p WHERE p.account_id = 'acc_c' || n)"}, copies)
        await clone_rows(conn, "invoice_lines", f"t.invoice_id = '{invoice}'", {"invoice_id": "'inv_c' || n"},
                         copies)
        await conn.execute("ANALYZE")
    return db


async def _bench(url: str, *, invoices: int, day_invoices: int, runs: int) -> list[Figure]:
    db = await _build(url, invoices - 1, day_invoices)
    try:
        figures = []
        for period, customer, count in (("MONTH", None, invoices), ("DAY", DAY_CUSTOMER, day_invoices)):
            async with db.unit_of_work() as session:
                conn = await raw_connection(session)
                expected = await conn.fetchval(
                    "SELECT sum(total_amount) FROM invoices WHERE period_start < $2 AND period_end > $1 "
                    "AND status <> 'VOID' AND ($3::text IS NULL OR customer_id = $3)", JAN, FEB, customer)
                lines = len(await conn.fetch(BASELINE_SQL, JAN, FEB, customer))
            query = MetricQuery(id="q", name="REVENUE", aggregationPeriod=period, filters=[
                MetricFilter(fieldName="CUSTOMER_ID", fieldValues=[customer])] if customer else [])
            engine, cpu, baseline = [], [], []
            total = None
            for _ in range(runs):
                async with db.unit_of_work() as session:
                    started, cpu_started = time.perf_counter(), time.process_time()
                    result = await get_metrics(session, JAN, FEB, [query])
                    engine.append(time.perf_counter() - started)
                    cpu.append(time.process_time() - cpu_started)
                    total = sum(result.results[0].data[0].metricValues, Decimal(0))
                    conn = await raw_connection(session)
                    started = time.perf_counter()
                    await conn.fetch(BASELINE_SQL, JAN, FEB, customer)
                    baseline.append(time.perf_counter() - started)
                print(f"    {period}: REVENUE {engine[-1]:.3f} s (process CPU {cpu[-1]:.3f} s), plain SELECT of the "
                      f"lines {baseline[-1]:.3f} s", flush=True)
            # the buckets of one closed month add up to its invoices' totals, to the cent
            assert total == expected, (total, expected)
            figures.append(report(Figure(
                key=f"revenue_{period.lower()}", name=f"get_metrics REVENUE, {count:,} closed invoices, {period} "
                f"buckets over their month", unit="s", goal="<= 2", measured=statistics.median(engine),
                baseline=statistics.median(baseline),
                baseline_label=f"one plain SELECT of the same invoices' {lines:,} top-level lines",
                runs=engine, baseline_runs=baseline,
                notes=f"process CPU {statistics.median(cpu) / count * 1e6:.0f} µs per invoice (runs: "
                      f"{', '.join(f'{c:.2f}' for c in cpu)} s); total {total} USD")))
        return figures
    finally:
        await db.dispose()


def run(*, invoices: int, day_invoices: int, runs: int) -> list[Figure]:
    print(f"REVENUE: {invoices:,} closed invoices (DAY buckets: {day_invoices:,} of them), {runs} runs", flush=True)
    tune_gc()
    with scratch_database("revenue") as url:
        return asyncio.run(_bench(url, invoices=invoices, day_invoices=day_invoices, runs=runs))


if __name__ == "__main__":
    import argparse

    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--invoices", type=int, default=33_001)
    parser.add_argument("--day-invoices", type=int, default=1000)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    run(invoices=args.invoices, day_invoices=args.day_invoices, runs=args.runs)
