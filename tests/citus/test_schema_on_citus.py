"""The schema on a Citus cluster: migrations, `db distribute` (twice: the second finds nothing to do),
`db check` naming a misplaced table, and a later `db upgrade` keeping the tables where they belong."""

from __future__ import annotations

import asyncio
import os
import secrets
import subprocess
import sys
from pathlib import Path

import pytest

from cluster import CITUS_URL, NO_CLUSTER, SHARDS, citus_url, empty_citus_url
from conftest import pg_connection
from togai_engine.store import distribution, migrate
from togai_engine.store.citus_cluster import create_database, drop_database

CLI = Path(sys.executable).parent / "togai-engine"


def togai(url: str, *args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TOGAI_")} | {"TOGAI_DATABASE_URL": url}
    return subprocess.run([str(CLI), *args], env=env, capture_output=True, text=True, timeout=timeout)


async def placed(url: str) -> dict[str, tuple[str, str, int]]:
    async with pg_connection(url) as conn:
        rows = await conn.fetch("SELECT table_name::text, citus_table_type, distribution_column, shard_count "
                                "FROM citus_tables")
    return {r[0]: (r[1], r[2], r[3]) for r in rows}


async def sql(url: str, statement: str) -> None:
    async with pg_connection(url) as conn:
        await conn.execute(statement)


def test_db_distribute_places_every_table_and_a_second_run_does_nothing(empty_citus_url: str) -> None:
    url = empty_citus_url
    upgraded = togai(url, "db", "upgrade")
    assert upgraded.returncode == 0, upgraded.stderr
    check = togai(url, "db", "check")  # migrated but not distributed: every table is local
    assert check.returncode == 1
    assert "events is a local table; it should be distributed by account_id" in check.stderr
    assert "accounts is a local table; it should be a reference table" in check.stderr
    assert "run `togai-engine db distribute`" in check.stderr

    first = togai(url, "db", "distribute", "--shard-count", str(SHARDS))
    assert first.returncode == 0, first.stderr
    assert "events: distributed by account_id" in first.stdout and "accounts: reference table" in first.stdout
    second = togai(url, "db", "distribute")
    assert second.returncode == 0, second.stderr
    assert second.stdout.strip() == "every table was already placed; nothing to do"

    tables = asyncio.run(placed(url))
    for table in distribution.DISTRIBUTED:
        assert tables[table] == ("distributed", "account_id", SHARDS), table
    for table in distribution.REFERENCE:
        assert tables[table][0] == "reference", table
    assert tables["usage_totals"] == ("distributed", "meter_id", SHARDS)
    # the time partitions of events are distributed with it
    assert any(name.startswith("events_p") and kind == ("distributed", "account_id", SHARDS)
               for name, kind in tables.items())
    for local in distribution.LOCAL:
        assert local not in tables
    check = togai(url, "db", "check")
    assert check.returncode == 0, check.stderr


def test_db_check_names_a_misplaced_table_and_db_upgrade_places_it_again(citus_url: str) -> None:
    asyncio.run(sql(citus_url, "SELECT undistribute_table('usage_totals')"))
    with pytest.raises(RuntimeError, match="usage_totals is a local table; it should be distributed by meter_id"):
        migrate.check(citus_url)
    # what a migration leaves local (a table it creates) is placed by the upgrade that runs it: `db check`
    # upgrades first, so it finds everything in place
    check = togai(citus_url, "db", "check")
    assert check.returncode == 0, check.stderr
    assert asyncio.run(placed(citus_url))["usage_totals"] == ("distributed", "meter_id", SHARDS)


def test_a_new_month_partition_made_at_ingest_time_is_distributed(citus_url: str) -> None:
    from datetime import UTC, datetime

    from togai_engine.store.database import Database
    from togai_engine.store.partitions import ensure_range

    async def make() -> None:
        db = Database(citus_url)
        try:
            await ensure_range(db.engine, datetime(2031, 5, 1, tzinfo=UTC), datetime(2031, 6, 1, tzinfo=UTC))
        finally:
            await db.dispose()

    asyncio.run(make())
    assert asyncio.run(placed(citus_url))["events_p203105"][:2] == ("distributed", "account_id")


def worker_url(url: str) -> str:
    """The same database on a worker node (from the coordinator's pg_dist_node)."""
    from sqlalchemy.engine import make_url

    async def first_worker() -> tuple[str, int]:
        async with pg_connection(url) as conn:
            row = await conn.fetchrow("SELECT nodename, nodeport FROM pg_dist_node WHERE groupid <> 0 "
                                      "AND noderole = 'primary' ORDER BY nodeid LIMIT 1")
        return row[0], row[1]

    host, port = asyncio.run(first_worker())
    return make_url(url).set(host=host, port=port).render_as_string(hide_password=False)


def test_the_engine_refuses_a_worker_node(citus_url: str) -> None:
    # A worker has the distributed and reference tables (Citus syncs their metadata), but not the coordinator's
    # own tables, and the engine's advisory locks would be the worker's: every entry point refuses it.
    url = worker_url(citus_url)
    for command_line in (("db", "upgrade"), ("db", "check"), ("db", "distribute"), ("bill",)):
        refused = togai(url, *command_line)
        assert refused.returncode != 0, command_line
        assert "this server is a Citus worker node, not the coordinator" in refused.stderr, (command_line, refused.stderr)
        assert "must connect to the coordinator" in refused.stderr
    with pytest.raises(RuntimeError, match="Citus worker node"):
        migrate.upgrade(url)


def test_downgrading_a_distributed_database_is_refused_before_any_ddl(citus_url: str) -> None:
    from alembic import command

    # the newest revision's downgrade refuses first (0023: before its DDL, whose locks 0020's check would wait for)
    with pytest.raises(RuntimeError, match=r"downgrading a distributed database below 0023 is not supported .* "
                                           r"nothing was changed"):
        command.downgrade(migrate.alembic_config(citus_url), "0019")
    # nothing changed: still at head, every table in its place
    migrate.check(citus_url)
    assert togai(citus_url, "db", "check").returncode == 0


def test_a_database_distributed_at_an_older_revision_upgrades_through_ddl_migrations() -> None:
    """Distributed at 0021, then `db upgrade` to head: 0022 alters distributed and reference tables and backfills a
    distributed table from reference ones, and the upgrade places its tables in the same transaction. Reading the
    placements from the citus_tables view there waited forever for the locks of 0022's own DDL (its shard sizes
    are read over other connections): the timeout turns such a wait into a failure."""
    if not CITUS_URL:
        pytest.skip(NO_CLUSTER)
    url = asyncio.run(create_database(CITUS_URL, f"togai_citus_old_{os.getpid()}_{secrets.token_hex(3)}"))
    try:
        migrate.upgrade(url, "0021")
        migrate.distribute(url, SHARDS)
        upgraded = togai(url, "db", "upgrade", timeout=120)
        assert upgraded.returncode == 0, upgraded.stderr
        migrate.check(url)  # at head, every table in its place
        tables = asyncio.run(placed(url))
        assert tables["credit_grants"] == ("distributed", "account_id", SHARDS)
        assert tables["credit_note_lines"][0] == "reference"
    finally:
        asyncio.run(drop_database(CITUS_URL, url.rsplit("/", 1)[1]))
