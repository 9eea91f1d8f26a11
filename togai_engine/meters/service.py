"""Usage meter operations. Services take the session first and never commit."""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from togai_engine.common.ids import new_id
from togai_engine.common.json_logic import json_logic_text, normalize_expression
from togai_engine.common.pagination import fetch_page
from togai_engine.common.schemas import Page
from togai_engine.common.validation import check_id
from togai_engine.errors import Conflict, InvalidInput, NotFound
from togai_engine.meters.catalog import compile_stored
from togai_engine.meters.compiler import AGGREGATIONS, compile_meter
from togai_engine.meters.models import MAX_SCHEMA_NAME_CHARS, EventSchemaRow, UsageMeterRow
from togai_engine.meters.rollups import backfill_meter
from togai_engine.meters.schemas import Computation, UsageMeter, UsageMeterCreate
from togai_engine.meters.sql import NEGATIVE_VALUES, MeterSql, lock_schemas_sql
from togai_engine.store.database import raw_connection

NAME_PATTERN = re.compile(r"^[\sA-Za-z0-9_-]{1,50}$")


def _to_schema(row: UsageMeterRow) -> UsageMeter:
    return UsageMeter(
        id=row.id,
        name=row.name,
        billableName=row.billable_name,
        displayName=row.billable_name or row.name,
        description=row.description,
        type=row.type,
        status=row.status,
        aggregation=row.aggregation,  # type: ignore[arg-type]
        computations=[Computation(**c) for c in row.computations],
        eventSchemaName=row.event_schema_name,
        negativeValues=row.negative_values,  # type: ignore[arg-type]
        createdAt=row.created_at,
        updatedAt=row.updated_at,
    )


def _stored_expression(raw: Any, field: str, *, allow_bare_name: bool) -> str | None:
    """The text stored for a matcher/computation: a string as given, an object as JSON text."""
    if raw is None:
        return None
    if isinstance(raw, str):
        return raw.strip() or None
    if isinstance(raw, bool):
        raise InvalidInput(field, "must be a JSON Logic expression, a number or an attribute name, not a boolean")
    return json_logic_text(normalize_expression(raw, field=field, allow_bare_name=allow_bare_name))


def _clean(data: UsageMeterCreate) -> tuple[str, str, str, list[dict[str, Any]], MeterSql, str]:
    name = data.name.strip()
    if not NAME_PATTERN.match(name):
        raise InvalidInput("name", f"{data.name!r} must be 1-50 letters, digits, spaces, '_' or '-'")
    schema_name = data.eventSchemaName
    if not 1 <= len(schema_name) <= MAX_SCHEMA_NAME_CHARS or "\x00" in schema_name:
        raise InvalidInput(
            "eventSchemaName",
            f"must be 1-{MAX_SCHEMA_NAME_CHARS} characters: the schemaName "
            "of the events to meter (list_event_schemas shows those seen)",
        )
    aggregation = data.aggregation.strip().upper()
    if aggregation not in AGGREGATIONS:
        raise InvalidInput(
            "aggregation", f"{data.aggregation!r} is not supported; use one of: {', '.join(AGGREGATIONS)}"
        )
    negative_values = data.negativeValues.strip().upper()
    if negative_values not in NEGATIVE_VALUES:
        raise InvalidInput("negativeValues", f"{data.negativeValues!r} is not supported; use ALLOW (meter "
                                             "negative values, e.g. corrections) or REJECT (reject events with a "
                                             "negative value)")
    for field, value in (("billableName", data.billableName), ("description", data.description)):
        if value is not None and "\x00" in value:
            raise InvalidInput(field, "contains a NUL character; remove it")
    computations = []
    for index, entry in enumerate(data.computations):
        field = f"computations[{index}]"
        if entry.id is not None and "\x00" in entry.id:
            raise InvalidInput(f"{field}.id", "contains a NUL character; remove it")
        computations.append(
            {
                "id": entry.id,
                "matcher": _stored_expression(entry.matcher, f"{field}.matcher", allow_bare_name=False),
                "computation": _stored_expression(entry.computation, f"{field}.computation", allow_bare_name=True),
                "order": entry.order,
            }
        )
    compiled = compile_meter(aggregation, computations)  # InvalidInput names computations[i].matcher etc.
    return (name, schema_name, aggregation, computations, MeterSql("", schema_name, aggregation, compiled),
            negative_values)


