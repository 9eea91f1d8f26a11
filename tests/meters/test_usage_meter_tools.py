"""create_usage_meter / list_usage_meters and the quantities each aggregation gives (exact Decimals)."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from conftest import row_counts
from helpers import call, call_error
from togai_engine.meters.rollups import verify_rollups
from togai_engine.meters.usage import meter_quantities

JAN = datetime(2026, 1, 1, tzinfo=UTC)
FEB = datetime(2026, 2, 1, tzinfo=UTC)


async def open_account(client, account_id: str = "acc_1") -> None:
    await call(
        client, "create_customer", id=f"cust_{account_id}", name="Acme", account={"id": account_id, "name": "Acme main"}
    )


def call_event(event_id: str, at: str, tokens: str | None = None, **dimensions: str) -> dict[str, Any]:
    attributes = [{"name": "tokens", "value": tokens}] if tokens is not None else []
    return {
        "id": event_id,
        "schemaName": "llm_call",
        "timestamp": at,
        "accountId": "acc_1",
        "attributes": attributes,
        "dimensions": dimensions,
    }


async def quantity(db, meter_id: str, start: datetime = JAN, end: datetime = FEB) -> Decimal | None:
    async with db.unit_of_work() as session:
        return (await meter_quantities(session, start=start, end=end, meter_ids=[meter_id])).get(("acc_1", meter_id))


async def meter(client, name: str, aggregation: str, computations: list[dict[str, Any]] | None = None) -> str:
    created = await call(
        client,
        "create_usage_meter",
        name=name,
        eventSchemaName="llm_call",
        aggregation=aggregation,
        **({"computations": computations} if computations else {}),
    )
    assert created["status"] == "ACTIVE" and created["aggregation"] == aggregation
    return created["id"]


EVENTS = [
    call_event("e1", "2026-01-05T10:00:00Z", "100", model="gpt", user="ann"),
    call_event("e2", "2026-01-05T10:30:00Z", "250.5", model="gpt", user="bob"),
    call_event("e3", "2026-01-05T11:00:00Z", "40", model="claude", user="ann"),
    call_event("e4", "2026-01-06T09:00:00Z", "7.25", model="gpt", user="cid"),
    call_event("e5", "2026-01-06T09:00:00Z", None, model="gpt", user="ann"),  # no tokens attribute
]


async def test_each_aggregation_gives_its_exact_quantity(client, db):
    await open_account(client)
    count_all = await meter(client, "calls", "COUNT")
    total = await meter(client, "tokens", "SUM", [{"computation": "tokens", "order": 1}])
    biggest = await meter(client, "biggest", "MAX", [{"computation": "attributes.tokens", "order": 1}])
    users = await meter(client, "users", "UNIQUE_COUNT", [{"computation": "dimensions.user", "order": 1}])
    latest = await meter(client, "latest", "LATEST", [{"computation": "tokens", "order": 1}])
    # GPT tokens cost 1 unit each, other models 2; matcher + computation in JSON Logic (Togai's singular prefix too)
    weighted = await meter(
        client,
        "weighted",
        "SUM",
        [
            {"matcher": '{"==": [{"var": "dimension.model"}, "gpt"]}', "computation": "tokens", "order": 1},
            {"computation": {"*": [{"var": "attributes.tokens"}, 2]}, "order": 2},
        ],
    )
    result = await call(client, "ingest_batch_events", events=EVENTS)
    assert result["notBilledNoPlan"] == 5  # stored and metered; the account has no price plan
    assert await quantity(db, count_all) == Decimal(5)
    assert await quantity(db, total) == Decimal("397.75")  # 100 + 250.5 + 40 + 7.25 (e5 has no value)
    assert await quantity(db, biggest) == Decimal("250.5")
    assert await quantity(db, users) == Decimal(3)  # ann, bob, cid
    # e4 and e5 share the newest time; ties break on the id (e5 > e4), but e5 has no tokens, so e4 wins
    assert await quantity(db, latest) == Decimal("7.25")
    assert await quantity(db, weighted) == Decimal("437.75")  # 100 + 250.5 + 7.25 + 40 * 2
    async with db.unit_of_work() as session:
        assert await verify_rollups(session) == []


async def test_a_meter_created_after_events_counts_them(client, db):
    await open_account(client)
    await call(client, "ingest_batch_events", events=EVENTS)
    total = await meter(client, "tokens", "SUM", [{"computation": "tokens", "order": 1}])
    assert await quantity(db, total) == Decimal("397.75")
    await call(client, "ingest_event", event=call_event("e6", "2026-01-07T00:00:00Z", "0.25"))
    assert await quantity(db, total) == Decimal("398.00")  # 397.75 + 0.25
    async with db.unit_of_work() as session:
        assert await verify_rollups(session) == []


async def test_quantities_over_partial_hours_read_the_edges_from_raw_events(client, db):
    await open_account(client)
    total = await meter(client, "tokens", "SUM", [{"computation": "tokens", "order": 1}])
    await call(client, "ingest_batch_events", events=EVENTS)
    at = lambda text: datetime.fromisoformat(text)  # noqa: E731
    # [10:15, 11:00): only e2 (10:30)
    assert await quantity(db, total, at("2026-01-05T10:15:00Z"), at("2026-01-05T11:00:00Z")) == Decimal("250.5")
    # [10:00, 10:30): e1 only; the end is exclusive
    assert await quantity(db, total, at("2026-01-05T10:00:00Z"), at("2026-01-05T10:30:00Z")) == Decimal("100")
    # [10:30, 09:00 next day]: e2 + e3 = 290.5; e4 at exactly 09:00 is excluded
    assert await quantity(db, total, at("2026-01-05T10:30:00Z"), at("2026-01-06T09:00:00Z")) == Decimal("290.5")
    # [10:00:00.000001, 2026-01-06T09:00:00.000001): e2 + e3 + e4 = 297.75
    assert await quantity(db, total, at("2026-01-05T10:00:00.000001Z"), at("2026-01-06T09:00:00.000001Z")) == Decimal(
        "297.75"
    )
    assert await quantity(db, total, at("2026-01-07T00:00:00Z"), at("2026-01-08T00:00:00Z")) is None


async def test_meter_definitions_are_validated_naming_the_spot(client, db):
    before = await row_counts(db)
    error = await call_error(
        client,
        "create_usage_meter",
        name="m",
        eventSchemaName="s",
        aggregation="SUM",
        computations=[{"computation": {"pow": [{"var": "attributes.x"}, 2]}, "order": 1}],
    )
    assert "computations[0].computation" in error and '"pow"' in error
    error = await call_error(
        client,
        "create_usage_meter",
        name="m",
        eventSchemaName="s",
        aggregation="SUM",
        computations=[{"matcher": '{"==": [{"var": "account.tier"}, "gold"]}', "computation": "x", "order": 1}],
    )
    assert "computations[0].matcher" in error and "unknown variable" in error
    error = await call_error(client, "create_usage_meter", name="m", eventSchemaName="s", aggregation="SUM")
    assert "at least one computation" in error
    error = await call_error(client, "create_usage_meter", name="bad/name", eventSchemaName="s", aggregation="COUNT")
    assert "name" in error
    error = await call_error(client, "create_usage_meter", name="m", eventSchemaName="s", aggregation="AVERAGE")
    assert "aggregation" in error
    assert await row_counts(db) == before


async def test_creating_a_meter_twice_is_idempotent_and_a_different_definition_conflicts(client, db):
    first = await call(
        client,
        "create_usage_meter",
        name="tokens",
        eventSchemaName="llm_call",
        aggregation="SUM",
        computations=[{"computation": "tokens", "order": 1}],
    )
    assert first["id"].startswith("um_")
    # the same definition written as JSON Logic instead of a bare name compiles identically
    again = await call(
        client,
        "create_usage_meter",
        name="tokens",
        eventSchemaName="llm_call",
        aggregation="SUM",
        computations=[{"computation": {"var": "attributes.tokens"}, "order": 1}],
    )
    assert again == first
    before = await row_counts(db)
    error = await call_error(
        client,
        "create_usage_meter",
        name="tokens",
        eventSchemaName="llm_call",
        aggregation="MAX",
        computations=[{"computation": "tokens", "order": 1}],
    )
    assert "already exists" in error and first["id"] in error and "aggregation" in error
    assert await row_counts(db) == before
    listed = await call(client, "list_usage_meters")
    assert [m["id"] for m in listed["data"]] == [first["id"]]


async def test_list_usage_meters_pages_and_filters(client):
    ids = [await meter(client, f"m{i}", "COUNT") for i in range(5)]
    other = await call(client, "create_usage_meter", name="other", eventSchemaName="other_schema", aggregation="COUNT")
    seen, token = [], None
    while True:
        page = await call(client, "list_usage_meters", pageSize=2, **({"nextToken": token} if token else {}))
        seen += [m["id"] for m in page["data"]]
        token = page["nextToken"]
        if not token:
            break
    assert seen == [*ids, other["id"]]
    only = await call(client, "list_usage_meters", eventSchemaName="other_schema")
    assert [m["id"] for m in only["data"]] == [other["id"]]
    assert (await call(client, "list_usage_meters", aggregation="SUM"))["data"] == []


async def test_caller_chosen_meter_id_is_idempotent_and_conflicts_clearly(client):
    from helpers import call as call_tool
    from helpers import call_error as call_tool_error

    first = await call_tool(client, "create_usage_meter", id="um_tokens", name="tokens", eventSchemaName="llm",
                            aggregation="SUM", computations=[{"computation": "tokens"}])
    assert first["id"] == "um_tokens"
    again = await call_tool(client, "create_usage_meter", id="um_tokens", name="tokens", eventSchemaName="llm",
                            aggregation="SUM", computations=[{"computation": "tokens"}])
    assert again == first
    error = await call_tool_error(client, "create_usage_meter", id="um_tokens", name="other", eventSchemaName="llm",
                                  aggregation="COUNT")
    assert "already used by the meter named 'tokens'" in error
    error = await call_tool_error(client, "create_usage_meter", id="um_other", name="tokens", eventSchemaName="llm",
                                  aggregation="SUM", computations=[{"computation": "tokens"}])
    assert "already exists with id 'um_tokens'" in error


async def test_a_replay_with_other_computation_labels_is_refused(client):
    # The labels (computations[i].id) are stored and shown with the meter: a replay that sends other ones would be
    # answered with the stored labels while its own were dropped, so it is a different definition.
    labelled = {"name": "tokens", "eventSchemaName": "llm", "aggregation": "SUM",
                "computations": [{"id": "input_tokens", "computation": "tokens", "order": 1}]}
    first = await call(client, "create_usage_meter", **labelled)
    assert first["computations"][0]["id"] == "input_tokens"
    assert await call(client, "create_usage_meter", **labelled) == first
    for sent in ("output_tokens", None):
        error = await call_error(client, "create_usage_meter", **{
            **labelled, "computations": [{"id": sent, "computation": "tokens", "order": 1}]})
        assert f"already exists ({first['id']}) with a different computations" in error, error
    # the refusals changed nothing: the stored meter keeps its label, and the first definition still replays
    assert await call(client, "create_usage_meter", **labelled) == first
