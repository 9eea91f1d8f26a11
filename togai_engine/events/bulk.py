"""Bulk import of historical events: a stream of parsed events, in batches, with the same
validation and dedupe as the tools (re-importing the same file is safe: every event is a
DUPLICATE the second time).

Memory stays flat: at most `concurrency + 1` batches (events and malformed items) exist at once.
Each batch commits in its own transaction, so an interrupted import keeps what it stored and a
re-run completes it.

The first line wins: when a line repeats the accountId and id of a line in a batch still in flight,
its batch waits for that one to commit, so the earlier line is stored and the later one is the
DUPLICATE, as if the stream were ingested one line at a time. Keys are compared as written: the same
account named once by id and once by alias, lines without an id whose content derives the same id
(written differently: "1.50" and "1.5"), and lines in the parts of parallel workers are claimed in
the order they reach the database.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterable, AsyncIterator, Callable, Iterable
from dataclasses import dataclass, field, replace

from togai_engine.common.clock import Clock
from togai_engine.events.ingest import (
    ACCEPTED_LATE,
    DUPLICATE,
    NOT_BILLED_CYCLE_CLOSED,
    NOT_BILLED_NO_PLAN,
    IngestReport,
    RejectedEvent,
    ingest_events,
)
from togai_engine.events.service import is_retryable
from togai_engine.events.validation import MAX_BATCH_EVENTS, Code
from togai_engine.sandbox.service import read_now as sandbox_now
from togai_engine.store.database import Database

MAX_ATTEMPTS = 5


@dataclass(frozen=True)
class Malformed:
    """A stream item that is not an event at all (e.g. a line that is not JSON); it is rejected."""

    message: str


@dataclass
class ImportSummary:
    read: int = 0
    accepted: int = 0
    duplicates: int = 0
    rejected: int = 0
    not_billed: int = 0  # NOT_BILLED_CYCLE_CLOSED
    not_billed_no_plan: int = 0  # NOT_BILLED_NO_PLAN: metered, no plan in effect at the event's time
    accepted_late: int = 0  # ACCEPTED_LATE: in an invoiced period, billed on the next invoice
    batches: int = 0


@dataclass
class _InFlight:
    """A batch sent to the database: its events, their stream positions, the given (accountId, id) keys of
    its events, the malformed items read while it was filled (reported with its rejections, so on_rejected
    sees positions in stream order) and its task."""

    events: list[object]
    positions: list[int]
    keys: set[tuple[str, str]]
    malformed: list[tuple[int, RejectedEvent]]
    task: asyncio.Task[IngestReport] = field(repr=False)


def _given_keys(batch: list[object]) -> set[tuple[str, str]]:
    keys = set()
    for item in batch:
        if type(item) is dict:
            account, event_id = item.get("accountId"), item.get("id")  # type: ignore[attr-defined]
            if type(account) is str and type(event_id) is str:
                keys.add((account, event_id))
    return keys


RejectedCallback = Callable[[int, RejectedEvent], None]
ProgressCallback = Callable[[ImportSummary], None]
FieldNaming = Callable[[object, str], str]  # (the rejected item, its field as validation names it) -> as reported


async def _items(source: Iterable[object] | AsyncIterable[object]) -> AsyncIterator[object]:
    if isinstance(source, AsyncIterable):
        async for item in source:
            yield item
    else:
        for item in source:
            yield item


async def ingest_with_retry(database: Database, events: list[object], clock: Clock | None) -> IngestReport:
    """One batch in its own transaction, run again on a deadlock or serialization failure. `clock` None: the
    database is a sandbox, so the batch is ingested at its time (read and held in this transaction, as a tool
    call's is) and an event dated after it is rejected (EVENT_IN_FUTURE), as ingest_event rejects it."""
    for attempt in range(1, MAX_ATTEMPTS + 1):
        try:
            async with database.unit_of_work() as session:
                now = clock.now() if clock is not None else await sandbox_now(session)
                return await ingest_events(session, events, now, refuse_after_now=clock is None)
        except Exception as exc:
            if attempt == MAX_ATTEMPTS or not is_retryable(exc):
                raise
            await asyncio.sleep(0.01 * attempt)
    raise AssertionError("unreachable")


async def import_events(
    database: Database,
    source: Iterable[object] | AsyncIterable[object],
    *,
    clock: Clock | None,
    batch_size: int = MAX_BATCH_EVENTS,
    concurrency: int = 2,
    on_rejected: RejectedCallback | None = None,
    on_progress: ProgressCallback | None = None,
    field_naming: FieldNaming | None = None,
) -> ImportSummary:
    """Imports every item of `source` (event dicts, or Malformed); returns the totals.

    `clock` None: the database is a sandbox, whose time each batch reads (see ingest_with_retry).
    on_rejected(position, rejection) is called for each rejected item, in stream order, position being
    its 0-based place in the stream; on_progress(summary) after each batch. `field_naming` renames a
    rejection's field the way the source names it (a CSV file's attribute columns).
    """
    if not 1 <= batch_size <= MAX_BATCH_EVENTS:
        raise ValueError(f"batch_size must be 1..{MAX_BATCH_EVENTS}")
    summary = ImportSummary()
    in_flight: list[_InFlight] = []

    def reject_all(rejections: list[tuple[int, RejectedEvent]]) -> None:
        summary.rejected += len(rejections)
        if on_rejected is not None:
            for position, rejection in sorted(rejections, key=lambda r: r[0]):
                on_rejected(position, rejection)

    async def settle_oldest() -> None:
        oldest = in_flight.pop(0)
        report = await oldest.task
        summary.batches += 1
        for status in report.statuses:
            if status == "ACCEPTED":
                summary.accepted += 1
            elif status == DUPLICATE:
                summary.duplicates += 1
            elif status == NOT_BILLED_CYCLE_CLOSED:
                summary.not_billed += 1
            elif status == NOT_BILLED_NO_PLAN:
                summary.not_billed_no_plan += 1
            elif status == ACCEPTED_LATE:
                summary.accepted_late += 1
        rejected = report.rejected if field_naming is None else [
            replace(r, field=field_naming(oldest.events[r.index], r.field)) for r in report.rejected]
        reject_all(oldest.malformed + [(oldest.positions[r.index], r) for r in rejected])
        if on_progress is not None:
            on_progress(summary)

    async def submit(batch: list[object], positions: list[int], malformed: list[tuple[int, RejectedEvent]]) -> None:
        keys = _given_keys(batch)
        while any(not keys.isdisjoint(earlier.keys) for earlier in in_flight):
            await settle_oldest()  # a line of this batch repeats an id of a batch in flight: that one first
        in_flight.append(_InFlight(batch, positions, keys, malformed,
                                   asyncio.create_task(ingest_with_retry(database, batch, clock))))
        await asyncio.sleep(0)  # let the batch start, so reading the next one overlaps its database work
        if len(in_flight) > concurrency - 1:
            await settle_oldest()

    batch: list[object] = []
    positions: list[int] = []
    malformed: list[tuple[int, RejectedEvent]] = []
    try:
        async for item in _items(source):
            position = summary.read
            summary.read += 1
            if isinstance(item, Malformed):
                malformed.append((position, RejectedEvent(0, None, Code.INVALID_EVENT, "", item.message)))
            else:
                batch.append(item)
                positions.append(position)
            # a full batch goes; so do a batch's worth of malformed items, so that a file of mostly broken
            # lines stays in constant memory (without events to send, they are reported once the batches
            # before them are)
            if len(batch) == batch_size or len(malformed) == batch_size:
                if batch:
                    await submit(batch, positions, malformed)
                else:
                    while in_flight:
                        await settle_oldest()
                    reject_all(malformed)
                batch, positions, malformed = [], [], []
        if batch:
            await submit(batch, positions, malformed)
            malformed = []
        while in_flight:
            await settle_oldest()
        reject_all(malformed)  # after the last event
    finally:
        for unsettled in in_flight:
            unsettled.task.cancel()
        # their transactions are rolled back before this returns or raises
        await asyncio.gather(*(unsettled.task for unsettled in in_flight), return_exceptions=True)
    return summary
