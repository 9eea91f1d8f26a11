"""Togai's input shapes, as a new user sends them: dates for times, test-domain emails, aliases for
accounts, null to clear a field. Everything through a real MCP client."""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

from conftest import row_counts
from helpers import JAN_1, call, call_error

RANGE = "from 2000-01-01T00:00:00Z to 9000-01-01T00:00:00Z"
OUT_OF_RANGE = ["0001-01-01", "1999-12-31T23:59:59Z", "9999-12-31T23:59:00Z", "9999-12-31T23:59:59-01:00",
                "0001-01-01T00:00:00+01:00"]
FEB_1 = "2026-02-01T00:00:00Z"
MONTHLY = {"interval": "MONTHLY", "startOffset": {"dayOffset": "1"}, "gracePeriod": 3}


async def tokens_plan(client: Any) -> str:
    """A monthly plan: 0.01 per token (meter `tokens` over llm events) and the exports feature (BOOLEAN)."""
    meter = await call(client, "create_usage_meter", name="tokens", eventSchemaName="llm", aggregation="SUM",
                       computations=[{"computation": "tokens"}])
    plan = await call(client, "create_price_plan", name="Pro", pricingCycleConfig=MONTHLY, rateCards={
        "usageRateCards": [{"name": "tokens", "usageMeterId": meter["id"], "ratePlan": {
            "pricingModel": "TIERED", "slabs": [{"order": 1, "startAfter": "0", "priceType": "PER_UNIT"}]},
            "rateValues": [{"currency": "USD", "slabRates": [{"order": 1, "rate": "0.01"}]}]}],
        "billingEntitlementRateCards": [{"featureId": "exports"}]})
    return str(plan["id"])


def llm(event_id: str, account: str, when: str, count: int) -> dict[str, Any]:
    return {"id": event_id, "schemaName": "llm", "timestamp": when, "accountId": account,
            "attributes": {"tokens": str(count)}}


# --- times ----------------------------------------------------------------------------------------------


async def test_every_time_argument_takes_a_date_and_a_date_time_without_offset(client):
    plan = await tokens_plan(client)
    # create_customer's inline account and create_account: a date is 00:00 UTC that day
    await call(client, "create_customer", id="c", name="C",
               account={"id": "inline", "name": "I", "pricePlanId": plan, "effectiveFrom": "2026-01-01"})
    await call(client, "create_account", id="created", customerId="c", name="A", pricePlanId=plan,
               effectiveFrom="2026-01-01T00:00:00")
    await call(client, "create_account", id="updated", customerId="c", name="U")
    await call(client, "update_account", accountId="updated", pricePlanId=plan,
               effectiveFrom="2026-01-01T05:30:00+05:30")
    for account in ("inline", "created", "updated"):
        financial = (await call(client, "get_account", accountId=account))["financial"]
        assert financial["pricePlan"]["effectiveFrom"] == "2026-01-01T00:00:00Z", account
    await call(client, "update_account", accountId="updated", effectiveUntil="2026-03-01")
    financial = (await call(client, "get_account", accountId="updated"))["financial"]
    assert financial["pricePlan"]["effectiveUntil"] == "2026-03-01T00:00:00Z"

    grant = (await call(client, "grant_credit", accountId="created", amount="5.00", effectiveFrom="2026-12-01",
                        effectiveUntil="2027-01-01T12:00:00"))["grant"]
    assert (grant["effectiveFrom"], grant["effectiveUntil"]) == ("2026-12-01T00:00:00Z", "2027-01-01T12:00:00Z")

    await call(client, "ingest_event", event=llm("e_date", "created", "2026-01-05", 100))
    await call(client, "ingest_event", event=llm("e_naive", "created", "2026-01-05T10:00:00", 200))
    stored = {e["id"]: e["timestamp"] for e in (await call(client, "list_events", accountId="created"))["data"]}
    assert stored == {"e_date": "2026-01-05T00:00:00Z", "e_naive": "2026-01-05T10:00:00Z"}

    # the January DRAFT (period [2026-01-01, 2026-02-01)) is listed for a range ending a second before February
    # (naive: UTC) and not for one starting at the date 2026-02-01 (00:00 UTC, the period's exclusive end)
    january = await call(client, "list_invoices", accountId="created", startTime="2026-01-31T23:59:59",
                         endTime="2026-02-01")
    assert [i["startDate"] for i in january["data"]] == ["2026-01-01T00:00:00Z"]
    assert (await call(client, "list_invoices", accountId="created", startTime="2026-02-01",
                       endTime="2026-02-02"))["data"] == []

    metrics = await call(client, "get_metrics", startTime="2026-01-05", endTime="2026-01-06T00:00:00",
                         metricQueries=[{"id": "t", "name": "USAGE", "aggregationPeriod": "DAY",
                                         "filters": [{"fieldName": "ACCOUNT_ID", "fieldValues": ["created"]}]}])
    assert metrics["results"][0]["data"][0]["timestamps"] == ["2026-01-05T00:00:00Z"]
    assert metrics["results"][0]["data"][0]["metricValues"] == ["300"]  # 100 + 200 tokens

    simulated = await call(client, "simulate_price_plan", candidates=[plan], accountIds=["created"],
                           startTime="2026-01-01", endTime="2026-01-31T00:00:00")
    assert [p["startDate"] for p in simulated["accounts"][0]["cycles"]] == ["2026-01-01T00:00:00Z"]


