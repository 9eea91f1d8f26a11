"""A call that fails leaves nothing behind: ingestion runs inside the caller's transaction."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from conftest import row_counts
from helpers import call, on_plan
from togai_engine.events.ingest import ingest_events
from togai_engine.meters.schemas import UsageMeterCreate
from togai_engine.meters.service import create_usage_meter

NOW = datetime(2026, 1, 10, tzinfo=UTC)
EVENTS = [{"id": f"e{i}", "schemaName": "api_call", "timestamp": "2026-01-05T10:00:00Z", "accountId": "acc_1",
           "attributes": {"tokens": i}} for i in range(3)]


async def test_a_rolled_back_ingest_claims_no_id_and_stores_nothing(client, db):
    await call(client, "create_customer", id="c", name="C",
               account={"id": "acc_1", "name": "A", **await on_plan(client)})
    await call(client, "create_usage_meter", name="tokens", eventSchemaName="api_call", aggregation="SUM",
               computations=[{"computation": "tokens", "order": 1}])
    before = await row_counts(db)
    with pytest.raises(RuntimeError):
        async with db.unit_of_work() as session:
            report = await ingest_events(session, EVENTS, NOW)
            assert report.count("ACCEPTED") == 3
            raise RuntimeError("the caller fails after ingesting, before commit")
    assert await row_counts(db) == before
    result = await call(client, "ingest_batch_events", events=EVENTS)
    assert (result["accepted"], result["duplicates"]) == (3, 0)  # the ids were never claimed


async def test_a_rolled_back_meter_creation_leaves_no_meter_and_no_rollups(client, db):
    await call(client, "create_customer", id="c", name="C",
               account={"id": "acc_1", "name": "A", **await on_plan(client)})
    await call(client, "ingest_batch_events", events=EVENTS)
    before = await row_counts(db)
    with pytest.raises(RuntimeError):
        async with db.unit_of_work() as session:
            await create_usage_meter(session, UsageMeterCreate(name="calls", eventSchemaName="api_call",
                                                               aggregation="COUNT"), NOW)
            raise RuntimeError("fails before commit")
    assert await row_counts(db) == before
