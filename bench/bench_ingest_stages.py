"""Issue #18: CPU per event of each stage of today's batch ingest, and what a compiled validator leaves.

    .venv/bin/python -m bench.bench_ingest_stages                 # 100,000 events, 1000 per batch, 1 connection

Setup as bench_ingest (1,000 accounts on 3 plans, 5 meters, due cycles closed), then, on the same events:
- Python (time.process_time of this process, which runs nothing else): `parse` the batch's JSON text
  (togai_engine.common.json_text.loads, as the server does), `validate` (parse_event per event), and the rest of
  `ingest_events` in Python (account resolution, statuses, the storing statement's arguments, asyncpg and
  SQLAlchemy client work): the whole call's process CPU minus validate;
- the server (CPU of the backend that serves the batch, /proc/<pid>/schedstat, ns): the whole batch transaction,
  and each database step of ingest_events (client and server CPU, timed by wrappers set on the module),
  and the storing statement cut after each part,
  replayed on the same arguments with fresh ids, each cut in its own committed transaction, in rotated order:
  decode the arguments (`input`), + `claim` (event_ids), + `insert` (events), + `rollups` (the whole statement:
  meter values, hourly/daily rollups, all-account totals);
- the same events through a compiled validator: msgspec decoding the batch's JSON straight into typed structs
  (shapes, unknown fields, length limits checked in C), one pass per batch for what msgspec does not check
  (NUL and lone-surrogate escapes: one substring search of the batch's bytes; the attribute values' plain-decimal
  form: one regex over all of them; naive timestamps), and the
  storing statement's columns built from the structs. Its columns are compared with the engine's (identical).

Nothing of the engine is changed: the wrappers are set on the ingest module for this process only.
"""

from __future__ import annotations

import argparse
import asyncio
import re
import statistics
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any

import asyncpg
import orjson

from bench import dataset
from bench.bench_ingest import BATCH, RECEIVED, fetch_events
from bench.common import backend_cpu_ns, libpq, machine, scratch_database, write_json
from togai_engine.common.gc_tuning import tune_gc
from togai_engine.common.json_text import loads as json_loads
from togai_engine.events import ingest
from togai_engine.events.validation import parse_event
from togai_engine.store.database import Database, raw_connection

try:
    import msgspec
except ImportError:  # the compiled-validator comparison needs it: pip install msgspec
    msgspec = None  # type: ignore[assignment]

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
MICROSECOND = timedelta(microseconds=1)



# --- the compiled validator -------------------------------------------------------------------------

if msgspec is not None:
    from msgspec import Meta

    Name = Annotated[str, Meta(min_length=1, max_length=50)]

    class Attribute(msgspec.Struct, forbid_unknown_fields=True, gc=False):
        name: Name
        value: str | int
        unit: Name | None = None

    class Event(msgspec.Struct, forbid_unknown_fields=True, gc=False):
        schemaName: Name
        timestamp: datetime
        accountId: Annotated[str, Meta(min_length=1, max_length=512)]
        id: Annotated[str, Meta(min_length=1, max_length=512)] | None = None
        attributes: (Annotated[dict[Name, str | int], Meta(max_length=10)]
                     | Annotated[list[Attribute], Meta(max_length=10)] | None) = None
        dimensions: Annotated[dict[Name, Annotated[str, Meta(min_length=1, max_length=200)]],
                              Meta(max_length=50)] | None = None

    DECODER = msgspec.json.Decoder(list[Event])
    ENCODER = msgspec.json.Encoder()

# every attribute value of a batch, one per line: one regex call per batch (the engine's plain-decimal fast path);
# a per-value pattern in msgspec (Meta(pattern=...)) measured ~1.5 µs per event more
_VALUES = re.compile(r"(?:-?[0-9]{1,40}(?:\.[0-9]{1,30})?\n)*")


