"""Every write made through the `togai-engine` CLI is audited like a tool call (actor "cli"), in the same
transaction as the write; a write that rolls back leaves no audit row. Run as a user runs the CLI."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text

from helpers import call, scalar
from togai_engine.events.importer import ImportFailed, _run_parallel, split_lines

BIN = Path(sys.executable).parent / "togai-engine"


def run(database_url: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TOGAI_")} | {"TOGAI_DATABASE_URL": database_url}
    return subprocess.run([str(BIN), *args], env=env, capture_output=True, text=True, timeout=300)


async def cli_audit_rows(db: Any) -> list[tuple[str, dict[str, Any], list[str]]]:
    """(action, arguments, changed ids) of every record of actor "cli", oldest first."""
    async with db.unit_of_work() as session:
        rows = await session.execute(text(
            "SELECT tool, arguments, changed_ids FROM audit_log WHERE actor = 'cli' ORDER BY id"))
        return [(tool, arguments, list(changed)) for tool, arguments, changed in rows]


def meter(meter_id: str, schema: str) -> dict[str, Any]:
    return {"id": meter_id, "name": meter_id, "eventSchemaName": schema, "aggregation": "SUM",
            "computations": [{"computation": "units"}]}


def plan(name: str, meter_id: str, rate: str) -> dict[str, Any]:
    return {"name": name, "pricingCycleConfig": {"interval": "MONTHLY", "startOffset": {"dayOffset": "1"},
                                                 "gracePeriod": 1},
            "supportedCurrencies": ["USD"],
            "rateCards": {"usageRateCards": [{
                "usageMeterId": meter_id, "displayName": meter_id,
                "ratePlan": {"pricingModel": "TIERED", "slabs": [{"order": 1, "startAfter": 0, "priceType": "PER_UNIT"}]},
                "rateValues": [{"currency": "USD", "slabRates": [{"order": 1, "rate": rate}]}]}]}}


def pricing_file(path: Path, meters: list[dict[str, Any]], plans: list[dict[str, Any]]) -> Path:
    path.write_text(json.dumps({"meters": meters, "plans": plans}))
    return path


async def plan_id(db: Any, name: str) -> str:
    return str(await scalar(db, f"SELECT id FROM price_plans WHERE name = '{name}'"))


async def test_every_cli_write_is_audited_with_its_arguments_and_changed_ids(client, db, database_url, tmp_path):
    await call(client, "create_customer", id="c", name="C", account={"id": "acme", "name": "Acme"})

    created = run(database_url, "keys", "create", "--name", "ci robot", "--scopes", "events:write,customers:read")
    assert created.returncode == 0, created.stderr
    secret = created.stdout.strip()
    key_id = created.stderr.split("key id ", 1)[1].split(",", 1)[0]
    revoked = run(database_url, "keys", "revoke", key_id)
    assert revoked.returncode == 0 and f"revoked {key_id}" in revoked.stdout, revoked.stderr

    first = pricing_file(tmp_path / "first.json", [meter("tokens", "llm")], [plan("Basic", "tokens", "0.5")])
    assert run(database_url, "plans", "apply", str(first)).returncode == 0
    # tokens and Basic exist already (same content): only calls and Pro are created by the second apply
    second = pricing_file(tmp_path / "second.json", [meter("tokens", "llm"), meter("calls", "api")],
                          [plan("Basic", "tokens", "0.5"), plan("Pro", "calls", "0.1")])
    applied = run(database_url, "plans", "apply", str(second))
    assert applied.returncode == 0, applied.stdout + applied.stderr

    events = [{"id": f"e{i}", "schemaName": "llm", "timestamp": "2026-01-05T00:00:00Z", "accountId": "acme",
               "attributes": {"units": str(i)}} for i in range(2)]
    lines = [json.dumps(e) for e in events]
    lines.append(lines[0])  # a duplicate
    lines.append(json.dumps(events[0] | {"id": "x", "accountId": "nobody"}))  # rejected: unknown account
    history = tmp_path / "history.jsonl"
    history.write_text("\n".join(lines) + "\n")
    imported = run(database_url, "import", "events", str(history), "--no-progress", "--allow-rejected")
    assert imported.returncode == 0, imported.stderr
    assert "read 4: accepted 0, duplicates 1" in imported.stdout

    billed = run(database_url, "bill", "--as-of", "2026-02-02T00:00:00Z")
    assert billed.returncode == 0, billed.stderr

    basic, pro = await plan_id(db, "Basic"), await plan_id(db, "Pro")
    assert await cli_audit_rows(db) == [
        ("keys create", {"name": "ci robot", "scopes": ["events:write", "customers:read"]}, [key_id]),
        ("keys revoke", {"keyId": key_id}, [key_id]),
        ("plans apply", {"file": str(first)}, ["tokens", basic]),
        ("plans apply", {"file": str(second)}, ["calls", pro]),
        ("import events", {"file": str(history), "read": 4, "accepted": 0, "duplicates": 1, "rejected": 1,
                           "notBilled": 0, "notBilledNoPlan": 2, "acceptedLate": 0}, []),
        ("bill", {"asOf": "2026-02-02T00:00:00+00:00"}, []),
    ]
    # the key's secret (printed once) is nowhere in the log
    secret_part = secret.rsplit("_", 1)[1]
    assert await scalar(db, f"SELECT count(*) FROM audit_log WHERE arguments::text LIKE '%{secret_part}%'") == 0

    shown = run(database_url, "audit", "--actor", "cli")
    assert shown.returncode == 0, shown.stderr
    printed = [line.split("\t")[1:] for line in shown.stdout.splitlines()]  # without the timestamp
    assert printed[0] == ["cli", "bill", "", '{"asOf": "2026-02-02T00:00:00+00:00"}']
    assert printed[-1] == ["cli", "keys create", key_id, '{"name": "ci robot", "scopes": ["events:write", '
                                                         '"customers:read"]}']
    assert [p[1] for p in printed] == ["bill", "import events", "plans apply", "plans apply", "keys revoke",
                                       "keys create"]


async def test_a_write_that_fails_leaves_no_audit_row_claiming_success(client, db, database_url, tmp_path):
    unknown = run(database_url, "keys", "revoke", "nosuchkey")
    assert unknown.returncode == 1
    assert unknown.stderr.strip().endswith("API key 'nosuchkey' does not exist; `togai-engine keys list` shows the ids")
    bad_scope = run(database_url, "keys", "create", "--name", "x", "--scopes", "events:writ")
    assert bad_scope.returncode == 1 and "unknown scope 'events:writ'" in bad_scope.stderr
    assert await scalar(db, "SELECT count(*) FROM api_keys") == 0

    # an invalid plan after a valid meter: the whole apply rolls back, the meter and the audit row with it
    invalid = pricing_file(tmp_path / "invalid.json", [meter("tokens", "llm")],
                           [plan("Broken", "no_such_meter", "0.5")])
    rolled_back = run(database_url, "plans", "apply", str(invalid))
    assert rolled_back.returncode == 1 and "no_such_meter" in rolled_back.stderr, rolled_back.stderr
    assert await scalar(db, "SELECT count(*) FROM usage_meters") == 0
    assert await cli_audit_rows(db) == []

    # a plan that differs from the stored one of its name is left as stored: a run that only found that
    # changed nothing and failed, so it leaves no row
    stored = pricing_file(tmp_path / "stored.json", [meter("tokens", "llm")], [plan("Basic", "tokens", "0.5")])
    assert run(database_url, "plans", "apply", str(stored)).returncode == 0
    edited = pricing_file(tmp_path / "edited.json", [meter("tokens", "llm")], [plan("Basic", "tokens", "0.7")])
    refused = run(database_url, "plans", "apply", str(edited))
    assert refused.returncode == 1 and "differs" in refused.stdout, refused.stdout + refused.stderr
    basic = await plan_id(db, "Basic")
    assert await cli_audit_rows(db) == [("plans apply", {"file": str(stored)}, ["tokens", basic])]
    # next to a new plan, which is stored: the row names only that one
    differs = pricing_file(tmp_path / "differs.json", [meter("tokens", "llm")],
                           [plan("Basic", "tokens", "0.7"), plan("Pro", "tokens", "0.1")])
    partly = run(database_url, "plans", "apply", str(differs))
    assert partly.returncode == 1 and "differs" in partly.stdout, partly.stdout + partly.stderr
    pro = await plan_id(db, "Pro")
    assert await cli_audit_rows(db) == [
        ("plans apply", {"file": str(stored)}, ["tokens", basic]),
        ("plans apply", {"file": str(differs)}, [pro]),  # not Basic: it was left as stored
    ]


@asynccontextmanager
async def database_refuses_event_boom(db: Any) -> AsyncIterator[None]:
    """While open, storing an event of id "boom" fails its batch (a non-retryable database error)."""
    async with db.unit_of_work() as session:
        await session.execute(text(
            "CREATE FUNCTION test_refuse_boom() RETURNS trigger LANGUAGE plpgsql AS "
            "$$ BEGIN RAISE EXCEPTION 'refused by the test'; END $$"))
        await session.execute(text(
            "CREATE TRIGGER test_refuse_boom AFTER INSERT ON event_ids FOR EACH ROW "
            "WHEN (NEW.id = 'boom') EXECUTE FUNCTION test_refuse_boom()"))
    try:
        yield
    finally:
        async with db.unit_of_work() as session:
            await session.execute(text("DROP TRIGGER test_refuse_boom ON event_ids"))
            await session.execute(text("DROP FUNCTION test_refuse_boom()"))


def event_lines(ids: list[str]) -> str:
    return "".join(json.dumps({"id": event_id, "schemaName": "llm", "timestamp": "2026-01-05T00:00:00Z",
                               "accountId": "acme", "attributes": {"units": "1"}}) + "\n" for event_id in ids)


async def test_an_import_that_stops_is_audited_with_how_far_it_got(client, db, database_url, tmp_path):
    await call(client, "create_customer", id="c", name="C", account={"id": "acme", "name": "Acme"})
    history = tmp_path / "history.jsonl"
    history.write_text(event_lines(["e0", "e1", "boom"]))
    # batches of one event: the last one fails after the two before it have committed
    async with database_refuses_event_boom(db):
        stopped = run(database_url, "import", "events", str(history), "--no-progress", "--batch-size", "1")
    assert stopped.returncode == 1
    assert "import stopped" in stopped.stderr and "refused by the test" in stopped.stderr, stopped.stderr
    assert await scalar(db, "SELECT count(*) FROM events") == 2
    [(action, arguments, changed)] = await cli_audit_rows(db)
    assert (action, changed) == ("import events", [])
    reason = arguments.pop("stopped")
    assert "refused by the test" in reason and "\n" not in reason
    # lines read: all three; the two settled batches' events are stored, not billed (acme has no plan)
    assert arguments == {"file": str(history), "read": 3, "accepted": 0, "duplicates": 0, "rejected": 0,
                         "notBilled": 0, "notBilledNoPlan": 2, "acceptedLate": 0}


async def test_a_stopped_parallel_import_sums_what_its_parts_settled(client, db, database_url, tmp_path):
    await call(client, "create_customer", id="c", name="C", account={"id": "acme", "name": "Acme"})
    history = tmp_path / "history.jsonl"
    history.write_text(event_lines([f"e{i}" for i in range(39)] + ["boom"]))
    parts = split_lines(history, 2, min_part_bytes=100)
    assert len(parts) == 2  # "boom", the last line, is in the second part
    async with database_refuses_event_boom(db):
        with pytest.raises(ImportFailed, match=r"^part 2 .*refused by the test") as failed:
            await asyncio.to_thread(_run_parallel, database_url, history, parts, tmp_path / "r.jsonl", 1,
                                    lambda _: None)
    summary = failed.value.summary
    assert summary is not None
    # the first part's 20-odd events and the second's up to "boom": 39 stored of 40 read
    assert (summary.read, summary.not_billed_no_plan, summary.rejected) == (40, 39, 0)
    assert await scalar(db, "SELECT count(*) FROM events") == 39
