"""`togai-engine serve --sandbox` as a user runs it: a subprocess on the test database."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from pathlib import Path

from mcp import Client

from helpers import call

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