def compiled_columns(data: bytes) -> tuple[Any, ...] | None:
    """The storing statement's event columns from a batch's JSON, or None: the batch needs the engine's
    per-event path (an event msgspec refuses, so one with a precise rejection; a NUL or surrogate escape;
    an attribute list, an integer or a decimal off the plain form, which this sketch leaves to it). Columns
    as ingest builds them, in input order: account handles, ids, schema names, micros, attributes, dimensions."""
    if b"\\u0000" in data or b"\\ud" in data or b"\\uD" in data:
        return None
    try:
        events = DECODER.decode(data)
    except msgspec.ValidationError:
        return None
    attributes = [e.attributes or {} for e in events]
    if any(type(a) is not dict for a in attributes):
        return None
    try:
        values = "\n".join([v for a in attributes for v in a.values()])
    except TypeError:  # an integer value
        return None
    if values and not _VALUES.fullmatch(values + "\n"):
        return None
    micros = []
    for event in events:
        at = event.timestamp
        if at.tzinfo is None:  # no offset: UTC, as parse_instant reads it
            at = at.replace(tzinfo=UTC)
        micros.append((at - EPOCH) // MICROSECOND)
    return (
        ENCODER.encode([e.accountId for e in events]).decode(),
        ENCODER.encode([e.id for e in events]).decode(),
        ENCODER.encode([e.schemaName for e in events]).decode(),
        micros,
        ENCODER.encode(attributes).decode(),
        ENCODER.encode([e.dimensions or {} for e in events]).decode(),
    )


def engine_columns(raw: list[Any]) -> tuple[Any, ...]:
    """The same columns through today's parse_event (input order; the engine then sorts by (account, id))."""
    parsed = [parse_event(r) for r in raw]
    dumps = ingest._dumps
    return (dumps([p.account_handle for p in parsed]), dumps([p.id for p in parsed]),
            dumps([p.schema_name for p in parsed]), [(p.event_time - EPOCH) // MICROSECOND for p in parsed],
            dumps([p.attributes for p in parsed]), dumps([p.dimensions for p in parsed]))


def cpu_us(fn: Callable[[], Any], events: int, rounds: int = 5) -> list[float]:
    """Process CPU µs per event of `fn` (one pass over every batch), `rounds` times."""
    out = []
    for _ in range(rounds):
        started = time.process_time()
        fn()
        out.append((time.process_time() - started) / events * 1e6)
    return out


# --- the engine, stage by stage ---------------------------------------------------------------------

def _cut(meters: tuple[Any, ...], upto: str, with_statuses: bool) -> str:
    """The fast-path storing statement cut after `upto` (input, claim, insert; "rollups" = the whole one)."""
    if upto == "rollups":
        return ingest._statement(meters, False, True, with_statuses)
    ctes = [ingest._input(with_statuses)]
    if upto in ("claim", "insert"):
        ctes.append(ingest._CLAIMED_ALL)
    if upto == "insert":
        ctes.append(ingest._INSERTED_ALL)
    return "WITH " + ",\n".join(ctes) + "\nSELECT count(*), max($8::timestamptz) FROM input"


CUTS = ("input", "claim", "insert", "rollups")
# ingest_events' database steps, in the order a batch runs them (module functions, wrapped for timing)
STEPS = {
    "_resolve_accounts": "resolve accountIds (ids, aliases, billing due, plan coverage)",
    "ensure_session_months": "partitions of the batch's months (checked, made if missing)",
    "_lock_schemas": "schema locks + schema rows + their meters",
    "_register_shapes": "register new attribute/dimension names (usually nothing to write)",
    "lock_watermarks": "billing fences + the watermarks read (joined from a JSON array of the accounts)",
    "hold_fences": "  of which the fences (advisory locks, shared, one per account)",
    "_store": "the storing statement (claim, insert, rollups)",
}


async def _stages(url: str, *, events: int, accounts: int) -> dict[str, Any]:
    db = Database(url, pool_size=2)
    try:
        await dataset.ready_for_ingest(db, accounts)
        warm = await fetch_events(url, 5 * BATCH, accounts=accounts, prefix="warm")
        raw = await fetch_events(url, events, accounts=accounts, prefix="s")
        raw_batches = [raw[i:i + BATCH] for i in range(0, len(raw), BATCH)]
        texts = [orjson.dumps(b) for b in raw_batches]  # the batch as a client sends it
        n = len(raw)

        # Python: parse, validate (pure functions: several rounds, min/median)
        parse = cpu_us(lambda: [json_loads(t) for t in texts], n)
        validate = cpu_us(lambda: [parse_event(e) for b in raw_batches for e in b], n)
        today_cols = cpu_us(lambda: [engine_columns(json_loads(t)) for t in texts], n)
        compiled = cpu_us(lambda: [compiled_columns(t) for t in texts], n) if msgspec else []
        same = None
        if msgspec:
            same = all(compiled_columns(t) == engine_columns(b) for t, b in zip(texts, raw_batches, strict=True))

        # the engine's ingest, each of its database steps timed (client and server CPU) by a wrapper, and the
        # storing statement's arguments kept for the cuts
        captured: list[tuple[Any, ...]] = []
        steps: dict[str, list[float]] = {name: [0.0, 0.0] for name in STEPS}  # client s, server ns
        current = {"pid": 0}
        originals = {name: getattr(ingest, name) for name in STEPS}

        def timed(name: str) -> Callable[..., Any]:
            real = originals[name]

            async def wrapper(*args: Any, **kwargs: Any) -> Any:
                client, server = time.process_time(), backend_cpu_ns(current["pid"])
                result = await real(*args, **kwargs)
                steps[name][0] += time.process_time() - client
                steps[name][1] += backend_cpu_ns(current["pid"]) - server
                if name == "_store":
                    _, meters_, _, columns, now, statuses, _ = args
                    captured.append((meters_, columns, now, statuses))
                return result
            return wrapper

        for name in STEPS:
            setattr(ingest, name, timed(name))
        pids: dict[int, int] = {}

        async def one(batch: list[Any]) -> tuple[float, int]:
            async with db.unit_of_work() as session:
                conn = await raw_connection(session)
                pid = current["pid"] = pids.setdefault(id(conn), conn.get_server_pid())
                server = backend_cpu_ns(pid)
                client = time.process_time()
                report = await ingest.ingest_events(session, batch, RECEIVED)
            spent = time.process_time() - client
            assert not report.rejected, report.rejected[:3]
            return spent, backend_cpu_ns(pid) - server

        try:
            for i in range(0, len(warm), BATCH):
                await one(warm[i:i + BATCH])
            captured.clear()
            for totals in steps.values():
                totals[:] = [0.0, 0.0]
            client_s, server_ns = 0.0, 0
            started = time.perf_counter()
            for batch in raw_batches:
                spent, used = await one(batch)
                client_s += spent
                server_ns += used
            wall = time.perf_counter() - started
        finally:
            for name, real in originals.items():
                setattr(ingest, name, real)

        # the storing statement cut after each part, on the same arguments with fresh ids
        conn = await asyncpg.connect(libpq(url))
        cut_ns: dict[str, list[int]] = {c: [] for c in CUTS}
        try:
            pid = conn.get_server_pid()
            for k, (meters_, columns, now, statuses) in enumerate(captured):
                order = CUTS[k % 4:] + CUTS[:k % 4]
                for cut in order:
                    fresh = ingest._dumps([f"{cut}_{i}" for i in orjson.loads(columns[1])])
                    args = (columns[0], fresh, *columns[2:], now, *([statuses] if statuses else []))
                    sql = _cut(meters_, cut, statuses is not None)
                    before = backend_cpu_ns(pid)
                    async with conn.transaction():
                        await conn.fetchrow(sql, *args)
                    cut_ns[cut].append(backend_cpu_ns(pid) - before)
        finally:
            await conn.close()
    finally:
        await db.dispose()

    def per_event(ns: list[int]) -> float:
        return sum(ns) / n / 1000

    cuts = {c: per_event(cut_ns[c]) for c in CUTS}
    server_total = server_ns / n / 1000
    python_total = client_s / n * 1e6
    med = statistics.median
    print(f"\n{n:,} events, {accounts} accounts, {BATCH} per batch, 1 connection; engine {n / wall:,.0f} events/s "
          f"wall; {machine()}")
    print("CPU µs per event (Python: process CPU, min/median of 5 passes; server: the backend's CPU, all batches)")
    outer = [name for name in STEPS if name != "hold_fences"]  # hold_fences runs inside lock_watermarks
    steps_client = sum(steps[name][0] for name in outer) / n * 1e6
    steps_server = sum(steps[name][1] for name in outer) / n / 1000
    rows = [
        ("Python: parse the batch's JSON text -> dicts (json_text.loads)", f"{min(parse):.2f} / {med(parse):.2f}"),
        ("Python: validate (parse_event)", f"{min(validate):.2f} / {med(validate):.2f}"),
        ("Python: ingest_events' own rest (in-batch dedupe, statuses, columns, unit of work)",
         f"{python_total - med(validate) - steps_client:.2f}"),
        *((f"  step {name}: {label} (client | server)",
           f"{steps[name][0] / n * 1e6:.2f} | {steps[name][1] / n / 1000:.2f}") for name, label in STEPS.items()),
        ("  = ingest_events' Python in all (incl. validate; not parse)", f"{python_total:.2f}"),
        ("server: decode the arguments (input)", f"{cuts['input']:.2f}"),
        ("server: claim (event_ids btree)", f"{cuts['claim'] - cuts['input']:.2f}"),
        ("server: insert (events heap, account-time btree, BRIN)", f"{cuts['insert'] - cuts['claim']:.2f}"),
        ("server: rollups (values, hourly + daily rollups, totals)", f"{cuts['rollups'] - cuts['insert']:.2f}"),
        ("  = the storing statement, replayed (with BEGIN/COMMIT)", f"{cuts['rollups']:.2f}"),
        ("server: the batch's other work (BEGIN/COMMIT, the steps above but _store)",
         f"{server_total - steps['_store'][1] / n / 1000:.2f}"),
        ("  = server in all", f"{server_total:.2f}"),
        ("today's parse + validate + the statement's event columns (orjson, parse_event, orjson dumps)",
         f"{min(today_cols):.2f} / {med(today_cols):.2f}"),
    ]
    if msgspec:
        rows.append(("compiled: msgspec decode into structs + batch checks + the same columns",
                     f"{min(compiled):.2f} / {med(compiled):.2f}"))
        rows.append(("  columns identical to today's on every batch", "yes" if same else "NO"))
    else:
        rows.append(("compiled: msgspec not installed (pip install msgspec)", "-"))
    for label, value in rows:
        print(f"  {label:<100} {value:>14}")
    return {"events": n, "events_per_s": n / wall, "parse": parse, "validate": validate,
            "python_total": python_total, "cuts": cuts, "server_total": server_total,
            "steps": {k: {"client_us": c / n * 1e6, "server_us": ns / n / 1000} for k, (c, ns) in steps.items()},
            "steps_client_us": steps_client, "steps_server_us": steps_server,
            "today_columns": today_cols, "compiled_columns": compiled, "identical": same}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--accounts", type=int, default=1000)
    args = parser.parse_args()
    tune_gc()  # as every engine entry point does
    with scratch_database("stages") as url:
        result = asyncio.run(_stages(url, events=args.events, accounts=args.accounts))
    path = write_json(f"ingest-stages-{datetime.now(UTC):%Y%m%dT%H%M%S}.json", {"machine": machine(), **result})
    print(f"results: {path}")


if __name__ == "__main__":
    main()
