"""Alembic environment: async engine, the engine's metadata, partitions left out of drift checks, and on a
database distributed over Citus the placement of tables a migration created (store/distribution.py)."""

from __future__ import annotations

import asyncio
from typing import Any

from alembic import context
from sqlalchemy.ext.asyncio import create_async_engine

from togai_engine.store import distribution
from togai_engine.store.migrate import require_server_version
from togai_engine.store.partitions import PARTITION_NAME
from togai_engine.tables import metadata

config = context.config


def include_object(obj: Any, name: str | None, type_: str, reflected: bool, compare_to: Any) -> bool:
    # Time partitions of the events table are created by the engine ahead of time, not by models.
    return not (type_ == "table" and reflected and compare_to is None and name and PARTITION_NAME.match(name))


def include_object_on_citus(obj: Any, name: str | None, type_: str, reflected: bool, compare_to: Any) -> bool:
    # `db distribute` drops the foreign keys Citus cannot hold.
    if type_ == "foreign_key_constraint" and not reflected and name in distribution.DROPPED_ON_CITUS:
        return False
    return include_object(obj, name, type_, reflected, compare_to)


def run_sync(connection: Any) -> None:
    require_server_version(connection)
    distribution.refuse_worker(connection)
    context.configure(
        connection=connection,
        target_metadata=metadata,
        include_object=include_object_on_citus if distribution.citus_present(connection) else include_object,
        compare_type=True,
    )
    with context.begin_transaction():
        if distribution.is_distributed(connection):
            # one transaction runs every pending revision: once one's DDL or backfill has run over several
            # connections to a worker, Citus refuses a later one's write to a table with a key to a reference table
            # (0023's ALTER of plan_associations after 0022's) unless the whole transaction uses one per node
            connection.exec_driver_sql(distribution.ONE_CONNECTION_PER_NODE)
        context.run_migrations()
        if config.attributes.get("keep_distributed") and distribution.is_distributed(connection):
            distribution.distribute(connection)


async def run_async() -> None:
    engine = create_async_engine(config.get_main_option("sqlalchemy.url"))
    async with engine.connect() as connection:
        await connection.run_sync(run_sync)
        await connection.commit()
    await engine.dispose()


def run() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:
        run_sync(connection)
    else:
        asyncio.run(run_async())


run()