# Every argument that takes a time, as (tool, arguments around the time, its field as errors name it).
def time_cases(plan: str) -> list[tuple[str, Any, str]]:
    metric = [{"id": "q", "name": "EVENTS"}]
    return [
        ("create_account", lambda t: {"id": "new", "customerId": "c", "name": "N", "pricePlanId": plan,
                                      "effectiveFrom": t}, "effectiveFrom"),
        ("create_customer", lambda t: {"id": "c2", "name": "C2", "account": {
            "id": "new", "name": "N", "pricePlanId": plan, "effectiveFrom": t}}, "effectiveFrom"),
        ("update_account", lambda t: {"accountId": "acc", "pricePlanId": plan, "effectiveFrom": t}, "effectiveFrom"),
        ("update_account", lambda t: {"accountId": "acc", "effectiveUntil": t}, "effectiveUntil"),
        ("grant_credit", lambda t: {"accountId": "acc", "amount": "1", "effectiveFrom": t}, "effectiveFrom"),
        ("grant_credit", lambda t: {"accountId": "acc", "amount": "1", "effectiveUntil": t}, "effectiveUntil"),
        ("list_invoices", lambda t: {"startTime": t}, "startTime"),
        ("list_invoices", lambda t: {"endTime": t}, "endTime"),
        ("get_metrics", lambda t: {"startTime": t, "endTime": FEB_1, "metricQueries": metric}, "startTime"),
        ("get_metrics", lambda t: {"startTime": JAN_1, "endTime": t, "metricQueries": metric}, "endTime"),
        ("simulate_price_plan", lambda t: {"candidates": [plan], "startTime": t, "endTime": FEB_1}, "startTime"),
        ("simulate_price_plan", lambda t: {"candidates": [plan], "startTime": JAN_1, "endTime": t}, "endTime"),
        ("ingest_event", lambda t: {"event": llm("e", "acc", t, 1)}, "timestamp"),
    ]


async def test_times_out_of_range_are_refused_naming_the_field_and_the_range(client, db):
    plan = await tokens_plan(client)
    await call(client, "create_customer", id="c", name="C",
               account={"id": "acc", "name": "A", "pricePlanId": plan, "effectiveFrom": "2026-01-01T00:00:00Z"})
    before = await row_counts(db)
    for tool, arguments, field in time_cases(plan):
        for value in OUT_OF_RANGE:
            error = await call_error(client, tool, **arguments(value))
            assert f"{field}: {value!r} is out of the range" in error and RANGE in error, (tool, value, error)
            assert "internal error" not in error
        error = await call_error(client, tool, **arguments(True))
        assert f"{field}: " in error and "ISO 8601" in error and "got a boolean" in error, (tool, error)
    # the bounds themselves are instants billing computes with
    assert (await call(client, "list_invoices", startTime="2000-01-01", endTime="9000-01-01T00:00:00Z"))["data"]
    assert await row_counts(db) == before


