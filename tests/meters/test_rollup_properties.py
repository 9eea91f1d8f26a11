"""Property: after ANY sequence of batches (duplicates, late events, meters created midway, cycles
closed midway), the rollups equal a recompute from raw events, every quantity equals an independent
Python model, and replaying everything changes nothing."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from conftest import TABLES, row_counts
from helpers import call
from togai_engine.meters.rollups import verify_rollups
from togai_engine.meters.usage import meter_quantities
from togai_engine.store.database import raw_connection

BASE = datetime(2026, 1, 5, tzinfo=UTC)
ACCOUNTS = ("acc_1", "acc_2")
METERS: dict[str, tuple[str, list[dict[str, Any]]]] = {
    "calls": ("COUNT", []),
    "tokens": ("SUM", [{"computation": "tokens", "order": 1}]),
    "peak": ("MAX", [{"computation": "tokens", "order": 1}]),
    "last": ("LATEST", [{"computation": "tokens", "order": 1}]),
    "users": ("UNIQUE_COUNT", [{"computation": "dimensions.user", "order": 1}]),
}


@dataclass(frozen=True)
class Sent:
    id: str | None
    account: str
    minute: int
    micros: int
    tokens: Decimal | None
    user: str | None

    @property
    def at(self) -> datetime:
        return BASE + timedelta(minutes=self.minute, microseconds=self.micros)

    def payload(self) -> dict[str, Any]:
        event: dict[str, Any] = {
            "schemaName": "llm_call",
            "timestamp": self.at.isoformat(),
            "accountId": self.account,
            "attributes": [] if self.tokens is None else [{"name": "tokens", "value": str(self.tokens)}],
            "dimensions": {} if self.user is None else {"user": self.user},
        }
        if self.id is not None:
            event["id"] = self.id
        return event

    def key(self) -> tuple[Any, ...]:
        # no id: the engine derives one from the content, so identical content is the same event
        return (self.account, self.id) if self.id is not None else (self.account, self.at, self.tokens, self.user)


GIVEN_IDS = [f"e{i}" for i in range(8)]
sent_events = st.builds(
    Sent,
    id=st.one_of(st.none(), st.sampled_from(GIVEN_IDS)),
    account=st.sampled_from(ACCOUNTS),
    minute=st.sampled_from([0, 1, 59, 60, 61, 119, 600, 1439, 1440, 2000]),  # same hours, hour edges, days
    micros=st.sampled_from([0, 0, 1, 500_000]),
    tokens=st.one_of(st.none(), st.decimals(min_value=-5, max_value=1000, places=3, allow_nan=False)),
    user=st.one_of(st.none(), st.sampled_from(["ann", "bob", "cid"])),
)
operations = st.lists(
    st.one_of(
        st.tuples(st.just("batch"), st.lists(sent_events, min_size=1, max_size=6)),
        st.tuples(st.just("meter"), st.sampled_from(sorted(METERS))),
        st.tuples(st.just("close"), st.sampled_from([30, 90, 1440])),  # acc_1's cycle closes before minute N
    ),
    min_size=1,
    max_size=7,
)
windows = st.tuples(st.integers(0, 2100), st.integers(1, 2200))


def model(
    stored: list[tuple[Sent, bool]], aggregation: str, account: str, start: datetime, end: datetime
) -> Decimal | None:
    """The quantity computed directly from the definition, on the billable events."""
    events = [e for e, billable in stored if billable and e.account == account and start <= e.at < end]
    valued = [e for e in events if e.tokens is not None]
    if aggregation == "COUNT":
        return Decimal(len(events)) if events else None
    if aggregation == "UNIQUE_COUNT":
        users = {e.user for e in events if e.user is not None}
        return Decimal(len(users)) if users else None
    if not valued:
        return None
    if aggregation == "SUM":
        return sum((e.tokens for e in valued), Decimal(0))  # type: ignore[misc]
    if aggregation == "MAX":
        return max(e.tokens for e in valued)  # type: ignore[type-var]
    newest = max(valued, key=lambda e: (e.at, derived_or_given_id(e).encode()))
    return newest.tokens


ID_OF: dict[tuple[Any, ...], str] = {}


def derived_or_given_id(event: Sent) -> str:
    return event.id if event.id is not None else ID_OF[event.key()]


async def reset(db) -> None:
    async with db.engine.begin() as conn:
        raw = (await conn.get_raw_connection()).driver_connection
        await raw.execute(f"TRUNCATE {TABLES} RESTART IDENTITY CASCADE")


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(early=st.sets(st.sampled_from(sorted(METERS))), ops=operations, window=windows)
async def test_rollups_and_quantities_match_raw_events_after_any_history(client, db, early, ops, window):
    await reset(db)
    for account in ACCOUNTS:
        await call(client, "create_customer", id=f"c_{account}", name="C", account={"id": account, "name": "A"})
    stored: list[tuple[Sent, bool]] = []
    seen: set[tuple[Any, ...]] = set()
    closed_before: datetime | None = None
    meter_ids: dict[str, str] = {}
    batches: list[list[Sent]] = []
    for kind, arg in [("meter", name) for name in sorted(early)] + ops:
        if kind == "meter":
            if arg in meter_ids:
                continue
            aggregation, computations = METERS[arg]
            created = await call(
                client,
                "create_usage_meter",
                name=arg,
                eventSchemaName="llm_call",
                aggregation=aggregation,
                computations=computations,
            )
            meter_ids[arg] = created["id"]
        elif kind == "close":
            moment = BASE + timedelta(minutes=arg)
            closed_before = max(closed_before or moment, moment)
            async with db.unit_of_work() as session:
                await (await raw_connection(session)).execute(
                    "INSERT INTO billing_watermarks (account_id, closed_before) VALUES ('acc_1', $1) "
                    "ON CONFLICT (account_id) DO UPDATE SET closed_before = $1",
                    closed_before,
                )
        else:
            batches.append(arg)
            result = await call(client, "ingest_batch_events", events=[e.payload() for e in arg])
            assert result["rejected"] == 0
            new = 0
            for event in arg:
                if event.key() in seen:
                    continue
                seen.add(event.key())
                new += 1
                billable = not (event.account == "acc_1" and closed_before is not None and event.at < closed_before)
                stored.append((event, billable))
            # no account has a price plan: what is not in a closed cycle is NOT_BILLED_NO_PLAN, and metered
            assert result["accepted"] + result["notBilled"] + result["notBilledNoPlan"] == new
            assert result["duplicates"] == len(arg) - new
    for name in METERS:  # meters not created during the history are created at the end (backfill)
        if name not in meter_ids:
            aggregation, computations = METERS[name]
            meter_ids[name] = (
                await call(
                    client,
                    "create_usage_meter",
                    name=name,
                    eventSchemaName="llm_call",
                    aggregation=aggregation,
                    computations=computations,
                )
            )["id"]
    listed = await call(client, "list_events", pageSize=100)
    for item in listed["data"]:
        if item["id"] in GIVEN_IDS:  # only derived ids are looked up by content (a given-id event may share it)
            continue
        tokens = Decimal(item["attributes"][0]["value"]) if item["attributes"] else None
        at = datetime.fromisoformat(item["timestamp"])
        user = item["dimensions"].get("user")
        ID_OF[(item["accountId"], at, tokens, user)] = item["id"]
    assert len(listed["data"]) == len(stored)

    async def check() -> None:
        async with db.unit_of_work() as session:
            assert await verify_rollups(session) == []
            start = BASE + timedelta(minutes=min(window))
            end = start + timedelta(minutes=max(window[1], 1), seconds=7)
            for period_start, period_end in ((BASE - timedelta(days=1), BASE + timedelta(days=3)), (start, end)):
                got = await meter_quantities(session, start=period_start, end=period_end)
                for name, meter_id in meter_ids.items():
                    for account in ACCOUNTS:
                        expected = model(stored, METERS[name][0], account, period_start, period_end)
                        assert got.get((account, meter_id)) == expected, (name, account, period_start, period_end)

    await check()
    counts = await row_counts(db)
    for batch in batches:  # replaying every batch: all duplicates, nothing changes
        result = await call(client, "ingest_batch_events", events=[e.payload() for e in batch])
        assert result["duplicates"] == len(batch)
        assert result["accepted"] == result["notBilled"] == result["notBilledNoPlan"] == 0
    after = await row_counts(db)
    assert {k: v for k, v in after.items() if k != "audit_log"} == {k: v for k, v in counts.items() if k != "audit_log"}
    await check()
