"""Migrations stop on a PostgreSQL too old for the engine's SQL, with a line saying what to do."""

from __future__ import annotations

import pytest

from togai_engine.store.migrate import MIN_SERVER_VERSION, require_server_version


async def test_this_server_is_new_enough_and_an_older_one_is_refused(db) -> None:
    async with db.unit_of_work() as session:
        connection = await session.connection()
        found = int((await connection.exec_driver_sql("SHOW server_version_num")).scalar())
        assert found >= MIN_SERVER_VERSION
        await connection.run_sync(require_server_version)  # passes on this server
        newer = (found // 10000 + 1) * 10000  # pretend the engine needed the next major version
        with pytest.raises(RuntimeError, match=rf"PostgreSQL {newer // 10000} or newer is needed; the server at "
                                               r"this URL runs \d+.*leave TOGAI_DATABASE_URL unset"):
            await connection.run_sync(lambda sync: require_server_version(sync, newer))
