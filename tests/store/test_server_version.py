"""Migrations stop on a PostgreSQL too old for the engine's SQL, with a line saying what to do."""

from __future__ import annotations

import asyncio
import re

import pytest

from conftest import pg_connection
from togai_engine.store import migrate
from togai_engine.store.migrate import MIN_SERVER_VERSION, require_server_version


def refusal(minimum: int, version: str) -> str:
    """The whole message, as a regular expression matching nothing more."""
    return "^" + re.escape(
        f"PostgreSQL {minimum // 10000} or newer is needed; the server at this URL runs {version}. "
        "Upgrade it, or leave TOGAI_DATABASE_URL unset to use the embedded PostgreSQL") + "$"


async def test_this_server_is_new_enough_and_an_older_one_is_refused(db) -> None:
    async with db.unit_of_work() as session:
        connection = await session.connection()
        found = int((await connection.exec_driver_sql("SHOW server_version_num")).scalar())
        version = (await connection.exec_driver_sql("SHOW server_version")).scalar()
        assert found >= MIN_SERVER_VERSION
        await connection.run_sync(require_server_version)  # passes on this server
        newer = (found // 10000 + 1) * 10000  # pretend the engine needed the next major version
        with pytest.raises(RuntimeError, match=rf"PostgreSQL {newer // 10000} or newer is needed; the server at "
                                               r"this URL runs \d+.*leave TOGAI_DATABASE_URL unset"):
            await connection.run_sync(lambda sync: require_server_version(sync, newer))
        with pytest.raises(RuntimeError, match=refusal(newer, version)):
            await connection.run_sync(lambda sync: require_server_version(sync, newer))
        # the boundary: exactly the server's version passes, one more is refused
        await connection.run_sync(lambda sync: require_server_version(sync, found))
        with pytest.raises(RuntimeError, match=refusal(found + 1, version)):
            await connection.run_sync(lambda sync: require_server_version(sync, found + 1))


async def _catalog(url: str) -> tuple[int, str, list[str]]:
    async with pg_connection(url) as conn:
        found = int(await conn.fetchval("SHOW server_version_num"))
        version = await conn.fetchval("SHOW server_version")
        tables = [r[0] for r in await conn.fetch(
            "SELECT tablename FROM pg_tables WHERE schemaname NOT IN ('pg_catalog', 'information_schema') "
            "ORDER BY 1")]
        return found, version, tables


def test_a_migration_on_a_too_old_server_stops_before_changing_anything(scratch_url, monkeypatch) -> None:
    found, version, tables = asyncio.run(_catalog(scratch_url))
    assert tables == []
    newer = (found // 10000 + 1) * 10000  # the next major version: this server is now too old
    checked: list[int] = []

    def stricter(connection, minimum: int = MIN_SERVER_VERSION) -> None:
        checked.append(minimum)
        require_server_version(connection, newer)

    # migrations/env.py imports require_server_version from this module on every run
    monkeypatch.setattr(migrate, "require_server_version", stricter)
    with pytest.raises(RuntimeError, match=refusal(newer, version)):
        migrate.upgrade(scratch_url)
    assert checked == [MIN_SERVER_VERSION]  # env.py ran the check, with the engine's own minimum
    assert asyncio.run(_catalog(scratch_url))[2] == []  # nothing migrated: no alembic_version, no table

    monkeypatch.undo()  # the real minimum: the same database then migrates
    migrate.upgrade(scratch_url)
    assert "alembic_version" in asyncio.run(_catalog(scratch_url))[2]
    migrate.check(scratch_url)