async def test_a_batch_rejects_only_the_event_out_of_range(client):
    await call(client, "create_customer", id="c", name="C", account={"id": "acc", "name": "A"})
    result = await call(client, "ingest_batch_events", events=[
        llm("ok_date", "acc", "2026-01-05", 1), llm("year_1", "acc", "0001-01-01T00:00:00Z", 1),
        llm("far", "acc", "9999-12-31T23:59:00Z", 1), llm("ok_naive", "acc", "2026-01-05T12:00:00", 1)])
    assert result["notBilledNoPlanIndexes"] == [0, 3]  # acc has no plan: the valid events are stored, not billed
    assert [(r["index"], r["code"], r["field"]) for r in result["rejectedEvents"]] == [
        (1, "INVALID_TIMESTAMP", "timestamp"), (2, "INVALID_TIMESTAMP", "timestamp")]
    assert all(RANGE in r["message"] for r in result["rejectedEvents"])


async def test_time_arguments_advertise_dates(client):
    tools = {t.name: t for t in (await client.list_tools()).tools}
    for tool, field in (("get_metrics", "startTime"), ("list_invoices", "endTime"), ("grant_credit", "effectiveFrom"),
                        ("update_account", "effectiveUntil"), ("simulate_price_plan", "startTime")):
        schema = tools[tool].input_schema["properties"][field]
        formats = str(schema)
        assert "'format': 'date'" in formats and "'format': 'date-time'" in formats, (tool, schema)
        assert "2026-12-01 = 00:00 UTC" in schema["description"], (tool, schema)


# --- email ----------------------------------------------------------------------------------------------


async def test_email_is_checked_for_syntax_only(client, db):
    customer = await call(client, "create_customer", id="c", name="C", primaryEmail="billing@acme.test",
                          account={"id": "inline", "name": "I", "primaryEmail": "ci@build.localhost"})
    assert customer["customer"]["primaryEmail"] == "billing@acme.test"
    assert customer["account"]["primaryEmail"] == "ci@build.localhost"
    account = await call(client, "create_account", id="acc", customerId="c", name="A",
                         primaryEmail="Finance@Example.EXAMPLE")
    assert account["primaryEmail"] == "Finance@example.example"  # the domain is case-insensitive: lower-cased
    assert (await call(client, "update_account", accountId="acc", primaryEmail="nobody@void.invalid"))[
        "primaryEmail"] == "nobody@void.invalid"
    assert (await call(client, "update_customer", customerId="c", primaryEmail="ops@acme.localhost"))[
        "primaryEmail"] == "ops@acme.localhost"
    before = await row_counts(db)
    for tool, arguments, field in (
            ("create_customer", {"name": "X", "primaryEmail": "not-an-email"}, "primaryEmail"),
            ("create_customer", {"name": "X", "account": {"id": "x", "name": "X", "primaryEmail": "a@b"}},
             "account.primaryEmail"),
            ("update_customer", {"customerId": "c", "primaryEmail": "two@@acme.test"}, "primaryEmail"),
            ("update_account", {"accountId": "acc", "primaryEmail": "a b@acme.test"}, "primaryEmail"),
            ("create_account", {"id": "y", "customerId": "c", "name": "Y", "primaryEmail": "y@acme..test"},
             "primaryEmail")):
        error = await call_error(client, tool, **arguments)
        assert f"{field}: " in error and "is not a valid email address" in error and "billing@acme.com" in error, error
    assert await row_counts(db) == before


