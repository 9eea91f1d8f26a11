"""The CLI on a sandbox database works at the sandbox's time, as its server does, not at the wall clock's
(months away from the sandbox's here, so a command that used it would show): `import events` (an event
after the sandbox time is rejected, EVENT_IN_FUTURE), `plans apply`, `simulate` (a later --as-of is
refused), `keys create`/`revoke` and `demo`. Each runs as a user runs it, a subprocess on the test database."""

from __future__ import annotations

import csv
import json
import subprocess
from collections.abc import AsyncIterator
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from mcp import Client
from sqlalchemy import text

from conftest import hosted
from helpers import at, call
from mcp_server.server import build_server
from test_sandbox_clock import make_sandbox, set_up
from test_serve_sandbox import BIN, env_for
from togai_engine.common.clock import FixedClock
from togai_engine.events.importer import import_file
from togai_engine.store.database import Database

SANDBOX_AT = at(2026, 1, 20, 8)


def run(database_url: str, *arguments: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(BIN), *arguments], env=env_for(database_url), capture_output=True, text=True,
                          timeout=300, stdin=subprocess.DEVNULL)


@pytest.fixture
async def on_sandbox(db: Database) -> AsyncIterator[Client]:
    """A sandbox database at 2026-01-20T08:00Z with the "Tokens" plan (monthly from Jan 1, one day of grace,
    0.50 a token) and accounts a1, a2 on it (test_sandbox_clock.set_up), and a sandbox server on it."""
    await make_sandbox(db, SANDBOX_AT)
    async with hosted(Client(build_server(db, clock=FixedClock(at(2031, 7, 4)), sandbox=True),
                             raise_exceptions=False)) as server:
        await set_up(server)
        yield server


async def rows(db: Database, sql: str) -> list[tuple[Any, ...]]:
    async with db.unit_of_work() as session:
        return [tuple(row) for row in await session.execute(text(sql))]


async def audited_at(db: Database, command: str) -> list[datetime]:
    return [r[0] for r in await rows(db, f"SELECT at FROM audit_log WHERE tool = '{command}' ORDER BY id")]


def event_line(event_id: str, when: str, tokens: str) -> str:
    return json.dumps({"id": event_id, "schemaName": "llm", "timestamp": when, "accountId": "a1",
                       "attributes": {"tokens": tokens}})


async def test_import_events_ingests_at_the_sandbox_time_and_rejects_later_events(
        on_sandbox: Client, db: Database, database_url: str, tmp_path: Path) -> None:
    source = tmp_path / "history.jsonl"
    source.write_text("\n".join([
        event_line("e1", "2026-01-10T00:00:00Z", "8"),
        event_line("e2", "2026-01-20T08:00:00Z", "2"),  # at the sandbox time: it has happened
        event_line("e3", "2026-01-20T08:00:01Z", "5"),  # a second later: it has not
    ]) + "\n")
    out = run(database_url, "import", "events", str(source), "--no-progress")
    assert out.returncode == 1, out.stderr
    assert "read 3: accepted 2," in out.stdout and "rejected 1" in out.stdout
    (rejected,) = [json.loads(line) for line in (tmp_path / "history.jsonl.rejected.jsonl").read_text().splitlines()]
    assert (rejected["line"], rejected["id"], rejected["code"], rejected["field"]) == (
        3, "e3", "EVENT_IN_FUTURE", "timestamp")
    assert "after the sandbox clock (2026-01-20T08:00:00+00:00)" in rejected["reason"]
    assert await rows(db, "SELECT id, received_at FROM events ORDER BY id") == [("e1", SANDBOX_AT), ("e2", SANDBOX_AT)]
    assert await audited_at(db, "import events") == [SANDBOX_AT]
    # a1's open January: (8 + 2) tokens x 0.50 = 5.00
    assert (await call(on_sandbox, "get_invoice", accountId="a1"))["totalAmount"] == "5.00"


async def test_parallel_import_workers_ingest_at_the_sandbox_time_too(
        on_sandbox: Client, db: Database, tmp_path: Path) -> None:
    source = tmp_path / "history.jsonl"
    lines = [event_line(f"e{i}", f"2026-01-1{i}T00:00:00Z", "1") for i in range(6)]  # Jan 10 to Jan 15
    lines.append(event_line("late", "2026-01-21T00:00:00Z", "1"))  # the last line: in the second part
    source.write_text("\n".join(lines) + "\n")
    report = tmp_path / "report.jsonl"
    summary = await import_file(db, source, report, show_progress=False, workers=2, min_part_bytes=300, sandbox=True)
    assert (summary.accepted, summary.rejected) == (6, 1)
    (rejected,) = [json.loads(line) for line in report.read_text().splitlines()]
    assert (rejected["line"], rejected["code"]) == (7, "EVENT_IN_FUTURE")
    assert await rows(db, "SELECT DISTINCT received_at FROM events") == [(SANDBOX_AT,)]


