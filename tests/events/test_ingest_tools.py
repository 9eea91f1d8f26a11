"""ingest_event / ingest_batch_events / list_events / list_event_schemas through a real MCP client."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import text

from conftest import row_counts
from helpers import call, call_error, on_plan
from togai_engine.events.ingest import FAST_PATH_MIN_EVENTS
from togai_engine.meters.rollups import verify_rollups
from togai_engine.meters.usage import meter_quantities

JAN = datetime(2026, 1, 1, tzinfo=UTC)
FEB = datetime(2026, 2, 1, tzinfo=UTC)


async def open_account(client, account_id: str = "acc_1", aliases: list[str] | None = None) -> None:
    await call(client, "create_customer", id=f"cust_{account_id}", name="Acme",
               account={"id": account_id, "name": "Acme main", "aliases": aliases or [], **await on_plan(client)})


async def tokens_meter(client) -> str:
    meter = await call(client, "create_usage_meter", name="tokens", eventSchemaName="api_call", aggregation="SUM",
                       computations=[{"computation": "tokens", "order": 1}])
    return meter["id"]


def ev(event_id: str | None, tokens: str | float = "1", at: str = "2026-01-05T10:00:00Z", account: str = "acc_1",
       schema: str = "api_call", **extra: Any) -> dict[str, Any]:
    event = {"schemaName": schema, "timestamp": at, "accountId": account,
             "attributes": [{"name": "tokens", "value": tokens}], **extra}
    if event_id is not None:
        event["id"] = event_id
    return event


async def quantities(db, start: datetime = JAN, end: datetime = FEB) -> dict[tuple[str, str], Decimal]:
    async with db.unit_of_work() as session:
        return await meter_quantities(session, start=start, end=end)


async def rollups_are_exact(db) -> bool:
    async with db.unit_of_work() as session:
        return await verify_rollups(session) == []


async def test_an_event_is_accepted_through_an_alias_and_feeds_its_meter(client, db):
    await open_account(client, aliases=["acme"])
    meter_id = await tokens_meter(client)
    result = await call(client, "ingest_event", event=ev("e1", tokens="12.5", account="acme",
                                                         dimensions={"region": "eu"}))
    assert result["status"] == "ACCEPTED"
    assert result["eventId"] == "e1" and result["accountId"] == "acc_1"
    assert result["usageMeters"] == [meter_id]
    assert result["warnings"] == []
    assert await quantities(db) == {("acc_1", meter_id): Decimal("12.5")}


async def test_a_retry_with_the_same_id_is_a_duplicate_counted_once(client, db):
    await open_account(client, aliases=["acme"])
    meter_id = await tokens_meter(client)
    await call(client, "ingest_event", event=ev("e1", tokens="5"))
    # the retry goes through the alias and even carries other content: the id decides
    again = await call(client, "ingest_event", event=ev("e1", tokens="7", account="acme"))
    assert again["status"] == "DUPLICATE"
    assert "counted once" in again["message"]
    assert again["usageMeters"] == []
    assert await quantities(db) == {("acc_1", meter_id): Decimal("5")}


async def test_without_an_id_an_identical_retry_is_a_duplicate(client, db):
    await open_account(client)
    meter_id = await tokens_meter(client)
    first = await call(client, "ingest_event", event=ev(None, tokens="3"))
    assert first["eventId"].startswith("evt_") and first["status"] == "ACCEPTED"
    # same content, timestamp written with another offset: the same derived id
    retry = await call(client, "ingest_event", event=ev(None, tokens="3.0", at="2026-01-05T11:00:00+01:00"))
    assert (retry["eventId"], retry["status"]) == (first["eventId"], "DUPLICATE")
    other = await call(client, "ingest_event", event=ev(None, tokens="4"))
    assert other["status"] == "ACCEPTED" and other["eventId"] != first["eventId"]
    assert await quantities(db) == {("acc_1", meter_id): Decimal("7")}  # 3 + 4


async def test_ids_are_unique_per_account(client, db):
    await open_account(client, "acc_1")
    await open_account(client, "acc_2")
    meter_id = await tokens_meter(client)
    result = await call(client, "ingest_batch_events", events=[ev("same", account="acc_1"),
                                                               ev("same", account="acc_2")])
    assert (result["accepted"], result["duplicates"]) == (2, 0)
    assert await quantities(db) == {("acc_1", meter_id): Decimal(1), ("acc_2", meter_id): Decimal(1)}


async def test_every_rejection_reason_is_reported_per_event_and_valid_events_are_stored(client, db):
    await open_account(client)
    await open_account(client, "acc_old")
    await call(client, "update_account", accountId="acc_old", status="ARCHIVED")
    meter_id = await tokens_meter(client)
    batch: list[Any] = [
        ev("ok-1", tokens="2"),                                                     # 0 accepted
        "not an object",                                                            # 1
        {**ev("r2"), "accountID": "acc_1"},                                         # 2
        {k: v for k, v in ev("r3").items() if k != "timestamp"},                    # 3
        ev("r4", account="nobody"),                                                 # 4
        ev("r5", account="acc_old"),                                                # 5
        ev("r6", tokens="NaN"),                                                     # 6
        ev("r7", tokens="Infinity"),                                                # 7
        ev("r8", tokens="12,5"),                                                    # 8
        ev("r9", at="next tuesday"),                                                # 9
        ev("r10", schema="s" * 51),                                                 # 10
        {**ev("r11"), "attributes": [{"name": f"a{i}", "value": "1"} for i in range(11)]},  # 11
        {**ev("r12"), "dimensions": {"region": 5}},                                 # 12
        {**ev("r13"), "id": ""},                                                    # 13
        ev("ok-2", tokens="3"),                                                     # 14 accepted
    ]
    result = await call(client, "ingest_batch_events", events=batch)
    codes = {r["index"]: r["code"] for r in result["rejectedEvents"]}
    assert codes == {
        1: "INVALID_EVENT", 2: "UNKNOWN_FIELD", 3: "MISSING_FIELD", 4: "UNKNOWN_ACCOUNT", 5: "ACCOUNT_ARCHIVED",
        6: "INVALID_VALUE", 7: "INVALID_VALUE", 8: "INVALID_VALUE", 9: "INVALID_TIMESTAMP",
        10: "INVALID_SCHEMA_NAME", 11: "TOO_MANY_ATTRIBUTES", 12: "INVALID_DIMENSION", 13: "INVALID_ID",
    }
    assert (result["accepted"], result["duplicates"], result["rejected"]) == (2, 0, 13)
    by_index = {r["index"]: r for r in result["rejectedEvents"]}
    assert by_index[5]["message"].startswith("account 'acc_old' is ARCHIVED")
    assert by_index[4]["eventId"] == "r4" and by_index[4]["field"] == "accountId"
    assert by_index[6]["field"] == "attributes[0].value"
    assert await quantities(db) == {("acc_1", meter_id): Decimal(5)}  # 2 + 3
    # a rejected event claimed nothing: fixed and resent with the same id, it is accepted
    fixed = await call(client, "ingest_event", event=ev("r6", tokens="10"))
    assert fixed["status"] == "ACCEPTED"
    assert await quantities(db) == {("acc_1", meter_id): Decimal(15)}  # 5 + 10


async def test_a_number_whose_float_form_has_more_than_15_digits_is_refused_not_stored(client, db):
    await open_account(client)
    meter_id = await tokens_meter(client)
    result = await call(client, "ingest_batch_events", events=[
        ev("short", tokens=0.1),                        # 0: shortest form 0.1, exact
        ev("fifteen", tokens=1234567.12345678),         # 1: 15 significant digits, exact
        ev("noise", tokens=0.1 + 0.2),                  # 2: 0.30000000000000004, 17 digits: refused
        ev("rounded", tokens=0.12345678901234567890),   # 3: parsed as the float 0.12345678901234568: refused
        ev("text", tokens="0.12345678901234567890"),    # 4: as a string, every digit is kept
    ])
    assert {r["index"]: r["code"] for r in result["rejectedEvents"]} == {2: "INVALID_VALUE", 3: "INVALID_VALUE"}
    assert all("decimal string" in r["message"] and r["field"] == "attributes[0].value"
               for r in result["rejectedEvents"])
    # 0.1 + 1234567.12345678 + 0.12345678901234567890 = 1234567.34691356901234567890
    assert await quantities(db) == {("acc_1", meter_id): Decimal("1234567.3469135690123456789")}
    # a meter's computation: the same rule for numbers in an expression given as an object
    error = await call_error(client, "create_usage_meter", name="scaled", eventSchemaName="api_call",
                             aggregation="SUM",
                             computations=[{"computation": {"*": [{"var": "attributes.tokens"}, 0.1 + 0.2]},
                                            "order": 1}])
    assert "0.30000000000000004" in error and "JSON text" in error


async def test_a_rejected_single_event_is_an_error_naming_field_and_code_and_stores_nothing(client, db):
    await open_account(client)
    await open_account(client, "acc_old")
    await call(client, "update_account", accountId="acc_old", status="ARCHIVED")
    before = await row_counts(db)
    error = await call_error(client, "ingest_event", event=ev("x", account="ghost"))
    assert "event.accountId" in error and "[UNKNOWN_ACCOUNT]" in error and "nothing was stored" in error
    error = await call_error(client, "ingest_event", event=ev("x", account="acc_old"))
    assert "[ACCOUNT_ARCHIVED]" in error and "ARCHIVED" in error
    error = await call_error(client, "ingest_event", event=ev("x", tokens="-Infinity"))
    assert "event.attributes[0].value" in error and "[INVALID_VALUE]" in error
    error = await call_error(client, "ingest_event", event={"schemaName": "api_call"})
    assert "[MISSING_FIELD]" in error
    assert await row_counts(db) == before


async def test_duplicates_within_one_batch_and_across_batches_count_once(client, db):
    await open_account(client, aliases=["acme"])
    meter_id = await tokens_meter(client)
    first = await call(client, "ingest_batch_events", events=[
        ev("a", tokens="1"), ev("b", tokens="2"), ev("a", tokens="100"), ev("b", tokens="200", account="acme")])
    assert (first["accepted"], first["duplicates"], first["duplicateIndexes"]) == (2, 2, [2, 3])
    second = await call(client, "ingest_batch_events", events=[ev("b", tokens="2"), ev("c", tokens="4")])
    assert (second["accepted"], second["duplicates"], second["duplicateIndexes"]) == (1, 1, [0])
    assert await quantities(db) == {("acc_1", meter_id): Decimal(7)}  # a=1 + b=2 + c=4
    listed = await call(client, "list_events", accountId="acme")
    assert sorted(e["id"] for e in listed["data"]) == ["a", "b", "c"]


async def test_a_large_batch_with_stored_ids_falls_back_to_claiming_and_counts_each_once(client, db, monkeypatch):
    # A batch of FAST_PATH_MIN_EVENTS or more first tries a plain INSERT of its ids; a stored id undoes
    # that attempt (a savepoint) and the claiming statement stores only the new events.
    from togai_engine.events import ingest

    forms: list[bool] = []  # the statement forms run, in order: True = the plain INSERT (fast path)
    statement = ingest._statement
    monkeypatch.setattr(ingest, "_statement", lambda meters, report, fast, statuses: forms.append(fast) or statement(
        meters, report, fast, statuses))
    await open_account(client)
    meter_id = await tokens_meter(client)
    size = FAST_PATH_MIN_EVENTS + 50
    first = await call(client, "ingest_batch_events", events=[ev(f"e{n}", tokens=str(n)) for n in range(size)])
    assert (first["accepted"], first["duplicates"]) == (size, 0)
    assert forms == [True]  # all new: the plain INSERT path only
    # the next batch repeats e0..e4 (indexes 0..4) and brings `size - 5` new ids
    second = await call(client, "ingest_batch_events", events=[
        ev(f"e{n}", tokens="1000") for n in range(5)] + [ev(f"n{n}", tokens="1") for n in range(size - 5)])
    assert (second["accepted"], second["duplicates"], second["duplicateIndexes"]) == (size - 5, 5, [0, 1, 2, 3, 4])
    assert forms == [True, True, False]  # tried the plain INSERT, undone, then the claiming form
    # 0 + 1 + ... + (size - 1) = size * (size - 1) / 2 from the first batch, + (size - 5) x 1 from the second
    expected = Decimal(size * (size - 1) // 2 + size - 5)
    assert await quantities(db) == {("acc_1", meter_id): expected}
    assert await rollups_are_exact(db)


async def test_a_malformed_request_is_one_error_and_stores_nothing(client, db):
    await open_account(client)
    await tokens_meter(client)
    before = await row_counts(db)
    too_many = [ev(f"e{i}") for i in range(1001)]
    error = await call_error(client, "ingest_batch_events", events=too_many)
    assert "1001 events" in error and "1 to 1000" in error and "nothing was stored" in error
    assert "must be a list" in await call_error(client, "ingest_batch_events", events={"not": "a list"})
    assert "0 events" in await call_error(client, "ingest_batch_events", events=[])
    assert "event" in await call_error(client, "ingest_event")  # the event argument is required
    assert await row_counts(db) == before


async def test_schemas_are_registered_on_first_sight_and_unmetered_events_warn(client, db):
    await open_account(client)
    result = await call(client, "ingest_batch_events", events=[
        ev("e1", schema="gpu_seconds", dimensions={"region": "eu"}),
        {**ev("e2", schema="gpu_seconds"), "attributes": [{"name": "seconds", "value": "9", "unit": "Seconds"}],
         "dimensions": {"gpu": "a100"}},
    ])
    assert result["accepted"] == 2
    assert len(result["warnings"]) == 1 and "'gpu_seconds'" in result["warnings"][0]
    assert "not billed" in result["warnings"][0]
    schemas = (await call(client, "list_event_schemas"))["data"]
    assert [(s["name"], s["attributes"], s["dimensions"], s["usageMeterIds"]) for s in schemas] == [
        ("gpu_seconds", [{"name": "seconds", "unit": "Seconds"}, {"name": "tokens", "unit": None}],
         ["gpu", "region"], []),
    ]
    # a later event teaches the unit of tokens; known units are kept
    await call(client, "ingest_event", event={**ev("e3", schema="gpu_seconds"), "attributes": [
        {"name": "tokens", "value": "1", "unit": "Tokens"}, {"name": "seconds", "value": "1", "unit": "Minutes"}]})
    schema = (await call(client, "list_event_schemas"))["data"][0]
    assert schema["attributes"] == [{"name": "seconds", "unit": "Seconds"}, {"name": "tokens", "unit": "Tokens"}]
    meter = await call(client, "create_usage_meter", name="gpu", eventSchemaName="gpu_seconds", aggregation="COUNT")
    assert (await call(client, "list_event_schemas"))["data"][0]["usageMeterIds"] == [meter["id"]]
    assert (await call(client, "ingest_event", event=ev("e4", schema="gpu_seconds")))["warnings"] == []


async def test_one_batch_registers_every_name_and_unit_its_events_bring(client, db):
    # A batch looks at a schema's names again only when an event's differ from the last looked at: a second
    # event differing only by a new dimension (s1), a unit (s2) or a new attribute (s3) still registers it,
    # with other schemas' events between.
    await open_account(client)
    await call(client, "ingest_batch_events", events=[
        ev("a", schema="s1", dimensions={"region": "eu"}),
        ev("b", schema="s2"),
        ev("c", schema="s3"),
        ev("d", schema="s1", dimensions={"region": "us", "gpu": "a100"}),
        {**ev("e", schema="s2"), "attributes": [{"name": "tokens", "value": "2", "unit": "Tokens"}]},
        {**ev("f", schema="s3"), "attributes": [{"name": "tokens", "value": "1"}, {"name": "cached", "value": "1"}]},
    ])
    schemas = (await call(client, "list_event_schemas"))["data"]
    assert [(s["name"], s["attributes"], s["dimensions"]) for s in schemas] == [
        ("s1", [{"name": "tokens", "unit": None}], ["gpu", "region"]),
        ("s2", [{"name": "tokens", "unit": "Tokens"}], []),
        ("s3", [{"name": "cached", "unit": None}, {"name": "tokens", "unit": None}], []),
    ]
    # the last event looked at is per schema: a schema whose only event has the names of the one before it
    # (another schema's) is registered too
    await call(client, "ingest_batch_events", events=[ev("g", schema="s4"), ev("h", schema="s5")])
    assert [s["name"] for s in (await call(client, "list_event_schemas"))["data"]] == ["s1", "s2", "s3", "s4", "s5"]


async def test_late_events_land_in_their_own_hour(client, db):
    await open_account(client)
    meter_id = await tokens_meter(client)
    await call(client, "ingest_batch_events", events=[ev("now-1", "10", at="2026-01-20T10:15:00Z"),
                                                      ev("now-2", "20", at="2026-01-20T10:45:00Z")])
    # arrives later, happened two weeks earlier
    late = await call(client, "ingest_event", event=ev("late", "5", at="2026-01-06T23:59:59.999999Z"))
    assert late["status"] == "ACCEPTED"
    assert await quantities(db, JAN, datetime(2026, 1, 7, tzinfo=UTC)) == {("acc_1", meter_id): Decimal(5)}
    assert await quantities(db, datetime(2026, 1, 7, tzinfo=UTC), FEB) == {("acc_1", meter_id): Decimal(30)}
    assert await rollups_are_exact(db)


async def test_events_of_a_closed_cycle_are_stored_but_not_billed(client, db):
    await open_account(client)
    meter_id = await tokens_meter(client)
    async with db.unit_of_work() as session:
        from sqlalchemy import text

        await session.execute(text("INSERT INTO billing_watermarks (account_id, closed_before) "
                                   "VALUES ('acc_1', '2026-01-10T00:00:00Z') ON CONFLICT (account_id) "
                                   "DO UPDATE SET closed_before = EXCLUDED.closed_before"))
    result = await call(client, "ingest_batch_events", events=[
        ev("old", "5", at="2026-01-09T23:59:59Z"), ev("new", "7", at="2026-01-10T00:00:00Z")])
    assert (result["accepted"], result["notBilled"], result["notBilledIndexes"]) == (1, 1, [0])
    single = await call(client, "ingest_event", event=ev("old-2", "1", at="2026-01-02T00:00:00Z"))
    assert single["status"] == "NOT_BILLED_CYCLE_CLOSED" and single["usageMeters"] == []
    assert await quantities(db) == {("acc_1", meter_id): Decimal(7)}
    listed = await call(client, "list_events", status="NOT_BILLED_CYCLE_CLOSED")
    assert sorted(e["id"] for e in listed["data"]) == ["old", "old-2"]
    # a retry of a not-billed event is a duplicate, like any other
    again = await call(client, "ingest_event", event=ev("old", "5", at="2026-01-09T23:59:59Z"))
    assert again["status"] == "DUPLICATE"


async def test_list_events_pages_filters_and_shows_meter_values(client, db):
    await open_account(client)
    await open_account(client, "acc_2")
    meter_id = await tokens_meter(client)
    events = [ev(f"e{i:02}", str(i), at=f"2026-01-05T10:{i:02}:00Z") for i in range(7)]
    events += [ev("other", "1", account="acc_2"), ev("img", schema="image_gen")]
    await call(client, "ingest_batch_events", events=events)
    seen, token = [], None
    while True:
        page = await call(client, "list_events", accountId="acc_1", schemaName="api_call", pageSize=3,
                          **({"nextToken": token} if token else {}))
        seen += [e["id"] for e in page["data"]]
        token = page["nextToken"]
        if token is None:
            break
    assert seen == [f"e{i:02}" for i in reversed(range(7))]  # newest event time first, no gaps, no repeats
    first = (await call(client, "list_events", accountId="acc_1", schemaName="api_call", pageSize=1))["data"][0]
    assert first["usageMeters"] == [{"usageMeterId": meter_id, "value": "6"}]
    assert first["attributes"] == [{"name": "tokens", "value": "6", "unit": None}]
    assert first["status"] == "ACCEPTED" and first["receivedAt"] == "2026-01-01T00:00:00Z"
    everything = await call(client, "list_events", pageSize=100)
    assert len(everything["data"]) == 9
    image = next(e for e in everything["data"] if e["id"] == "img")
    assert image["usageMeters"] == []  # no meter uses image_gen
    assert "list_accounts" in await call_error(client, "list_events", accountId="ghost")
    assert "nextToken" in await call_error(client, "list_events", nextToken="garbage")


async def test_a_hand_edited_event_fails_no_listing_of_other_events(client, db):
    """An event row edited by hand into something ingest refuses (an attribute its meter cannot read as a number,
    dimensions that are not text, attributes that are not an object) is listed with a `problem` naming it; every other
    event of the page (another account's too) is listed with its meter values as before."""
    meter = await tokens_meter(client)
    await open_account(client, "acc_1")
    await open_account(client, "acc_2")
    await call(client, "ingest_batch_events", events=[ev("a1", "10", account="acc_1"), ev("a2", "20", account="acc_1"),
                                                      ev("b1", "30", account="acc_2")])
    # (the edit, what its problem names, the meter values still shown: an array's tokens are no attribute)
    for edit, what, fed in ((""" attributes = '{"tokens": "abc"}' """, "usage meter", []),
                            (""" dimensions = '{"region": 1}' """, "dimensions.region",
                             [{"usageMeterId": meter, "value": "10"}]),
                            (""" attributes = '["tokens"]' """, "attributes", [])):
        async with db.unit_of_work() as session:
            await session.execute(text("UPDATE events SET attributes = '{\"tokens\": \"10\"}', dimensions = '{}' "
                                       "WHERE account_id = 'acc_1' AND id = 'a1'"))
            await session.execute(text(f"UPDATE events SET {edit} WHERE account_id = 'acc_1' AND id = 'a1'"))
        listed = {e["id"]: e for e in (await call(client, "list_events", pageSize=100))["data"]}
        assert [(e["usageMeters"], e["problem"]) for e in (listed["a2"], listed["b1"])] == [
            ([{"usageMeterId": meter, "value": "20"}], None), ([{"usageMeterId": meter, "value": "30"}], None)], what
        assert listed["a1"]["usageMeters"] == fed and "event 'a1' of account 'acc_1'" in listed["a1"]["problem"], what
        assert what in listed["a1"]["problem"]


async def test_a_hand_edited_unit_fails_no_listing_of_other_events(client, db):
    """units edited by hand into what ingest refuses (a unit that is not text, units that are not an object) is
    listed with a `problem` naming it, as attributes and dimensions are; the other events are listed as before."""
    meter = await tokens_meter(client)
    await open_account(client, "acc_1")
    await open_account(client, "acc_2")
    await call(client, "ingest_batch_events", events=[ev("a1", "10", account="acc_1"), ev("b1", "30", account="acc_2")])
    for edit, what in ((""" units = '{"tokens": 5}' """, "units.tokens"), (""" units = '["tokens"]' """, "units")):
        async with db.unit_of_work() as session:
            await session.execute(text(f"UPDATE events SET {edit} WHERE account_id = 'acc_1' AND id = 'a1'"))
        listed = {e["id"]: e for e in (await call(client, "list_events", pageSize=100))["data"]}
        assert (listed["b1"]["usageMeters"], listed["b1"]["problem"]) == ([{"usageMeterId": meter, "value": "30"}],
                                                                          None), what
        a1 = listed["a1"]
        assert a1["usageMeters"] == [{"usageMeterId": meter, "value": "10"}], what  # the meter reads attributes
        assert [(a["name"], a["value"], a["unit"]) for a in a1["attributes"]] == [("tokens", "10", None)], what
        assert "event 'a1' of account 'acc_1'" in a1["problem"] and what in a1["problem"], what
