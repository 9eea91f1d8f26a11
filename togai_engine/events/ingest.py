"""The ingest hot path: validate a batch, then store it with set-based SQL in the caller's transaction.

Per batch: one query resolves every accountId (ids and aliases), says which accounts have a bill
run due and returns their plan associations' intervals (each event's "no plan" status is decided
from them in Python); a month without a partition gets one (its own short transaction,
store/partitions.py); one query takes the shared lock of each event schema of the batch and one
reads them with their meters' tag; only when a meter of those schemas rejects negative values, one
query computes the events' values for such meters (meters.sql.negative_values_sql) and the negative
ones are rejected; cycles that are due are closed first (rarely: the background bill run keeps up);
one query takes the accounts' billing fences (shared, billing/fence.py) and one reads their watermarks;
and ONE statement does the rest: claim the ids in `event_ids`, insert the claimed events into `events`,
and upsert the hourly rollups (in this transaction's stripe), the daily ones of MAX and LATEST meters and
the all-account totals of every meter of the batch's schemas. The claim is a plain INSERT first; if an id
is already taken, a savepoint undoes that and the INSERT .. ON CONFLICT DO NOTHING RETURNING form stores
only the new ones (however the server reports the taken id: see _id_taken). A failed call rolls back as a whole,
so it claims nothing.

Lock order (the same in every batch, so concurrent batches cannot deadlock): schema locks by
name, the account locks of the accounts whose cycles it closes, billing fences by key (all in one pass, the
closed accounts' exclusive), the invoice counter when it closed any, event ids by (account, id), then, in the
storing statement's
fixed order, rollup rows by (account, meter, hour), totals by (meter, hour) and daily rollups by
(account, meter, day), each in key order within the transaction's stripe (two running batches never share
a stripe unless more than 8 run at once).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from typing import Any

import asyncpg
import orjson
from sqlalchemy.ext.asyncio import AsyncSession

from togai_engine.billing.close import billing_due, close_due_cycles, one_connection_per_node
from togai_engine.billing.fence import hold_fences
from togai_engine.common.messages import encodable
from togai_engine.common.progress import ProgressCallback
from togai_engine.events.validation import MAX_ID_CHARS, Code, ParsedEvent, Rejection, derive_event_id, parse_event
from togai_engine.invoices.late_usage import late_sources, no_next_invoice, record_late_events, without_next_invoice
from togai_engine.meters.catalog import meters_of_schemas
from togai_engine.meters.sql import (
    STRIPE_SQL,
    MeterSql,
    lock_schemas_sql,
    negative_values_sql,
    rollup_writes,
    valued_sql,
)
from togai_engine.store.database import raw_connection
from togai_engine.store.partitions import ensure_session_months, month_keys

ACCEPTED = "ACCEPTED"
DUPLICATE = "DUPLICATE"
REJECTED = "REJECTED"
NOT_BILLED_CYCLE_CLOSED = "NOT_BILLED_CYCLE_CLOSED"
ACCEPTED_LATE = "ACCEPTED_LATE"  # in an invoiced period whose plan bills late usage on the next invoice
VOIDED = "VOIDED"  # set by void_event (events/voids.py), never at ingest
NOT_BILLED_NO_PLAN = "NOT_BILLED_NO_PLAN"
MAX_HANDLE_CHARS = 50  # account ids and aliases are at most 50 characters
PHASES = 3  # for progress: validated; accounts, ids and meters checked; stored

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
MICROSECOND = timedelta(microseconds=1)

def _dumps(value: object) -> str:
    """Compact JSON text of validated values (str, dict, list; no lone surrogates: validation rejects them);
    orjson is ~10x faster than the json module's encoder here."""
    return orjson.dumps(value).decode()


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

    def accounts(self) -> list[str]:
        """The ids of the accounts whose events were taken (stored now, or before: a DUPLICATE), sorted; a
        rejected event's account is not one."""
        return sorted({account for status, account in zip(self.statuses, self.account_ids, strict=True)
                       if status != REJECTED and account is not None})


