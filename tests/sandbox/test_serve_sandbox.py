"""`togai-engine serve --sandbox` as a user runs it: a subprocess on the test database."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from pathlib import Path

from mcp import Client
from sqlalchemy import text

from conftest import hosted
from helpers import at, call
from mcp_server.server import build_server
from togai_engine.sandbox.service import start
from togai_engine.store.database import Database

BIN = Path(sys.executable).parent / "togai-engine"


def env_for(database_url: str) -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith("TOGAI_")} | {
        "TOGAI_DATABASE_URL": database_url, "TOGAI_BILLING_INTERVAL_SECONDS": "0"}


def run(database_url: str, *arguments: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(BIN), "serve", *arguments], env=env_for(database_url), capture_output=True,
                          text=True, timeout=120, stdin=subprocess.DEVNULL)


async def first_lines(database_url: str, *arguments: str, until: str) -> list[str]:
    """The server's stderr lines up to the one containing `until`; the server is stopped then."""
    server = await asyncio.create_subprocess_exec(
        str(BIN), "serve", *arguments, stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE, env=env_for(database_url))
    lines: list[str] = []
    try:
        assert server.stderr is not None
        while not lines or until not in lines[-1]:
            line = await asyncio.wait_for(server.stderr.readline(), 60)
            assert line, f"the server stopped: {lines}"
            lines.append(line.decode().strip())
    finally:
        server.terminate()
        await server.wait()
    return lines


async def test_serve_sandbox_starts_a_sandbox_and_reuses_it(db, database_url: str) -> None:
    lines = await first_lines(database_url, "--sandbox", "--start", "2026-01-01", "--transport", "http",
                              "--port", "0", until="listening on")
    assert "sandbox: this database is a sandbox at 2026-01-01T00:00:00Z (advance_clock moves its time)" in lines
    # again, even with another --start: the same sandbox, at its own time
    lines = await first_lines(database_url, "--sandbox", "--start", "2027-05-05", "--transport", "http",
                              "--port", "0", until="listening on")
    assert "sandbox: this database is a sandbox at 2026-01-01T00:00:00Z (advance_clock moves its time)" in lines
    refused = run(database_url)
    assert refused.returncode == 1
    assert "this database is a sandbox" in refused.stderr and "start the server with --sandbox" in refused.stderr


async def test_serve_sandbox_refuses_a_database_with_real_data(client: Client, db, database_url: str) -> None:
    await call(client, "create_customer", id="c", name="C", account={"id": "a", "name": "A"})
    refused = run(database_url, "--sandbox")
    assert refused.returncode == 1, refused.stderr
    assert "already holds accounts made at real times, so it cannot become a sandbox" in refused.stderr
    assert "Traceback" not in refused.stderr


def test_start_without_sandbox_is_a_usage_error(database_url: str) -> None:
    refused = run(database_url, "--start", "2026-01-01")
    assert refused.returncode == 2 and "add --sandbox" in refused.stderr


async def sandbox_with_january_due(db: Database) -> None:
    """A sandbox whose clock is Feb 3 (January's one-day grace is over), an account on a monthly plan since
    Jan 1 and no bill run yet: the clock row is moved by hand, so nothing has billed January."""
    async with db.unit_of_work() as session:
        await start(session, at(2026, 1, 1))
    async with hosted(Client(build_server(db, sandbox=True), raise_exceptions=False)) as sandbox:
        plan = await call(sandbox, "create_price_plan", name="Basic", pricingCycleConfig={
            "interval": "MONTHLY", "startOffset": {"dayOffset": "1"}, "gracePeriod": 1})
        await call(sandbox, "create_customer", id="c", name="C", account={
            "id": "a", "name": "A", "pricePlanId": plan["id"], "effectiveFrom": "2026-01-01T00:00:00Z"})
    async with db.unit_of_work() as session:
        await session.execute(text("UPDATE sandbox_clock SET now = '2026-02-03T00:00:00Z'"))


async def statuses(db: Database) -> list[tuple[str, str]]:
    async with db.unit_of_work() as session:
        rows = await session.execute(text("SELECT to_char(period_start AT TIME ZONE 'UTC', 'YYYY-MM-DD'), status "
                                          "FROM invoices ORDER BY period_start"))
        return [(r[0], r[1]) for r in rows]


async def test_background_bill_run_bills_at_the_sandbox_time(db: Database, database_url: str) -> None:
    await sandbox_with_january_due(db)
    server = await asyncio.create_subprocess_exec(
        str(BIN), "serve", "--sandbox", stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.DEVNULL, env=env_for(database_url) | {"TOGAI_BILLING_INTERVAL_SECONDS": "1"})
    try:
        for _ in range(100):
            await asyncio.sleep(0.2)
            if ("2026-01-01", "DUE") in await statuses(db):
                break
    finally:
        server.terminate()
        await server.wait()
    # At the wall clock (months later) every month up to now would be DUE; at Feb 3 only January is.
    assert await statuses(db) == [("2026-01-01", "DUE"), ("2026-02-01", "DRAFT")]


async def test_bill_cli_on_a_sandbox_bills_at_its_time_and_refuses_later(db: Database, database_url: str) -> None:
    await sandbox_with_january_due(db)
    later = subprocess.run([str(BIN), "bill", "--as-of", "2026-03-05"], env=env_for(database_url),
                           capture_output=True, text=True, timeout=120)
    assert later.returncode == 1 and "sandbox at 2026-02-03" in later.stderr and "advance_clock" in later.stderr
    assert await statuses(db) == [("2026-01-01", "DRAFT")]  # as creating the account left it: nothing billed
    billed = subprocess.run([str(BIN), "bill"], env=env_for(database_url), capture_output=True, text=True,
                            timeout=120)
    assert billed.returncode == 0, billed.stderr
    assert "billing run as of 2026-02-03T00:00:00+00:00" in billed.stdout
    assert await statuses(db) == [("2026-01-01", "DUE"), ("2026-02-01", "DRAFT")]