# --- accounts by id or alias ----------------------------------------------------------------------------


async def test_every_tool_taking_an_account_takes_an_alias(client, clock):
    plan = await tokens_plan(client)
    await call(client, "create_customer", id="c", name="C", account={
        "id": "acc_1", "name": "A", "aliases": ["crm-1"], "pricePlanId": plan, "effectiveFrom": "2026-01-01T00:00:00Z"})
    await call(client, "ingest_event", event=llm("jan", "crm-1", "2026-01-10T00:00:00Z", 1000))  # 10.00
    clock.advance(timedelta(days=35))  # February 5: January is DUE (grace period 3 days)
    await call(client, "ingest_event", event=llm("feb", "acc_1", "2026-02-05T00:00:00Z", 500))
    january = (await call(client, "list_invoices", accountId="acc_1", status="DUE"))["data"][0]
    await call(client, "update_invoice_status", invoiceId=january["id"], status="PAID")
    # on a PAID invoice the whole note goes to the wallet: a grant of 1.00
    await call(client, "create_credit_note", invoiceId=january["id"], reason="ORDER_CHANGE", amount="1.00",
               idempotencyKey="cn")

    async def same(tool: str, **arguments: Any) -> dict[str, Any]:
        """The tool's answer naming the account by its alias, asserted equal to the answer naming it by id."""
        by_alias = await call(client, tool, **json.loads(json.dumps(arguments).replace('"ALIAS"', '"crm-1"')))
        by_id = await call(client, tool, **json.loads(json.dumps(arguments).replace('"ALIAS"', '"acc_1"')))
        assert by_alias == by_id, tool
        return by_alias

    assert (await same("get_account", accountId="ALIAS"))["id"] == "acc_1"
    assert [i["startDate"] for i in (await same("list_invoices", accountId="ALIAS"))["data"]] == [
        "2026-02-01T00:00:00Z", "2026-01-01T00:00:00Z"]
    assert (await same("get_invoice", accountId="ALIAS"))["totalAmount"] == "5.00"  # February: 500 × 0.01
    assert (await same("get_wallet_balance", accountId="ALIAS"))["balance"] == "1.00"  # the credit note's rest
    assert len((await same("list_wallet_entries", accountId="ALIAS"))["data"]) == 1
    assert [n["amount"] for n in (await same("list_credit_notes", accountId="ALIAS"))["data"]] == ["1.00"]
    assert (await same("get_entitlements", accountId="ALIAS"))["accountId"] == "acc_1"
    assert (await same("check_entitlement", accountId="ALIAS", featureId="exports"))["entitled"] is True
    assert [e["id"] for e in (await same("list_events", accountId="ALIAS"))["data"]] == ["feb", "jan"]
    usage = await same("get_metrics", startTime="2026-02-01T00:00:00Z", endTime="2026-03-01T00:00:00Z", metricQueries=[
        {"id": "u", "name": "USAGE", "aggregationPeriod": "MONTH",
         "filters": [{"fieldName": "ACCOUNT_ID", "fieldValues": ["ALIAS"]}]}])
    assert usage["results"][0]["data"][0]["metricValues"] == ["500"]
    simulated = await same("simulate_price_plan", candidates=[plan], accountIds=["ALIAS"], lastCycles=1)
    assert simulated["accounts"][0]["accountId"] == "acc_1"

    # writes: a grant through the alias, retried through the id, is one grant
    first = await call(client, "grant_credit", accountId="crm-1", amount="2.00", idempotencyKey="g")
    again = await call(client, "grant_credit", accountId="acc_1", amount="2.00", idempotencyKey="g")
    assert (first["grant"]["accountId"], again["replayed"], again["grant"]["id"]) == ("acc_1", True,
                                                                                      first["grant"]["id"])
    assert (await call(client, "update_account", accountId="crm-1", name="Renamed"))["name"] == "Renamed"
    voided = await call(client, "void_event", accountId="crm-1", eventId="feb", reason="sent twice")
    assert (voided["accountId"], voided["status"]) == ("acc_1", "VOIDED")
    audit = (await call(client, "list_audit_log", tool="update_account"))["data"][0]
    assert audit["changedIds"] == ["acc_1"]  # the account's id, not the name it was called by

    for tool, arguments in (("get_account", {}), ("list_invoices", {}), ("get_invoice", {}),
                            ("get_wallet_balance", {}), ("list_wallet_entries", {}), ("list_credit_notes", {}),
                            ("grant_credit", {"amount": "1"}), ("update_account", {"name": "X"})):
        error = await call_error(client, tool, accountId="crm-nope", **arguments)
        assert "account 'crm-nope' does not exist; list_accounts" in error, (tool, error)