def _given_id(raw: object) -> str | None:
    """The id a rejected event was sent with, to echo back; None when it is not one an event may have
    (too long, or text that is not Unicode: the answer could not even carry it)."""
    if type(raw) is dict:
        value = raw.get("id")  # type: ignore[attr-defined]
        if type(value) is str and len(value) <= MAX_ID_CHARS and encodable(value) == value:
            return value
    return None


async def ingest_events(
    session: AsyncSession, raw_events: Sequence[object], now: datetime, *, report_meters: bool = False,
    progress: ProgressCallback | None = None, refuse_after_now: bool = False,
) -> IngestReport:
    """Validates and stores a batch; never raises for a bad event (it is REJECTED with a reason).
    `progress` hears of each of the PHASES a batch with valid events goes through. `refuse_after_now` (a
    sandbox, whose clock is moved by hand) rejects events dated after `now`: they have not happened yet."""
    size = len(raw_events)
    report = IngestReport([REJECTED] * size, [None] * size, [None] * size)
    parsed: list[tuple[int, ParsedEvent]] = []
    for index, raw in enumerate(raw_events):
        result = parse_event(raw)
        if type(result) is Rejection:
            # the field may be an attribute's name and the message may quote a value: echo them encodable
            report.rejected.append(RejectedEvent(index, _given_id(raw), result.code, encodable(result.field),
                                                 encodable(result.message)))
        elif refuse_after_now and result.event_time > now:  # type: ignore[union-attr]
            report.rejected.append(RejectedEvent(
                index, _given_id(raw), Code.EVENT_IN_FUTURE, "timestamp",
                f"{result.event_time.isoformat()} is after the sandbox clock ({now.isoformat()}), so it has "  # type: ignore[union-attr]
                "not happened yet; move the clock past it first (advance_clock)"))
        else:
            parsed.append((index, result))  # type: ignore[arg-type]
    if not parsed:
        return report
    if progress is not None:
        await progress(1, PHASES, f"{len(parsed)} of {size} event(s) valid; checking accounts, ids and meters")

    conn = await raw_connection(session)
    accounts = await _resolve_accounts(conn, {event.account_handle for _, event in parsed}, now)
    if any(found[2] for found in accounts.values()):  # rarely: cycles will be closed below
        await one_connection_per_node(conn)
    kept: list[tuple[str, str, int, ParsedEvent]] = []
    repeated: list[tuple[str, str, int, ParsedEvent]] = []  # DUPLICATE: an id earlier in this batch
    claimed_in_batch: set[tuple[str, str]] = set()
    for index, event in parsed:
        found = accounts.get(event.account_handle)
        if found is None:
            report.rejected.append(RejectedEvent(
                index, event.id, Code.UNKNOWN_ACCOUNT, "accountId",
                f"{event.account_handle!r} is not an account id or alias; create the account first "
                "(create_account) or use one that list_accounts shows"))
            continue
        account_id, status, _, _ = found
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
            report.statuses[index] = DUPLICATE
            repeated.append((account_id, event_id, index, event))
            continue
        claimed_in_batch.add(key)
        kept.append((account_id, event_id, index, event))
    if not kept:
        report.rejected.sort(key=lambda r: r.index)
        return report
    # Repeated ids count too: one may be stored instead of its first, rejected for a negative value (below).
    candidates = [*kept, *repeated] if repeated else kept
    # Before this transaction locks anything: a month without a partition gets one, committed apart.
    await ensure_session_months(session, month_keys(e.event_time for _, _, _, e in candidates), now)
    schemas_seen, stored_schemas, meters_by_schema = await _lock_schemas(conn, candidates)
    rejecting = [m for schema in schemas_seen for m in meters_by_schema.get(schema, ()) if m.rejects_negative]
    if rejecting:  # only batches with a meter that rejects negative values pay for this check
        kept = await _reject_negative_values(conn, kept, repeated, tuple(rejecting), report)
    report.rejected.sort(key=lambda r: r.index)
    if not kept:
        return report
    await _register_shapes(conn, kept, stored_schemas, now)
    batch_accounts = sorted({account_id for account_id, _, _, _ in kept})
    # A cycle whose grace period has ended must be closed before its late events are judged, even
    # if no bill run or read has happened since: otherwise such an event would still be billed.
    due = sorted({found[0] for found in accounts.values() if found[2]} & set(batch_accounts))
    if due:  # usually none: the background bill run keeps up
        # the batch's other fences too, before the counter: lock_watermarks below must not wait for a fence while
        # this transaction holds the counter (a read closing one of those accounts holds its fence and waits for it)
        await close_due_cycles(session, now, due, shared_fences=batch_accounts)
    closed_before = await lock_watermarks(conn, batch_accounts, min(item[3].event_time for item in kept))
    kept.sort()  # by (account, id), unique, so the events are never compared: the claim order of the index

    # Each event's status at ingest: in a closed (invoiced) cycle, else outside every plan association of
    # its account (metered, not billed unless a plan is attached over it later), else ACCEPTED.
    statuses = [ACCEPTED] * len(kept)
    not_billed = False  # any event that feeds no meter
    other = False  # any status but ACCEPTED
    plans = {found[0]: found[3] for found in accounts.values()}
    # most accounts are on one open-ended plan: one comparison per event
    open_from = {account: coverage[0][0] for account, coverage in plans.items()
                 if len(coverage) == 1 and coverage[0][1] is None}
    for position, (account_id, _, _, event) in enumerate(kept):
        at = event.event_time
        if closed_before:
            closed = closed_before.get(account_id)
            if closed is not None and at < closed:
                statuses[position] = NOT_BILLED_CYCLE_CLOSED
                not_billed = other = True
                continue
        start = open_from.get(account_id)
        if (at < start) if start is not None else not _has_plan(plans[account_id], at):
            statuses[position] = NOT_BILLED_NO_PLAN
            other = True
    late = await _bill_late(session, conn, kept, statuses) if not_billed else {}
    if late:
        not_billed = NOT_BILLED_CYCLE_CLOSED in statuses
    indexes = [item[2] for item in kept]
    for index, status in zip(indexes, statuses, strict=True):
        report.statuses[index] = status
    events = [item[3] for item in kept]
    schemas = {e.schema_name for e in events}
    metered_schemas = {e.schema_name for e, status in zip(events, statuses, strict=True)
                       if status != NOT_BILLED_CYCLE_CLOSED} if not_billed else schemas
    units = [e.units for e in events]
    # Few parameters, each cheap to send: text columns and JSON values as one JSON document per column
    # (one C-encoder call here, one parse there; an asyncpg text[] costs ~5x more per element), times
    # as integer microseconds (a timestamptz[] element costs ~4x more to encode than an int8).
    columns = (
        _dumps([item[0] for item in kept]),
        _dumps([item[1] for item in kept]),
        _dumps([e.schema_name for e in events]),
        [(e.event_time - EPOCH) // MICROSECOND for e in events],
        _dumps([e.attributes for e in events]),
        _dumps([e.dimensions for e in events]),
        _dumps(units) if any(u is not None for u in units) else None,
    )
    meters = tuple(m for schema in sorted(metered_schemas) for m in meters_by_schema.get(schema, ()))
    if progress is not None:
        await progress(2, PHASES, f"storing {len(kept)} event(s)")
    row = await _store(conn, meters, report_meters, columns, now, _dumps(statuses) if other else None, len(kept))
    for position in row["duplicates"]:
        report.statuses[indexes[position]] = DUPLICATE
    if late:
        stored_late = set(late) - set(row["duplicates"])
        await record_late_events(conn, [(kept[p][0], kept[p][1], kept[p][3].event_time, late[p])
                                        for p in sorted(stored_late)], now)
        # "billed on the next invoice" is untrue for now when there is none: say so, else the usage waits unseen
        for account_id in await without_next_invoice(conn, [kept[p][0] for p in stored_late], now):
            report.warnings.append(no_next_invoice(account_id))
    if report_meters:
        report.meters_fed = list(row["meters"] or [])
    unmetered = sorted(schema for schema in schemas if not meters_by_schema.get(schema))
    for schema in unmetered:
        report.warnings.append(
            f"no usage meter uses schema {schema!r} yet: its events are stored but not billed; "
            "create_usage_meter for this schema also meters the events already stored")
    if progress is not None:
        await progress(3, PHASES, f"stored {len(kept)} event(s)")
    return report


async def _bill_late(session: AsyncSession, conn: Any, kept: list[tuple[str, str, int, ParsedEvent]],
                     statuses: list[str]) -> dict[int, str]:
    """Turns NOT_BILLED_CYCLE_CLOSED into ACCEPTED_LATE where the invoiced period's plan bills late usage;
    returns position -> the invoice of that period."""
    positions = [p for p, status in enumerate(statuses) if status == NOT_BILLED_CYCLE_CLOSED]
    sources = await late_sources(session, conn, [(kept[p][0], kept[p][3].event_time) for p in positions])
    late = {p: source for p, source in zip(positions, sources, strict=True) if source is not None}
    for position in late:
        statuses[position] = ACCEPTED_LATE
    return late


Coverage = tuple[datetime, datetime | None]  # [from, until) of the account's plan associations; None = open


def _coverage(associations: list[Coverage]) -> tuple[Coverage, ...]:
    """An account's plan associations as sorted disjoint intervals, adjacent ones joined (their starts are
    distinct: one association per account and effective_from)."""
    merged: list[Coverage] = []
    for start, end in sorted(associations):
        if merged and (merged[-1][1] is None or merged[-1][1] >= start):
            last_start, last_end = merged[-1]
            if last_end is not None and (end is None or end > last_end):
                merged[-1] = (last_start, end)
        else:
            merged.append((start, end))
    return tuple(merged)


def _has_plan(coverage: tuple[Coverage, ...], at: datetime) -> bool:
    """A plan association of the account is in effect at `at` (from inclusive, until exclusive)."""
    for start, end in coverage:
        if at < start:
            return False
        if end is None or at < end:
            return True
    return False


FAST_PATH_MIN_EVENTS = 200  # ~1 us per event saved vs ~0.2 ms for SAVEPOINT + RELEASE


async def _store(conn: Any, meters: tuple[MeterSql, ...], report_meters: bool, columns: tuple[Any, ...],
                 now: datetime, statuses: str | None, count: int) -> Any:
    """Runs the storing statement; returns its row (duplicates: positions that were already claimed).
    `statuses`: each event's status as a JSON array, None when all are ACCEPTED (the usual batch: its
    statement writes the constant and takes no such parameter).

    Fast path first: a batch without stored ids (the common case; retries are rare) claims them
    with a plain INSERT, and stores every event without joining the claim back. A plain INSERT is
    ~20% cheaper per event than ON CONFLICT's speculative insertion. If any id is already claimed,
    its unique violation undoes the attempt (a savepoint) and the claiming statement runs instead.
    The savepoint costs two round trips, more than the fast path saves on a small batch (a single
    ingest_event, say): those take the claiming statement directly.
    """
    args = (*columns, now) if statuses is None else (*columns, now, statuses)
    given = statuses is not None
    if count < FAST_PATH_MIN_EVENTS:
        return await conn.fetchrow(_statement(meters, report_meters, False, given), *args)
    try:
        async with conn.transaction():  # a savepoint inside the caller's transaction
            return await conn.fetchrow(_statement(meters, report_meters, True, given), *args)
    except asyncpg.exceptions.PostgresError as exc:
        if not _id_taken(exc):
            raise
    return await conn.fetchrow(_statement(meters, report_meters, False, given), *args)


_ID_TAKEN = 'duplicate key value violates unique constraint "pk_event_ids'


def _id_taken(exc: asyncpg.exceptions.PostgresError) -> bool:
    """The fast path's claim met an id already stored. On one node: a unique violation of pk_event_ids. On
    Citus the worker's violation comes back as an internal error (SQLSTATE XX000) naming the shard's
    constraint (pk_event_ids_102273), so the message is what tells."""
    state = getattr(exc, "sqlstate", None)
    if state == "23505":
        return (getattr(exc, "constraint_name", None) or "").startswith("pk_event_ids")
    return state == "XX000" and str(exc).startswith(_ID_TAKEN)


async def _resolve_accounts(
    conn: Any, handles: set[str], now: datetime
) -> dict[str, tuple[str, str, bool, tuple[Coverage, ...]]]:
    """accountId (an account id or alias) -> (account id, account status, billing due, plan coverage),
    in one query.

    "billing due": the account has a bill run due at `now` (billing's account_billing.next_run_at),
    so close_due_cycles has work for it. "plan coverage": the intervals its plan associations cover
    (empty: it has none), so each event's time is checked in Python, without a query per event; they
    come as one row per association from a plain LEFT JOIN (probing its (account_id, effective_from) index
    per account; a LATERAL array_agg per account measured 0.77 ms per batch of 186 accounts, this 0.55,
    without them 0.33). The handles are joined from a JSON array, not tested with `= ANY(array)`: with
    hundreds of accounts per batch that is a linear scan of the array per row (~10 ms per batch at 600
    accounts with locale-aware text comparison); and a JSON array rather than a text[], which asyncpg
    encodes element by element (600 names: ~160 µs less client CPU per call).
    """
    candidates = [h for h in handles if len(h) <= MAX_HANDLE_CHARS]
    if not candidates:
        return {}
    rows = await conn.fetch(
        "SELECT h.handle, a.id, a.status, EXISTS (SELECT FROM account_billing b WHERE b.account_id = a.id "
        f"  AND {billing_due('b', '$2')}) AS due, p.effective_from, p.effective_until "
        "FROM json_array_elements_text($1::json) AS u(handle) JOIN account_handles h ON h.handle = u.handle "
        "JOIN accounts a ON a.id = h.account_id "
        "LEFT JOIN plan_associations p ON p.account_id = a.id",
        _dumps(candidates), now,
    )
    # one row per (handle, plan association), one per handle for most accounts (a single association)
    found: dict[str, tuple[str, str, bool, tuple[Coverage, ...]]] = {}
    for handle, account_id, status, due, start, end in rows:
        entry = found.get(handle)
        if entry is None:
            found[handle] = (account_id, status, due, () if start is None else ((start, end),))
        else:
            found[handle] = (account_id, status, due, _coverage([*entry[3], (start, end)]))
    return found


async def _reject_negative_values(
    conn: Any, kept: list[tuple[str, str, int, ParsedEvent]], repeated: list[tuple[str, str, int, ParsedEvent]],
    meters: tuple[MeterSql, ...], report: IngestReport,
) -> list[tuple[str, str, int, ParsedEvent]]:
    """The events to store: `kept` without those whose value for one of `meters` (meters that reject
    negative values) is negative. Each of those is REJECTED (NEGATIVE_VALUE) and claims nothing, or, if
    its id is already stored (sent before the meter existed), is the DUPLICATE it is. `repeated` (ids
    repeated within the batch, DUPLICATE so far) are judged too: the first valid one of an id whose
    earlier event is rejected takes its place. One query over the events of the meters' schemas,
    computing the values with the meters' own SQL."""
    candidates = sorted([*kept, *repeated], key=lambda c: c[2]) if repeated else kept
    schemas = {m.schema_name for m in meters}
    checked = [(position, c) for position, c in enumerate(candidates) if c[3].schema_name in schemas]
    if not checked:
        return kept
    rows = await conn.fetch(
        _negative_values_statement(meters),
        [position for position, _ in checked],
        _dumps([c[3].schema_name for _, c in checked]),
        _dumps([c[3].attributes for _, c in checked]),
        _dumps([c[3].dimensions for _, c in checked]),
        _dumps([c[0] for _, c in checked]),
        _dumps([c[1] for _, c in checked]),
    )
    if not rows:
        return kept
    by_id = {m.id: m for m in meters}
    dropped: set[int] = set()
    for position, meter_id, meter_name, value, stored in rows:
        if position in dropped:
            continue  # one reason per event: its first meter by id
        dropped.add(position)
        _, _, index, event = candidates[position]
        if stored:
            report.statuses[index] = DUPLICATE
            continue
        report.statuses[index] = REJECTED
        report.event_ids[index] = report.account_ids[index] = None
        report.rejected.append(_negative_value(index, event, by_id[meter_id], meter_name, value))
    survivors: list[tuple[str, str, int, ParsedEvent]] = []
    claimed_in_batch: set[tuple[str, str]] = set()
    for position, candidate in enumerate(candidates):  # the in-batch dedupe again, over what is left
        key = (candidate[0], candidate[1])
        if position in dropped or key in claimed_in_batch:
            continue
        claimed_in_batch.add(key)
        survivors.append(candidate)
    return survivors


def _negative_value(index: int, event: ParsedEvent, meter: MeterSql, meter_name: str, value: Any) -> RejectedEvent:
    names = meter.value_attributes
    sent = ", ".join(f"attributes.{n} = {event.attributes[n]}" for n in names if n in event.attributes)
    return RejectedEvent(
        index, event.id, Code.NEGATIVE_VALUE, f"attributes.{names[0]}" if len(names) == 1 else "attributes",
        f"its value for usage meter {meter_name!r} ({meter.id}) is {value}{f' (from {sent})' if sent else ''}, and "
        "that meter rejects negative values (negativeValues REJECT); send a value of 0 or more, or meter "
        "corrections with a meter created with negativeValues ALLOW")


@lru_cache(maxsize=64)
def _negative_values_statement(meters: tuple[MeterSql, ...]) -> str:
    """$1 int4[] positions, $2..$4 JSON arrays of schema names, attributes and dimensions, $5 and $6 of
    account ids and event ids. Rows (position, meter id, meter name, value, id already stored)."""
    return (
        "WITH input AS (SELECT * FROM ROWS FROM (unnest($1::int4[]), json_array_elements_text($2::json), "
        "  jsonb_array_elements($3::jsonb), jsonb_array_elements($4::jsonb), json_array_elements_text($5::json), "
        "  json_array_elements_text($6::json)) AS t(pos, schema_name, attributes, dimensions, account_id, id)), "
        f"negative AS ({negative_values_sql(meters, 'input', validated=True)}) "
        "SELECT n.pos, n.meter_id, m.name, n.value, EXISTS (SELECT FROM event_ids x "
        '  WHERE x.account_id = i.account_id AND x.id = i.id COLLATE "C") AS stored '
        "FROM negative n JOIN input i ON i.pos = n.pos JOIN usage_meters m ON m.id = n.meter_id "
        "ORDER BY n.pos, n.meter_id"
    )


async def _lock_schemas(
    conn: Any, candidates: list[tuple[str, str, int, ParsedEvent]]
) -> tuple[list[str], dict[str, Any], dict[str, tuple[MeterSql, ...]]]:
    """Takes the shared locks of the batch's schemas (see meters.sql), so no meter of them can be
    created until this transaction ends, then reads them: (schema names, stored schema rows by name,
    each schema's meters). A schema not stored yet has no meters."""
    names = sorted({event.schema_name for _, _, _, event in candidates})
    await conn.fetchval(lock_schemas_sql(exclusive=False), names)
    # A new statement (a new snapshot) after the locks: it sees any meter committed before them.
    rows = await conn.fetch(
        "SELECT name, attributes, dimensions, meters_tag FROM event_schemas WHERE name = ANY($1::text[])", names
    )
    stored = {row["name"]: row for row in rows}
    tags = {name: (stored[name]["meters_tag"] if name in stored else None) for name in names}
    return names, stored, await meters_of_schemas(conn, tags)


async def _register_shapes(
    conn: Any, kept: list[tuple[str, str, int, ParsedEvent]], stored: dict[str, Any], now: datetime
) -> None:
    """Registers new schemas / attributes / dimensions of the stored events (`stored`: the schema rows
    read under the schemas' locks); schema rows are written only when the batch brings something new."""
    seen: dict[str, tuple[dict[str, str | None], set[str]]] = {}
    last: dict[str, ParsedEvent] = {}  # per schema, the last event whose names were looked at
    for _, _, _, event in kept:
        # Most events of a schema have the same attribute and dimension names: an event with the names and
        # units of the last one of its schema looked at brings nothing new (what follows is idempotent).
        previous = last.get(event.schema_name)
        if (previous is not None and event.attributes.keys() == previous.attributes.keys()
                and event.dimensions.keys() == previous.dimensions.keys() and event.units == previous.units):
            continue
        last[event.schema_name] = event
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
    changed: list[str] = []
    for name in sorted(seen):
        units_seen, dimensions_seen = seen[name]
        row = stored.get(name)
        if row is None:
            changed.append(name)
            continue
        attributes, dimensions = _as_dict(row["attributes"]), _as_dict(row["dimensions"])
        new_attribute = any(a not in attributes for a in units_seen)
        unit_learned = any(u is not None and attributes.get(a) is None for a, u in units_seen.items())
        if new_attribute or unit_learned or not dimensions_seen <= dimensions.keys():
            changed.append(name)
    if changed:
        await conn.execute(
            "INSERT INTO event_schemas AS s (name, attributes, dimensions, created_at, updated_at) "
            "SELECT n, CAST(a AS jsonb), CAST(d AS jsonb), $4, $4 FROM unnest($1::text[], $2::text[], $3::text[]) "
            "AS t(n, a, d) ORDER BY n "
            "ON CONFLICT (name) DO UPDATE SET "
            # keys: the union; a unit already known wins, a null unit is filled in later
            "attributes = s.attributes || EXCLUDED.attributes || jsonb_strip_nulls(s.attributes), "
            "dimensions = s.dimensions || EXCLUDED.dimensions, updated_at = EXCLUDED.updated_at",
            changed,
            [_dumps(seen[n][0]) for n in changed],
            [_dumps(dict.fromkeys(sorted(seen[n][1]), True)) for n in changed],
            now,
        )


def _as_dict(value: object) -> dict[str, Any]:
    if isinstance(value, str):
        return json.loads(value)  # type: ignore[no-any-return]
    return value if isinstance(value, dict) else {}


async def lock_watermarks(conn: Any, account_ids: list[str],
                          earliest: datetime | None = None) -> dict[str, datetime]:
    """closed_before per account with a closed cycle; the accounts' billing fences stay held (shared), so
    billing cannot close a cycle under this batch (billing/fence.py). With `earliest` (the earliest time the
    caller asks about), only watermarks after it: no time at or after `earliest` is before the others, and a
    live stream's batch, whose events all follow its accounts' closed cycles, reads back no row."""
    await hold_fences(conn, account_ids, exclusive=False)
    # joined, not `= ANY(array)`: a linear scan of the array per row (see _resolve_accounts)
    rows = await conn.fetch(
        "SELECT w.account_id, w.closed_before FROM json_array_elements_text($1::json) AS u(account_id) "
        "JOIN billing_watermarks w ON w.account_id = u.account_id "
        "WHERE w.closed_before > coalesce($2::timestamptz, '-infinity')",
        _dumps(account_ids), earliest,
    )
    return dict(rows)


# $1..$3 JSON arrays of text, $4 int8[] microseconds since the epoch, $5..$7 JSON arrays of objects
# ($7 NULL: no units at all), $8 now, and only in the statement `with_statuses`, $9 a JSON array of
# each event's status (otherwise every event is ACCEPTED: no parameter, a constant).
# The time is rebuilt exactly: whole hours plus microseconds (both exact in int8/interval arithmetic,
# with no day or month step that would depend on the session time zone).
def _input(with_statuses: bool) -> str:
    status, source, name = ("t.status", ", json_array_elements_text($9::json)", " status,") if with_statuses \
        else (f"CAST('{ACCEPTED}' AS text)", "", "")
    return f"""input AS (
  SELECT CAST(t.ord - 1 AS int4) AS pos, t.account_id, t.id, t.schema_name,
         timestamptz 'epoch' + make_interval(hours => CAST(t.micros / 3600000000 AS int4))
           + (t.micros % 3600000000) * interval '1 microsecond' AS event_time,
         t.attributes, t.dimensions, NULLIF(t.units, 'null'::jsonb) AS units, {status} AS status
  FROM ROWS FROM (
    json_array_elements_text($1::json), json_array_elements_text($2::json), json_array_elements_text($3::json),
    unnest($4::int8[]), jsonb_array_elements($5::jsonb), jsonb_array_elements($6::jsonb),
    jsonb_array_elements(coalesce($7::jsonb, '[]'::jsonb)){source}
  ) WITH ORDINALITY AS t(account_id, id, schema_name, micros, attributes, dimensions, units,{name} ord)
)"""
_CLAIMED = """claimed AS (
  INSERT INTO event_ids (account_id, id, event_time)
  SELECT account_id, id, event_time FROM input
  ON CONFLICT DO NOTHING
  RETURNING account_id, id
)"""
_INSERTED = """inserted AS (
  INSERT INTO events (account_id, id, schema_name, event_time, received_at, attributes, dimensions, units, status)
  SELECT i.account_id, i.id, i.schema_name, i.event_time, $8::timestamptz, i.attributes, i.dimensions,
         i.units, i.status
  FROM input i JOIN claimed c ON c.account_id = i.account_id AND c.id = i.id COLLATE "C"
  RETURNING account_id, id, schema_name, event_time, attributes, dimensions, status
)"""
_DUPLICATES = (
    'ARRAY(SELECT i.pos FROM input i WHERE NOT EXISTS (SELECT 1 FROM claimed c '
    'WHERE c.account_id = i.account_id AND c.id = i.id COLLATE "C")) AS duplicates'
)


_CLAIMED_ALL = """claimed AS (
  INSERT INTO event_ids (account_id, id, event_time)
  SELECT account_id, id, event_time FROM input
)"""
_INSERTED_ALL = """inserted AS (
  INSERT INTO events (account_id, id, schema_name, event_time, received_at, attributes, dimensions, units, status)
  SELECT i.account_id, i.id, i.schema_name, i.event_time, $8::timestamptz, i.attributes, i.dimensions,
         i.units, i.status
  FROM input i
)"""


@lru_cache(maxsize=256)
def _statement(meters: tuple[MeterSql, ...], report_meters: bool, fast: bool, with_statuses: bool) -> str:
    """fast: every id is new (a conflict raises); otherwise ids already claimed are skipped and reported.
    with_statuses: the events' statuses come as $9 (some event is not ACCEPTED)."""
    source = _input(with_statuses)
    ctes = [source, _CLAIMED_ALL, _INSERTED_ALL] if fast else [source, _CLAIMED, _INSERTED]
    final = "SELECT CAST(ARRAY[] AS int4[]) AS duplicates" if fast else f"SELECT {_DUPLICATES}"
    if meters:
        # The fast path stores every input row or fails as a whole, so its meters read the input itself: the
        # insert then returns nothing (a RETURNING of 1000 rows with their JSON is a tuplestore written and read).
        # both read only this batch's events, whose attributes parse_event has just validated: plain casts
        ctes.append(f"valued AS (\n{valued_sql(meters, 'input' if fast else 'inserted', validated=True)}\n)")
        ctes.append(f"stripe AS MATERIALIZED ({STRIPE_SQL})")
        ctes += rollup_writes("valued", meters, "(SELECT s FROM stripe)")
        if report_meters:
            final += ", ARRAY(SELECT DISTINCT meter_id FROM valued WHERE value IS NOT NULL ORDER BY 1) AS meters"
    elif report_meters:
        final += ", CAST(NULL AS text[]) AS meters"
    return "WITH " + ",\n".join(ctes) + "\n" + final
