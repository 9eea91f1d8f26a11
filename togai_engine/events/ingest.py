"""The ingest hot path: validate a batch, then store it with set-based SQL in the caller's transaction.

Per batch: one query resolves every accountId (ids and aliases), one takes the shared lock of each
event schema of the batch and one reads them with their meters' tag, one locks the accounts'
billing watermarks FOR SHARE, and ONE statement does the rest: claim the ids in `event_ids` (INSERT .. ON CONFLICT DO
NOTHING RETURNING), insert exactly the claimed events into `events`, and upsert the hourly
rollups of every meter of the batch's schemas from the newly inserted rows. A failed call rolls
back as a whole, so it claims nothing.

Lock order (the same in every batch, so concurrent batches cannot deadlock): schema locks by
name, watermark rows by account, event ids by (account, id), rollup rows by (account, meter, hour).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from functools import lru_cache
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from togai_engine.billing.close import close_due_cycles
from togai_engine.events.validation import Code, ParsedEvent, Rejection, derive_event_id, parse_event
from togai_engine.meters.catalog import meters_of_schemas
from togai_engine.meters.sql import MeterSql, lock_schemas_sql, rollup_upsert, valued_sql
from togai_engine.store.database import raw_connection

ACCEPTED = "ACCEPTED"
DUPLICATE = "DUPLICATE"
REJECTED = "REJECTED"
NOT_BILLED_CYCLE_CLOSED = "NOT_BILLED_CYCLE_CLOSED"
MAX_HANDLE_CHARS = 50  # account ids and aliases are at most 50 characters

_dumps = json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode


@dataclass(frozen=True, slots=True)
class RejectedEvent:
    index: int
    event_id: str | None
    code: str
    field: str
    message: str


@dataclass
class IngestReport:
    """Per input index: status, event id and resolved account (None when rejected early)."""

    statuses: list[str]
    event_ids: list[str | None]
    account_ids: list[str | None]
    rejected: list[RejectedEvent] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    meters_fed: list[str] | None = None

    def count(self, status: str) -> int:
        return self.statuses.count(status)


def _given_id(raw: object) -> str | None:
    if type(raw) is dict:
        value = raw.get("id")  # type: ignore[attr-defined]
        return value if type(value) is str else None
    return None


async def ingest_events(
    session: AsyncSession, raw_events: Sequence[object], now: datetime, *, report_meters: bool = False
) -> IngestReport:
    """Validates and stores a batch; never raises for a bad event (it is REJECTED with a reason)."""
    size = len(raw_events)
    report = IngestReport([REJECTED] * size, [None] * size, [None] * size)
    parsed: list[tuple[int, ParsedEvent]] = []
    for index, raw in enumerate(raw_events):
        result = parse_event(raw)
        if type(result) is Rejection:
            report.rejected.append(RejectedEvent(index, _given_id(raw), result.code, result.field, result.message))
        else:
            parsed.append((index, result))  # type: ignore[arg-type]
    if not parsed:
        return report

    conn = await raw_connection(session)
    accounts = await _resolve_accounts(conn, {event.account_handle for _, event in parsed})
    kept: list[tuple[str, str, int, ParsedEvent]] = []
    claimed_in_batch: set[tuple[str, str]] = set()
    for index, event in parsed:
        found = accounts.get(event.account_handle)
        if found is None:
            report.rejected.append(RejectedEvent(
                index, event.id, Code.UNKNOWN_ACCOUNT, "accountId",
                f"{event.account_handle!r} is not an account id or alias; create the account first "
                "(create_account) or use one that list_accounts shows"))
            continue
        account_id, status = found
        if status != "ACTIVE":
            report.rejected.append(RejectedEvent(
                index, event.id, Code.ACCOUNT_ARCHIVED, "accountId",
                f"account {account_id!r} is {status}; it accepts no new usage. Set it ACTIVE "
                "(update_account) if this usage should be billed"))
            continue
        event_id = event.id if event.id is not None else derive_event_id(event, account_id)
        report.event_ids[index] = event_id
        report.account_ids[index] = account_id
        key = (account_id, event_id)
        if key in claimed_in_batch:
            report.statuses[index] = DUPLICATE  # the same id earlier in this batch
            continue
        claimed_in_batch.add(key)
        kept.append((account_id, event_id, index, event))
    report.rejected.sort(key=lambda r: r.index)
    if not kept:
        return report

    meters_by_schema = await _register_schemas(conn, kept, now)
    batch_accounts = sorted({account_id for account_id, _, _, _ in kept})
    # A cycle whose grace period has ended must be closed before its late events are judged, even
    # if no bill run or read has happened since: otherwise such an event would still be billed.
    await close_due_cycles(session, now, batch_accounts)
    closed_before = await _lock_watermarks(conn, batch_accounts)
    kept.sort()  # by (account, id), unique, so the events are never compared: the claim order of the index

    statuses = [ACCEPTED] * len(kept)
    if closed_before:
        for position, (account_id, _, _, event) in enumerate(kept):
            closed = closed_before.get(account_id)
            if closed is not None and event.event_time < closed:
                statuses[position] = NOT_BILLED_CYCLE_CLOSED
    indexes = [item[2] for item in kept]
    for index, status in zip(indexes, statuses, strict=True):
        report.statuses[index] = status
    events = [item[3] for item in kept]
    billable_schemas = {e.schema_name for e, status in zip(events, statuses, strict=True) if status == ACCEPTED}
    columns = (
        indexes,
        [item[0] for item in kept],
        [item[1] for item in kept],
        [e.schema_name for e in events],
        [e.event_time for e in events],
        # One JSON document per column (not one per event): a single C-encoder call in Python,
        # one parse in PostgreSQL, split again by jsonb_array_elements.
        _dumps([e.attributes for e in events]),
        _dumps([e.dimensions for e in events]),
        _dumps([e.units for e in events]),
        statuses,
    )
    meters = tuple(m for schema in sorted(billable_schemas) for m in meters_by_schema.get(schema, ()))
    row = await conn.fetchrow(_statement(meters, report_meters), *columns, now)
    for index in row["duplicates"]:
        report.statuses[index] = DUPLICATE
    if report_meters:
        report.meters_fed = list(row["meters"] or [])
    unmetered = sorted(schema for schema in {e.schema_name for e in events} if not meters_by_schema.get(schema))
    for schema in unmetered:
        report.warnings.append(
            f"no usage meter uses schema {schema!r} yet: its events are stored but not billed; "
            "create_usage_meter for this schema also meters the events already stored")
    return report


async def _resolve_accounts(conn: Any, handles: set[str]) -> dict[str, tuple[str, str]]:
    """accountId (an account id or alias) -> (account id, account status), in one query."""
    candidates = [h for h in handles if len(h) <= MAX_HANDLE_CHARS]
    if not candidates:
        return {}
    rows = await conn.fetch(
        "SELECT h.handle, a.id, a.status FROM account_handles h JOIN accounts a ON a.id = h.account_id "
        "WHERE h.handle = ANY($1::text[])",
        candidates,
    )
    return {row[0]: (row[1], row[2]) for row in rows}


async def _register_schemas(
    conn: Any, kept: list[tuple[str, str, int, ParsedEvent]], now: datetime
) -> dict[str, tuple[MeterSql, ...]]:
    """Registers new schemas / attributes / dimensions and returns each schema's meters.

    Takes the schemas' shared locks first (see meters.sql), so no meter of them can be created
    until this transaction ends; schema rows are written only when the batch brings something new.
    """
    seen: dict[str, tuple[dict[str, str | None], set[str]]] = {}
    for _, _, _, event in kept:
        entry = seen.get(event.schema_name)
        if entry is None:
            entry = seen[event.schema_name] = ({}, set())
        known_units, known_dimensions = entry
        if event.units is None:
            known_units.update(dict.fromkeys(event.attributes.keys() - known_units.keys()))
        else:
            for name in event.attributes:
                if known_units.get(name) is None:
                    known_units[name] = event.units.get(name)
        known_dimensions.update(event.dimensions)
    names = sorted(seen)
    await conn.fetchval(lock_schemas_sql(exclusive=False), names)
    # A new statement (a new snapshot) after the locks: it sees any meter committed before them.
    rows = await conn.fetch(
        "SELECT name, attributes, dimensions, meters_tag FROM event_schemas WHERE name = ANY($1::text[])", names
    )
    tags: dict[str, str | None] = {}
    stored = {row["name"]: row for row in rows}
    changed: list[str] = []
    for name in names:
        units_seen, dimensions_seen = seen[name]
        row = stored.get(name)
        if row is None:
            changed.append(name)
            continue
        tags[name] = row["meters_tag"]
        attributes, dimensions = _as_dict(row["attributes"]), _as_dict(row["dimensions"])
        new_attribute = any(a not in attributes for a in units_seen)
        unit_learned = any(u is not None and attributes.get(a) is None for a, u in units_seen.items())
        if new_attribute or unit_learned or not dimensions_seen <= dimensions.keys():
            changed.append(name)
    if changed:
        updated = await conn.fetch(
            "INSERT INTO event_schemas AS s (name, attributes, dimensions, created_at, updated_at) "
            "SELECT n, CAST(a AS jsonb), CAST(d AS jsonb), $4, $4 FROM unnest($1::text[], $2::text[], $3::text[]) "
            "AS t(n, a, d) ORDER BY n "
            "ON CONFLICT (name) DO UPDATE SET "
            # keys: the union; a unit already known wins, a null unit is filled in later
            "attributes = s.attributes || EXCLUDED.attributes || jsonb_strip_nulls(s.attributes), "
            "dimensions = s.dimensions || EXCLUDED.dimensions, updated_at = EXCLUDED.updated_at "
            "RETURNING name, meters_tag",
            changed,
            [_dumps(seen[n][0]) for n in changed],
            [_dumps(dict.fromkeys(sorted(seen[n][1]), True)) for n in changed],
            now,
        )
        for row in updated:
            tags[row["name"]] = row["meters_tag"]
    return await meters_of_schemas(conn, tags)


def _as_dict(value: object) -> dict[str, Any]:
    if isinstance(value, str):
        return json.loads(value)  # type: ignore[no-any-return]
    return value if isinstance(value, dict) else {}


async def _lock_watermarks(conn: Any, account_ids: list[str]) -> dict[str, datetime]:
    """closed_before per account with a closed cycle; the rows stay FOR SHARE locked, so billing
    cannot close a cycle under this batch."""
    rows = await conn.fetch(
        "SELECT account_id, NULLIF(closed_before, '-infinity') AS closed_before FROM billing_watermarks "
        "WHERE account_id = ANY($1::text[]) ORDER BY account_id FOR SHARE",
        account_ids,
    )
    return {row[0]: row[1] for row in rows if row[1] is not None}


_INPUT = """input AS (
  SELECT * FROM ROWS FROM (
    unnest($1::int4[]), unnest($2::text[]), unnest($3::text[]), unnest($4::text[]), unnest($5::timestamptz[]),
    jsonb_array_elements($6::jsonb), jsonb_array_elements($7::jsonb), jsonb_array_elements($8::jsonb),
    unnest($9::text[])
  ) AS t(idx, account_id, id, schema_name, event_time, attributes, dimensions, units, status)
)"""
_CLAIMED = """claimed AS (
  INSERT INTO event_ids (account_id, id, event_time)
  SELECT account_id, id, event_time FROM input
  ON CONFLICT DO NOTHING
  RETURNING account_id, id
)"""
_INSERTED = """inserted AS (
  INSERT INTO events (account_id, id, schema_name, event_time, received_at, attributes, dimensions, units, status)
  SELECT i.account_id, i.id, i.schema_name, i.event_time, $10::timestamptz, i.attributes, i.dimensions,
         NULLIF(i.units, 'null'::jsonb), i.status
  FROM input i JOIN claimed c ON c.account_id = i.account_id COLLATE "C" AND c.id = i.id COLLATE "C"
  RETURNING account_id, id, schema_name, event_time, attributes, dimensions, status
)"""
_DUPLICATES = (
    'ARRAY(SELECT i.idx FROM input i WHERE NOT EXISTS (SELECT 1 FROM claimed c '
    'WHERE c.account_id = i.account_id COLLATE "C" AND c.id = i.id COLLATE "C")) AS duplicates'
)


@lru_cache(maxsize=256)
def _statement(meters: tuple[MeterSql, ...], report_meters: bool) -> str:
    ctes = [_INPUT, _CLAIMED, _INSERTED]
    final = f"SELECT {_DUPLICATES}"
    if meters:
        ctes.append(f"valued AS (\n{valued_sql(meters, 'inserted')}\n)")
        ctes.append(f"rolled AS (\n{rollup_upsert('valued', any_latest=any(m.is_latest for m in meters))}\n)")
        if report_meters:
            final += ", ARRAY(SELECT DISTINCT meter_id FROM valued WHERE value IS NOT NULL ORDER BY 1) AS meters"
    elif report_meters:
        final += ", CAST(NULL AS text[]) AS meters"
    return "WITH " + ",\n".join(ctes) + "\n" + final
