"""The tables the migrations build are the tables the models describe (alembic autogenerate finds no
difference), so a model edited without a migration, or the reverse, fails here and not in production."""

from __future__ import annotations

import re
from typing import Any

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy.ext.asyncio import create_async_engine

from togai_engine.tables import metadata

# Monthly and yearly partitions of `events` and `event_ids` are made at run time (store/partitions.py),
# not described by the models.
PARTITION = re.compile(r"^(events|event_ids)_p\d{4,6}$|^(events|event_ids)_default$")


def _table_of(difference: Any) -> str | None:
    kind = difference[0] if isinstance(difference, tuple) else None
    if kind in ("remove_table",):
        return difference[1].name
    if kind in ("remove_index",):
        return difference[1].table.name
    return None


async def test_the_migrated_schema_is_the_models_schema(database_url: str) -> None:
    engine = create_async_engine(database_url)
    try:
        async with engine.connect() as conn:
            differences = await conn.run_sync(
                lambda sync: compare_metadata(MigrationContext.configure(sync), metadata))
    finally:
        await engine.dispose()
    unexplained = [d for d in differences if not PARTITION.match(_table_of(d) or "")]
    assert unexplained == []
