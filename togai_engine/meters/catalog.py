"""Compiled meters, cached per process.

Ingestion asks for the meters of a schema together with the schema's `meters_tag`, read after
taking the schema's shared lock; creating a meter takes that lock exclusive and sets a new random
tag (see meters.sql). So a cached entry is valid exactly while its tag is current, in any process, and
no batch can run with a stale meter list.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from togai_engine.meters.compiler import compile_meter, value_attributes
from togai_engine.meters.models import UsageMeterRow
from togai_engine.meters.sql import MeterSql
from togai_engine.store.arrays import any_of

_MAX_ENTRIES = 4096
_by_schema: dict[tuple[str, str], tuple[MeterSql, ...]] = {}
# Keyed by everything a meter compiles from: one process may serve several databases (scenario files, the
# pytest plugin's sandboxes), in which meters of the same id, made at the same sandbox time, can differ.
_by_meter: dict[tuple[str, str, str, str, str], MeterSql] = {}


def compile_stored(meter_id: str, schema_name: str, aggregation: str, computations: list[dict[str, Any]],
                   negative_values: str = "ALLOW") -> MeterSql:
    """A stored meter's SQL (it compiled when it was created, so this does not fail)."""
    return MeterSql(meter_id, schema_name, aggregation, compile_meter(aggregation, computations), negative_values,
                    value_attributes(computations) if negative_values == "REJECT" else ())


def _remember(cache: dict[Any, Any], key: Any, value: Any) -> None:
    if len(cache) >= _MAX_ENTRIES:
        cache.clear()
    cache[key] = value


async def meters_of_schemas(conn: Any, tags: dict[str, str | None]) -> dict[str, tuple[MeterSql, ...]]:
    """The meters of each schema, given the schemas' current `meters_tag` (None = no meters).

    `conn` is the asyncpg connection of the caller's transaction.
    """
    result: dict[str, tuple[MeterSql, ...]] = {}
    missing: list[str] = []
    for schema, tag in tags.items():
        if tag is None:
            result[schema] = ()
        elif (schema, tag) in _by_schema:
            result[schema] = _by_schema[(schema, tag)]
        else:
            missing.append(schema)
    if missing:
        rows = await conn.fetch(
            "SELECT id, event_schema_name, aggregation, computations::text AS computations, negative_values "
            "FROM usage_meters "
            "WHERE event_schema_name = ANY($1::text[]) AND status = 'ACTIVE' ORDER BY id",
            missing,
        )
        found: dict[str, list[MeterSql]] = {schema: [] for schema in missing}
        for row in rows:
            found[row["event_schema_name"]].append(
                compile_stored(row["id"], row["event_schema_name"], row["aggregation"], json.loads(row["computations"]),
                               row["negative_values"])
            )
        for schema in missing:
            meters = tuple(found[schema])
            _remember(_by_schema, (schema, tags[schema]), meters)
            result[schema] = meters
    return result


def compiled(rows: Iterable[Any]) -> list[MeterSql]:
    """MeterSql of UsageMeterRow-like rows (id, event_schema_name, aggregation, computations,
    negative_values), cached per definition. `computations` may be the jsonb's text as PostgreSQL prints it
    (its keys in a fixed order): the key then needs no JSON work, and the text is decoded only on a miss."""
    meters = []
    for row in rows:
        given = row.computations
        text = given if isinstance(given, str) else json.dumps(given, sort_keys=True)
        key = (row.id, row.event_schema_name, row.aggregation, text, row.negative_values)
        meter = _by_meter.get(key)
        if meter is None:
            meter = compile_stored(row.id, row.event_schema_name, row.aggregation,
                                   json.loads(text) if isinstance(given, str) else given, row.negative_values)
            _remember(_by_meter, key, meter)
        meters.append(meter)
    return meters


async def meters_by_ids(session: AsyncSession, meter_ids: Sequence[str] | None) -> list[MeterSql]:
    """Compiled meters (all when meter_ids is None), ordered by id."""
    stmt = select(UsageMeterRow).order_by(UsageMeterRow.id)
    if meter_ids is not None:
        stmt = stmt.where(any_of(UsageMeterRow.id, meter_ids))
    return compiled(await session.scalars(stmt))


def by_schema(meters: Sequence[MeterSql]) -> dict[str, list[MeterSql]]:
    grouped: dict[str, list[MeterSql]] = {}
    for meter in meters:
        grouped.setdefault(meter.schema_name, []).append(meter)
    return grouped