async def test_plans_apply_creates_at_the_sandbox_time(on_sandbox: Client, db: Database, database_url: str,
                                                       tmp_path: Path) -> None:
    file = tmp_path / "pricing.yaml"
    file.write_text("""
meters:
  - {id: sbx_calls, name: sbx_calls, eventSchemaName: api_call, aggregation: COUNT}
plans:
  - name: Sbx Base
    pricingCycleConfig: {interval: MONTHLY}
    rateCards:
      fixedFeeRateCards: [{id: base, rateValues: [{currency: USD, rate: 10}]}]
""")
    out = run(database_url, "plans", "apply", str(file))
    assert out.returncode == 0, out.stderr
    assert out.stdout.count("created") == 2
    assert await rows(db, "SELECT created_at FROM usage_meters WHERE id = 'sbx_calls'") == [(SANDBOX_AT,)]
    assert await audited_at(db, "plans apply") == [SANDBOX_AT]


async def test_simulate_runs_as_of_the_sandbox_time_and_refuses_a_later_one(
        on_sandbox: Client, db: Database, database_url: str, tmp_path: Path) -> None:
    plan_id = (await call(on_sandbox, "list_price_plans"))["data"][0]["id"]
    await call(on_sandbox, "ingest_event", event={"id": "e1", "schemaName": "llm", "timestamp": "2026-01-10T00:00:00Z",
                                                  "accountId": "a1", "attributes": {"tokens": "8"}})
    candidates = tmp_path / "candidates.json"
    candidates.write_text(json.dumps([plan_id]))
    table = tmp_path / "out.csv"
    out = run(database_url, "simulate", "--plans", str(candidates), "--accounts", "a1", "--csv", str(table))
    assert out.returncode == 0, out.stderr
    with table.open() as handle:
        simulated = [(r["periodStart"], r["status"], r["actual"], r["Tokens amount"]) for r in csv.DictReader(handle)]
    # As of Jan 20 a1 has one period, January, open: 8 x 0.50 = 4.00 (at the wall clock: its last three months)
    assert simulated == [("2026-01-01T00:00:00+00:00", "DRAFT", "4.00", "4.00")]

    later = run(database_url, "simulate", "--plans", str(candidates), "--as-of", "2026-02-01")
    assert later.returncode == 1
    assert ("--as-of: this database is a sandbox at 2026-01-20T08:00:00+00:00 and 2026-02-01T00:00:00+00:00 is "
            "later; simulating as of it would price usage that has not happened yet") in later.stderr
    assert "advance_clock" in later.stderr and "Traceback" not in later.stderr


async def test_keys_are_created_and_revoked_at_the_sandbox_time(db: Database, database_url: str) -> None:
    await make_sandbox(db, SANDBOX_AT)
    created = run(database_url, "keys", "create", "--name", "ci", "--scopes", "billing:read")
    assert created.returncode == 0, created.stderr
    key_id = created.stderr.split("key id ")[1].split(",")[0]
    revoked = run(database_url, "keys", "revoke", key_id)
    assert revoked.returncode == 0, revoked.stderr
    assert await rows(db, "SELECT created_at, revoked_at FROM api_keys") == [(SANDBOX_AT, SANDBOX_AT)]
    assert await audited_at(db, "keys create") == await audited_at(db, "keys revoke") == [SANDBOX_AT]
    assert "revoked 2026-01-20T08:00:00+00:00" in run(database_url, "keys", "list").stdout


async def test_the_demo_on_a_sandbox_runs_at_its_time(db: Database, database_url: str) -> None:
    sandbox_now = at(2026, 3, 10, 12)
    await make_sandbox(db, sandbox_now)
    out = run(database_url, "demo")
    assert out.returncode == 0, out.stderr[-3000:]
    assert "== get_clock (this database is a sandbox: the demo runs at its time" in out.stdout
    assert '"sandbox": true' in out.stdout  # the records it prints say so
    # 40 events from March 1 up to the sandbox time, none after it (none rejected), received at it
    assert await rows(db, "SELECT count(*), min(event_time), max(event_time) < '2026-03-10T12:00:00Z', "
                          "min(received_at), max(received_at) FROM events") == [
        (40, at(2026, 3, 1), True, sandbox_now, sandbox_now)]
    async with hosted(Client(build_server(db, sandbox=True), raise_exceptions=False)) as server:
        draft = await call(server, "get_invoice", accountId="demo_acme_main")
    # March, open: 40 x 3,000 = 120,000 tokens = 100,000 x 0.0002 + 20,000 x 0.0001 = 22.00, plus the 49.00
    # platform fee in advance = 71.00
    assert (draft["startDate"], draft["status"], draft["totalAmount"]) == ("2026-03-01T00:00:00Z", "DRAFT", "71.00")
