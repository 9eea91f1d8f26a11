"""Run the Alembic migrations programmatically (the only way the schema changes), and place the tables on a
Citus cluster (store/distribution.py)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from alembic import command
from alembic.config import Config
from sqlalchemy.ext.asyncio import create_async_engine

from togai_engine.store import distribution

MIGRATIONS_DIR = Path(__file__).resolve().parent.parent / "migrations"
MIN_SERVER_VERSION = 140000  # PostgreSQL 14: date_bin (metric buckets)
T = TypeVar("T")


def require_server_version(connection: Any, minimum: int = MIN_SERVER_VERSION) -> None:
    """Stops a migration on a server too old for the engine's SQL, saying what to do (a sync connection)."""
    if int(connection.exec_driver_sql("SHOW server_version_num").scalar()) < minimum:
        version = connection.exec_driver_sql("SHOW server_version").scalar()
        raise RuntimeError(f"PostgreSQL {minimum // 10000} or newer is needed; the server at this URL runs {version}. "
                           "Upgrade it, or leave TOGAI_DATABASE_URL unset to use the embedded PostgreSQL")


def alembic_config(url: str) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return cfg


def upgrade(url: str, revision: str = "head") -> None:
    """Migrates; on a database already distributed over Citus, the tables a migration created are placed
    in the same transaction (env.py), so a newer schema stays distributed."""
    cfg = alembic_config(url)
    cfg.attributes["keep_distributed"] = True
    command.upgrade(cfg, revision)


def check(url: str) -> None:
    """Raises if the models and the migrated schema differ (alembic check), or, on Citus, if a table is
    not where it should be."""
    command.check(alembic_config(url))
    misplaced = _in_transaction(url, distribution.problems)
    if misplaced:
        raise RuntimeError("tables are not placed for Citus:\n  " + "\n  ".join(misplaced))


def distribute(url: str, shard_count: int | None = None) -> list[str]:
    """Places every table on the Citus cluster this URL's coordinator leads (see store/distribution.py)."""
    return _in_transaction(url, lambda conn: distribution.distribute(conn, shard_count))


def _in_transaction(url: str, work: Callable[[Any], T]) -> T:
    async def run() -> T:
        engine = create_async_engine(url)
        try:
            async with engine.begin() as conn:
                return await conn.run_sync(work)
        finally:
            await engine.dispose()

    return asyncio.run(run())