# --- null clears, absence keeps -------------------------------------------------------------------------


ADDRESS = {"line1": "1 Main St", "city": "Springfield", "country": "US"}
STORED_ADDRESS = {"line1": "1 Main St", "line2": None, "city": "Springfield", "state": None, "postalCode": None,
                  "country": "US", "phoneNumber": None}


async def test_update_customer_null_clears_and_absence_keeps(client, db):
    await call(client, "create_customer", id="c", name="Acme", primaryEmail="a@acme.example", address=ADDRESS,
               metadata={"tier": "gold"})
    kept = await call(client, "update_customer", customerId="c", name="Acme Corp")
    assert (kept["primaryEmail"], kept["address"], kept["metadata"]) == ("a@acme.example", STORED_ADDRESS,
                                                                          {"tier": "gold"})
    cleared = await call(client, "update_customer", customerId="c", primaryEmail=None, address=None, metadata=None)
    assert (cleared["name"], cleared["primaryEmail"], cleared["address"], cleared["metadata"]) == (
        "Acme Corp", None, None, None)
    assert await call(client, "get_customer", customerId="c") == cleared
    before = await row_counts(db)
    error = await call_error(client, "update_customer", customerId="c", name=None)
    assert "name: cannot be null" in error and "Omit name" in error, error
    assert await row_counts(db) == before


async def test_update_account_null_clears_and_absence_keeps(client, db):
    plan = await tokens_plan(client)
    await call(client, "create_customer", id="c", name="C", account={
        "id": "acc", "name": "A", "aliases": ["crm-1", "crm-2"], "primaryEmail": "a@acme.example", "address": ADDRESS,
        "metadata": {"k": "v"}, "netTermDays": 30, "pricePlanId": plan, "effectiveFrom": "2026-01-01T00:00:00Z"})
    kept = await call(client, "update_account", accountId="acc", netTermDays=15)
    assert (kept["aliases"], kept["primaryEmail"], kept["address"], kept["metadata"], kept["netTermDays"]) == (
        ["crm-1", "crm-2"], "a@acme.example", STORED_ADDRESS, {"k": "v"}, 15)
    # null for the plan arguments changes nothing: the plan stays
    cleared = await call(client, "update_account", accountId="acc", primaryEmail=None, address=None, metadata=None,
                         aliases=None, pricePlanId=None, effectiveFrom=None, effectiveUntil=None)
    assert (cleared["aliases"], cleared["primaryEmail"], cleared["address"], cleared["metadata"]) == (
        [], None, None, None)
    assert (cleared["name"], cleared["netTermDays"], cleared["invoiceCurrency"]) == ("A", 15, "USD")
    got = await call(client, "get_account", accountId="acc")
    assert got["financial"]["pricePlan"]["id"] == plan and got["aliases"] == []
    # the aliases are free again
    await call(client, "create_account", id="other", customerId="c", name="O", aliases=["crm-1"])
    before = await row_counts(db)
    for field in ("name", "status", "invoiceCurrency", "netTermDays"):
        error = await call_error(client, "update_account", accountId="acc", **{field: None})
        assert f"{field}: cannot be null" in error and f"Omit {field}" in error, error
    assert await row_counts(db) == before