async def create_usage_meter(session: AsyncSession, data: UsageMeterCreate, now: datetime) -> tuple[UsageMeter, bool]:
    """Creates an ACTIVE meter and backfills its rollups from the events already stored.

    Returns (meter, created). The same name with the same definition returns the existing meter
    (created=False); the same name with another definition is a Conflict.
    """
    name, schema_name, aggregation, computations, compiled, negative_values = _clean(data)
    # The schema's exclusive lock: batches of this schema have committed (or wait), so the backfill
    # below sees every event the new meter must count, and later batches see the meter.
    await (await raw_connection(session)).fetchval(lock_schemas_sql(exclusive=True), [schema_name])
    await session.execute(
        insert(EventSchemaRow)
        .values(name=schema_name, created_at=now, updated_at=now)
        .on_conflict_do_nothing(index_elements=["name"])
    )
    meter_id = check_id(data.id, "id") if data.id else new_id("um")
    inserted = await session.scalar(
        insert(UsageMeterRow)
        .values(
            id=meter_id,
            name=name,
            billable_name=data.billableName,
            description=data.description,
            event_schema_name=schema_name,
            aggregation=aggregation,
            computations=computations,
            negative_values=negative_values,
            created_at=now,
            updated_at=now,
        )
        .on_conflict_do_nothing()
        .returning(UsageMeterRow.id)
    )
    if inserted is None:
        existing = await session.scalar(select(UsageMeterRow).where(UsageMeterRow.name == name))
        if existing is None:
            taken = await session.get(UsageMeterRow, meter_id)
            raise Conflict(f"id: usage meter id {meter_id!r} is already used by the meter named "
                           f"{taken.name if taken else '?'!r}; choose another id")
        if data.id and existing.id != data.id:
            raise Conflict(f"a usage meter named {name!r} already exists with id {existing.id!r}; "
                           "use that id, or choose another name")
        differing = _differences(existing, schema_name, aggregation, compiled, negative_values, data)
        if differing:
            raise Conflict(
                f"a usage meter named {name!r} already exists ({existing.id}) with a different "
                f"{', '.join(differing)}; choose another name, or use the existing meter"
            )
        return _to_schema(existing), False
    await session.execute(
        EventSchemaRow.__table__.update()
        .where(EventSchemaRow.name == schema_name)
        .values(meters_tag=new_id("mt").removeprefix("mt_"), updated_at=now)
    )
    row = await session.get(UsageMeterRow, meter_id)
    assert row is not None
    await backfill_meter(session, MeterSql(meter_id, schema_name, aggregation, compiled.compiled))
    return _to_schema(row), True


def _differences(
    existing: UsageMeterRow, schema_name: str, aggregation: str, compiled: MeterSql, negative_values: str,
    data: UsageMeterCreate,
) -> list[str]:
    stored = compile_stored(existing.id, existing.event_schema_name, existing.aggregation, existing.computations)
    differing = []
    if existing.event_schema_name != schema_name:
        differing.append("eventSchemaName")
    if existing.aggregation != aggregation:
        differing.append("aggregation")
    elif stored.compiled != compiled.compiled or _labels(existing.computations) != _labels(
            [{"order": c.order, "id": c.id} for c in data.computations]):
        differing.append("computations")
    if existing.negative_values != negative_values:
        differing.append("negativeValues")
    if existing.billable_name != data.billableName:
        differing.append("billableName")
    if existing.description != data.description:
        differing.append("description")
    return differing


def _labels(computations: list[dict[str, Any]]) -> dict[int, str]:
    """The computations' labels (their ids) by order: shown with the meter but not part of its SQL, so a replay's
    are compared apart (orders are distinct, checked by the compiler; an unlabelled computation has none, so a
    COUNT meter without computations still equals one with an unlabelled {"computation": "1"})."""
    return {c["order"]: c["id"] for c in computations if c.get("id") is not None}


async def get_meter(session: AsyncSession, meter_id: str) -> UsageMeter:
    row = await session.get(UsageMeterRow, meter_id)
    if row is None:
        raise NotFound(f"usage meter {meter_id!r} does not exist; list_usage_meters shows the ids")
    return _to_schema(row)


async def meter_exists(session: AsyncSession, meter_id: str) -> bool:
    return await session.scalar(select(func.count()).where(UsageMeterRow.id == meter_id)) == 1


async def list_usage_meters(
    session: AsyncSession,
    *,
    event_schema_name: str | None = None,
    aggregation: str | None = None,
    page_size: int | None = None,
    next_token: str | None = None,
) -> Page[UsageMeter]:
    stmt = select(UsageMeterRow)
    if event_schema_name:
        stmt = stmt.where(UsageMeterRow.event_schema_name == event_schema_name)
    if aggregation:
        stmt = stmt.where(UsageMeterRow.aggregation == aggregation.upper())
    rows, token = await fetch_page(session, stmt, UsageMeterRow.seq, "usage_meters", page_size, next_token)
    return Page[UsageMeter](data=[_to_schema(r) for r in rows], nextToken=token)

