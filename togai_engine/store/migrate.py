"""Run the Alembic migrations programmatically (the only way the schema changes)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config

MIGRATIONS_DIR = Path(__file__).resolve().parent.parent / "migrations"
MIN_SERVER_VERSION = 140000  # PostgreSQL 14: date_bin (metric buckets)


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
    command.upgrade(alembic_config(url), revision)


def check(url: str) -> None:
    """Raises if the models and the migrated schema differ (alembic check)."""
    command.check(alembic_config(url))
