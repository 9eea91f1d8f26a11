"""A meter states what negative values mean to it: negativeValues ALLOW (default: metered as they are,
e.g. corrections) or REJECT (ingestion rejects the event, NEGATIVE_VALUE, and stores nothing of it).
Through create_usage_meter, ingest_event, ingest_batch_events and the bulk import."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from conftest import row_counts
from helpers import call, call_error, on_plan
from togai_engine.events.bulk import import_events
from togai_engine.events.ingest import RejectedEvent
from togai_engine.meters.rollups import verify_rollups
from togai_engine.meters.usage import meter_quantities

JAN = datetime(2026, 1, 1, tzinfo=UTC)
FEB = datetime(2026, 2, 1, tzinfo=UTC)


def ev(event_id: str, tokens: str, schema: str = "llm", **more_attributes: str) -> dict[str, Any]:
    return {"id": event_id, "schemaName": schema, "timestamp": "2026-01-05T10:00:00Z", "accountId": "acc",
            "attributes": {"tokens": tokens, **more_attributes}}


async def setup(client: Any, negative_values: str | None = None, name: str = "tokens",
                computation: Any = "tokens") -> dict[str, Any]:
    await call(client, "create_customer", id="c", name="C", account={"id": "acc", "name": "A", **await on_plan(client)})
    return await meter(client, negative_values, name, computation)


async def meter(client: Any, negative_values: str | None, name: str, computation: Any = "tokens") -> dict[str, Any]:
    return await call(client, "create_usage_meter", name=name, eventSchemaName="llm", aggregation="SUM",
                      computations=[{"computation": computation}],
                      **({"negativeValues": negative_values} if negative_values else {}))


async def quantities(db: Any) -> dict[str, Decimal]:
    async with db.unit_of_work() as session:
        found = await meter_quantities(session, start=JAN, end=FEB)
    return {meter_id: value for (_, meter_id), value in found.items()}


async def test_a_reject_meter_rejects_a_negative_value_and_stores_nothing_of_it(client, db):
    created = await setup(client, "REJECT")
    assert created["negativeValues"] == "REJECT"
    listed = (await call(client, "list_usage_meters"))["data"]
    assert [m["negativeValues"] for m in listed] == ["REJECT"]
    await call(client, "ingest_event", event=ev("first", "10"))
    before = await row_counts(db)

    # one event alone: a tool error naming the attribute, the meter and the fix; nothing stored
    error = await call_error(client, "ingest_event", event=ev("neg", "-5", other="1"))
    assert "event.attributes.tokens" in error and "[NEGATIVE_VALUE]" in error
    assert f"usage meter 'tokens' ({created['id']}) is -5 (from attributes.tokens = -5)" in error
    assert "negativeValues REJECT" in error and "send a value of 0 or more" in error
    assert "nothing was stored" in error
    after = await row_counts(db)
    assert {k: v for k, v in after.items() if k != "audit_log"} == {k: v for k, v in before.items() if k != "audit_log"}
    schema = (await call(client, "list_event_schemas"))["data"][0]
    assert [a["name"] for a in schema["attributes"]] == ["tokens"]  # the rejected event taught it nothing

    # in a batch: only that event is rejected, the others are stored
    batch = await call(client, "ingest_batch_events", events=[ev("a", "5"), ev("neg", "-5"), ev("b", "0")])
    assert (batch["accepted"], batch["rejected"], batch["duplicates"]) == (2, 1, 0)
    [rejected] = batch["rejectedEvents"]
    assert (rejected["index"], rejected["eventId"], rejected["code"], rejected["field"]) == (
        1, "neg", "NEGATIVE_VALUE", "attributes.tokens")
    stored = await row_counts(db)
    assert (stored["events"], stored["event_ids"]) == (after["events"] + 2, after["event_ids"] + 2)
    assert await quantities(db) == {created["id"]: Decimal(15)}  # 10 + 5 + 0

    # it claimed nothing: fixed and sent again with the same id, it is stored
    fixed = await call(client, "ingest_event", event=ev("neg", "5"))
    assert fixed["status"] == "ACCEPTED"
    assert await quantities(db) == {created["id"]: Decimal(20)}


async def test_an_allow_meter_keeps_metering_negative_values_as_corrections(client, db):
    created = await setup(client)  # default
    assert created["negativeValues"] == "ALLOW"
    batch = await call(client, "ingest_batch_events", events=[ev("a", "10"), ev("correction", "-5")])
    assert (batch["accepted"], batch["rejected"]) == (2, 0)
    assert await quantities(db) == {created["id"]: Decimal(5)}  # 10 - 5


async def test_an_event_is_rejected_when_any_meter_of_its_schema_rejects_its_value(client, db):
    allow = await setup(client, "ALLOW", "raw")
    # REJECT on a computed value: 100 - refund; a matcher-less meter over two attributes
    net = await meter(client, "REJECT", "net", {"-": [{"var": "attributes.tokens"}, {"var": "attributes.refund"}]})
    other = await call(client, "create_usage_meter", name="images", eventSchemaName="img", aggregation="SUM",
                       computations=[{"computation": "n"}])
    batch = await call(client, "ingest_batch_events", events=[
        ev("ok", "100", refund="30"),  # net 70
        ev("over", "100", refund="130"),  # net -30: rejected, for the ALLOW meter too
        {"id": "img", "schemaName": "img", "timestamp": "2026-01-05T10:00:00Z", "accountId": "acc",
         "attributes": {"n": "-2"}},  # another schema: no REJECT meter there
    ])
    assert (batch["accepted"], batch["rejected"]) == (2, 1)
    [rejected] = batch["rejectedEvents"]
    assert (rejected["index"], rejected["field"]) == (1, "attributes")  # the value comes from two attributes
    assert f"'net' ({net['id']}) is -30 (from attributes.tokens = 100, attributes.refund = 130)" in rejected["message"]
    assert await quantities(db) == {allow["id"]: Decimal(100), net["id"]: Decimal(70), other["id"]: Decimal(-2)}
    async with db.unit_of_work() as session:
        assert await verify_rollups(session) == []


async def test_a_negative_event_stored_before_the_reject_meter_existed_is_a_duplicate_on_retry(client, db):
    allow = await setup(client)
    await call(client, "ingest_event", event=ev("old", "-5"))
    strict = await meter(client, "REJECT", "strict")
    # the new meter counts what is stored (its backfill), negative values included
    assert await quantities(db) == {allow["id"]: Decimal(-5), strict["id"]: Decimal(-5)}
    again = await call(client, "ingest_event", event=ev("old", "-5"))
    assert again["status"] == "DUPLICATE"  # it is stored: the retry is not rejected
    new = await call(client, "ingest_batch_events", events=[ev("old", "-5"), ev("new", "-5"), ev("new", "-5")])
    assert (new["duplicates"], new["rejected"], new["accepted"]) == (1, 2, 0)
    assert [r["index"] for r in new["rejectedEvents"]] == [1, 2]
    # an id sent twice in a batch: the first is rejected and claims nothing, so the second is stored
    twice = await call(client, "ingest_batch_events", events=[ev("twice", "-1"), ev("twice", "4")])
    assert (twice["rejected"], twice["accepted"], twice["duplicates"]) == (1, 1, 0)
    assert await quantities(db) == {allow["id"]: Decimal(-1), strict["id"]: Decimal(-1)}  # -5 + 4


async def test_the_rule_is_part_of_the_meters_definition(client):
    first = await setup(client, "REJECT")
    same = await meter(client, "REJECT", "tokens")  # a retry
    assert same["id"] == first["id"]
    error = await call_error(client, "create_usage_meter", name="tokens", eventSchemaName="llm", aggregation="SUM",
                             computations=[{"computation": "tokens"}])
    assert "different negativeValues" in error
    bad = await call_error(client, "create_usage_meter", name="x", eventSchemaName="llm", aggregation="SUM",
                           computations=[{"computation": "tokens"}], negativeValues="SOMETIMES")
    assert "negativeValues" in bad


async def test_the_bulk_import_rejects_negative_values_of_a_reject_meter(client, db, clock):
    created = await setup(client, "REJECT")
    rejected: list[tuple[int, RejectedEvent]] = []
    summary = await import_events(db, [ev(f"e{n}", str(n - 2)) for n in range(5)], clock=clock, batch_size=2,
                                  on_rejected=lambda position, r: rejected.append((position, r)))
    # values -2, -1, 0, 1, 2: the first two are rejected, lines 0 and 1
    assert (summary.read, summary.accepted, summary.rejected) == (5, 3, 2)
    assert [(position, r.code, r.field) for position, r in rejected] == [
        (0, "NEGATIVE_VALUE", "attributes.tokens"), (1, "NEGATIVE_VALUE", "attributes.tokens")]
    assert await quantities(db) == {created["id"]: Decimal(3)}  # 0 + 1 + 2


async def test_a_repeated_id_stored_instead_of_its_rejected_first_gets_its_months_partition(client, db):
    await setup(client, "REJECT")
    later = {**ev("x", "4"), "timestamp": "2035-06-05T10:00:00Z"}  # a month no other test makes a partition for
    batch = await call(client, "ingest_batch_events", events=[ev("x", "-1"), later, ev("y", "2")])
    # the first "x" is rejected; its repeat is stored in its place (June 2035 gets its partition); "y" too
    assert (batch["accepted"], batch["rejected"], batch["duplicates"]) == (2, 1, 0)
    assert (await row_counts(db))["events"] == 2
