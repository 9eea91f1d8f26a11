"""Killing `togai-engine import events --workers 2` stops the whole import: its worker processes die with it."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil

from helpers import call, scalar, tokens_meter

BIN = Path(sys.executable).parent / "togai-engine"
LINES = 130_000  # ~24 MiB: three times the 8 MiB a second part needs
# One event per transaction: the import takes minutes, so workers that outlive their importer are still
# importing when they are looked for (with batches of 1000 they could finish the file first).
BATCH_SIZE = "1"
STARTUP_SECONDS = 120  # the CLI migrates, spawns two interpreters, and they connect: slow on a busy machine


def alive(process: psutil.Process) -> bool:
    """Running (a zombie is dead: only its exit status is left, for a parent that may not ask for it)."""
    try:
        return process.status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def session_processes(sid: int) -> list[psutil.Process]:
    """Living processes of session `sid` (the importer was started as its leader)."""
    found = []
    for process in psutil.process_iter():
        with contextlib.suppress(psutil.Error, ProcessLookupError):
            if os.getsid(process.pid) == sid and alive(process):
                found.append(process)
    return found


async def wait_for(condition, what: str, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not await condition():
        assert time.monotonic() < deadline, f"{what} did not happen within {timeout} s"
        await asyncio.sleep(0.1)


async def test_killing_the_importer_stops_its_workers(client, db, database_url, tmp_path: Path) -> None:
    await call(client, "create_customer", id="c", name="C", account={"id": "acme", "name": "Acme"})
    await tokens_meter(client)
    source = tmp_path / "big.jsonl"
    with source.open("w") as out:
        for i in range(LINES):
            out.write(f'{{"id": "e{i:07d}", "schemaName": "llm", "timestamp": "2026-01-{1 + i % 28:02d}T00:00:00Z", '
                      f'"accountId": "acme", "attributes": {{"tokens": "{i % 1000}"}}, '
                      f'"dimensions": {{"model": "model-{i % 7}", "region": "region-{i % 5}", "note": "padding"}}}}\n')
    assert source.stat().st_size > 3 * (8 << 20)

    env = {k: v for k, v in os.environ.items() if not k.startswith("TOGAI_")} | {"TOGAI_DATABASE_URL": database_url}
    importer = subprocess.Popen([str(BIN), "import", "events", str(source), "--workers", "2", "--batch-size", BATCH_SIZE,
                                 "--no-progress"],
                                env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True)
    parent = psutil.Process(importer.pid)
    try:
        async def two_workers() -> bool:
            assert importer.poll() is None, importer.stderr.read().decode() if importer.stderr else ""
            return len([p for p in parent.children() if "--multiprocessing-fork" in p.cmdline()]) == 2

        await wait_for(two_workers, "two worker processes", STARTUP_SECONDS)
        workers = [p for p in parent.children() if "--multiprocessing-fork" in p.cmdline()]

        async def storing() -> bool:
            return await scalar(db, "SELECT count(*) FROM events") > 0

        await wait_for(storing, "the first stored batch", STARTUP_SECONDS)
        importer.send_signal(signal.SIGKILL)  # as `kill -9` does: the importer gets no chance to clean up
        importer.wait(timeout=10)

        deadline = time.monotonic() + 5
        while any(alive(w) for w in workers) and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        assert [w.pid for w in workers if alive(w)] == [], "worker processes outlived the killed importer"
        # nothing of the import is left (multiprocessing's resource tracker leaves once no one holds its pipe)
        while session_processes(importer.pid) and time.monotonic() < deadline + 5:
            await asyncio.sleep(0.05)
        assert session_processes(importer.pid) == []

        stored = await scalar(db, "SELECT count(*) FROM events")
        await asyncio.sleep(2)
        assert await scalar(db, "SELECT count(*) FROM events") == stored  # nobody imports on
        assert 0 < stored < LINES  # it was stopped mid-way, what its batches committed stays stored
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(importer.pid, signal.SIGKILL)
        if importer.stderr:
            importer.stderr.close()
