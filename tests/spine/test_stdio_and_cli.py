"""The server as a user runs it: `togai-engine serve` over stdio as a subprocess, and the CLI."""

from __future__ import annotations

import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from mcp import Client, StdioServerParameters

from conftest import hosted

BIN = Path(sys.executable).parent / "togai-engine"


def cli_env(database_url: str | None, data_dir: Path | None = None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TOGAI_")}
    if database_url:
        env["TOGAI_DATABASE_URL"] = database_url
    if data_dir:
        env["TOGAI_DATA_DIR"] = str(data_dir)
    env["TOGAI_BILLING_INTERVAL_SECONDS"] = "0"
    return env


async def test_stdio_round_trip(database_url, db):
    params = StdioServerParameters(command=str(BIN), args=["serve", "--transport", "stdio"],
                                   env=cli_env(database_url))
    async with hosted(Client(params)) as client:
        created = await client.call_tool("create_customer", {"id": "cust_stdio", "name": "Over Stdio"})
        assert not created.is_error, created.content
        timings = []
        for _ in range(20):
            start = time.perf_counter()
            got = await client.call_tool("get_customer", {"customerId": "cust_stdio"})
            timings.append(time.perf_counter() - start)
        assert got.structured_content["name"] == "Over Stdio"
        missing = await client.call_tool("get_customer", {"customerId": "nope"})
        assert missing.is_error and "list_customers" in missing.content[0].text
        # JSON numbers as the server reads them: 0.1 is kept; 0.30000000000000004 and 0.12345678901234568 (the
        # client sends the float nearest 0.12345678901234567890), 17 digits each, are refused; a string is kept
        await client.call_tool("create_account", {"customerId": "cust_stdio", "id": "acc_stdio", "name": "A"})
        batch = await client.call_tool("ingest_batch_events", {"events": [
            {"id": f"n{i}", "schemaName": "api_call", "timestamp": "2026-01-05T10:00:00Z", "accountId": "acc_stdio",
             "attributes": {"tokens": value}}
            for i, value in enumerate([0.1, 0.1 + 0.2, 0.12345678901234567890, "0.12345678901234567890"])]})
        assert not batch.is_error, batch.content
        assert [(r["index"], r["code"]) for r in batch.structured_content["rejectedEvents"]] == [
            (1, "INVALID_VALUE"), (2, "INVALID_VALUE")]
        assert batch.structured_content["notBilledNoPlan"] == 2  # stored; acc_stdio has no price plan
        print(f"stdio get_customer median {statistics.median(timings) * 1000:.2f} ms")


def test_invalid_settings_fail_with_one_clear_line(tmp_path):
    env = cli_env(None, tmp_path)
    env["TOGAI_DATABASE_URL"] = "mysql://nope"
    out = subprocess.run([str(BIN), "db", "url"], env=env, capture_output=True, text=True, timeout=60)
    assert out.returncode == 2
    assert out.stderr.strip().splitlines() == [
        "togai-engine: invalid setting TOGAI_DATABASE_URL: Value error, must be a PostgreSQL URL such as "
        "postgresql+asyncpg://user@host:5432/dbname"
    ]


def test_db_commands_against_configured_server(database_url):
    env = cli_env(database_url)
    url = subprocess.run([str(BIN), "db", "url"], env=env, capture_output=True, text=True, timeout=60)
    assert url.returncode == 0 and url.stdout.strip() == database_url
    check = subprocess.run([str(BIN), "db", "check"], env=env, capture_output=True, text=True, timeout=120)
    assert check.returncode == 0, check.stderr
    assert "no drift" in check.stdout


def test_embedded_default_starts_migrates_serves_and_reuses_data():
    """No TOGAI_DATABASE_URL: the CLI runs the embedded PostgreSQL, migrates it and stops it after."""
    tmp_path = Path(tempfile.mkdtemp(prefix="togai-test-cli-"))  # see conftest: not pytest's tmp_path
    env = cli_env(None, tmp_path / "data")
    first = subprocess.run([str(BIN), "demo"], env=env, capture_output=True, text=True, timeout=300)
    assert first.returncode == 0, first.stderr[-3000:]
    assert "demo_acme" in first.stdout
    assert (tmp_path / "data" / "pgdata" / "PG_VERSION").exists()
    # the server was stopped explicitly: no postgres process holds the data dir any more
    assert not (tmp_path / "data" / "pgdata" / "postmaster.pid").exists()
    # a second start re-uses the data: the customer of the first run is still there
    second = subprocess.run([str(BIN), "demo"], env=env, capture_output=True, text=True, timeout=300)
    assert second.returncode == 0, second.stderr[-3000:]
    def created_at(out: str) -> str:
        return next(line for line in out.splitlines() if '"createdAt"' in line)

    assert created_at(second.stdout) == created_at(first.stdout)
    shutil.rmtree(tmp_path, ignore_errors=True)
