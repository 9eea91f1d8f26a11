"""What a client reads from tools/list: schemas every client can map, and annotations that tell the truth."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from helpers import call
from mcp_server.registry import SPECS
from mcp_server.server import load_tools

# (readOnlyHint, destructiveHint, idempotentHint) per tool; openWorldHint is False for all (a local store).
# destructive: the call can end, void or overwrite something (not only add); idempotent: the same call
# again changes nothing more. A create whose id or idempotency key is optional is not idempotent: called
# twice without one, it makes two. Reads that close cycles that are due (catch-up billing) stay read-only:
# they do what the background run would have done by then, whatever the arguments.
READ = (True, False, True)
ANNOTATIONS: dict[str, tuple[bool, bool, bool]] = {
    "create_customer": (False, False, False),  # id optional: without one, each call makes a customer
    "get_customer": READ,
    "update_customer": (False, True, True),  # replaces name, email, address, metadata
    "list_customers": READ,
    "create_account": (False, False, True),  # id required: same id and content returns the account
    "get_account": READ,
    "update_account": (False, True, True),  # ARCHIVED ends the plan; replaces fields; re-attaching is a no-op
    "list_accounts": READ,
    "ingest_event": (False, False, True),  # the event id (or its content) is the idempotency key
    "ingest_batch_events": (False, False, True),
    "void_event": (False, True, True),
    "void_events": (False, True, True),
    "list_events": READ,
    "list_event_schemas": READ,
    "create_usage_meter": (False, False, True),  # same name and definition returns the meter
    "list_usage_meters": READ,
    "get_metrics": READ,
    "create_price_plan": (False, False, True),  # same name and content returns the plan
    "list_price_plans": READ,
    "get_price_plan": READ,
    "list_rate_cards": READ,
    "update_price_plan": (False, True, True),  # replaces the plan's DRAFT version
    "finalize_price_plan": (False, True, True),  # moves accounts; again: no DRAFT left, nothing changes
    "list_invoices": READ,
    "get_invoice": READ,
    "update_invoice_status": (False, True, True),  # VOID; a PAID or VOID invoice cannot change again
    "create_credit_note": (False, True, False),  # takes money off an invoice; idempotencyKey optional
    "list_credit_notes": READ,
    "grant_credit": (False, False, False),  # adds credit; idempotencyKey optional
    "get_wallet_balance": READ,
    "list_wallet_entries": READ,
    "check_entitlement": (False, False, True),  # consume writes an event; the same id again writes nothing
    "get_entitlements": READ,
    "calculate_revenue": READ,
    "simulate_price_plan": READ,
    "list_audit_log": READ,
    "get_clock": READ,
    "advance_clock": (False, False, False),  # `by` moves the clock again on every call
    "update_license": (False, False, False),  # adds a seat change; idempotencyKey optional (RELATIVE adds again)
}


def list_valued_types(schema: Any, path: str = "") -> list[str]:
    """Paths of every `type` whose value is a list, anywhere in a JSON Schema."""
    found = []
    if isinstance(schema, dict):
        for key, value in schema.items():
            if key == "type" and isinstance(value, list):
                found.append(f"{path}.type = {value}")
            found += list_valued_types(value, f"{path}.{key}")
    elif isinstance(schema, list):
        for i, item in enumerate(schema):
            found += list_valued_types(item, f"{path}[{i}]")
    return found


def test_the_walk_finds_a_list_valued_type():
    schema = {"properties": {"a": {"items": [{"anyOf": [{"type": ["string", "number"]}]}]}}}
    assert list_valued_types(schema) == [".properties.a.items[0].anyOf[0].type = ['string', 'number']"]


async def test_no_schema_has_a_list_valued_type(client):
    tools = (await client.list_tools()).tools
    assert {t.name for t in tools} == set(SPECS)
    found = []
    for t in tools:
        found += [f"{t.name} inputSchema{p}" for p in list_valued_types(t.input_schema)]
        found += [f"{t.name} outputSchema{p}" for p in list_valued_types(t.output_schema)]
    assert found == []
    assert sum(t.output_schema is not None for t in tools) == len(tools)  # the walk covered output schemas too


async def test_an_attribute_value_is_a_string_or_a_number_in_anyof_form(client):
    tools = {t.name: t for t in (await client.list_tools()).tools}
    attributes = tools["ingest_event"].input_schema["properties"]["event"]["properties"]["attributes"]
    either = {"anyOf": [{"type": "string"}, {"type": "number"}]}
    assert attributes["anyOf"][0]["items"]["properties"]["value"] == either
    assert attributes["anyOf"][1]["additionalProperties"] == either
    batch = tools["ingest_batch_events"].input_schema["properties"]["events"]["items"]["properties"]["attributes"]
    assert batch == attributes


async def test_every_tool_is_classified_and_its_annotations_match(client):
    load_tools()
    assert set(ANNOTATIONS) == set(SPECS), "classify the new tool in ANNOTATIONS (and in its @tool declaration)"
    listed = {t.name: t.annotations for t in (await client.list_tools()).tools}
    actual = {name: (a.read_only_hint, a.destructive_hint, a.idempotent_hint) for name, a in listed.items()}
    assert actual == ANNOTATIONS
    assert {name: a.open_world_hint for name, a in listed.items()} == dict.fromkeys(SPECS, False)
    assert all(a.title for a in listed.values())


async def test_creates_marked_not_idempotent_do_make_two_without_a_key(client):
    first = await call(client, "create_customer", name="Twice Inc", account={"id": "acc_twice", "name": "T"})
    second = await call(client, "create_customer", name="Twice Inc")
    assert first["customer"]["id"] != second["customer"]["id"]
    for _ in range(2):
        await call(client, "grant_credit", accountId="acc_twice", amount="5.00", currency="USD")
    wallet = await call(client, "get_wallet_balance", accountId="acc_twice")
    assert Decimal(wallet["balance"]) == Decimal("10.00")  # 5.00 + 5.00: the same call granted twice
    plan = await call(client, "create_price_plan", name="Seats", pricingCycleConfig={"interval": "MONTHLY"},
                      rateCards={"licenseRateCards": [{"id": "seats", "ratePlan": {"pricingModel": "TIERED", "slabs": [
                          {"order": 1, "startAfter": "0", "priceType": "PER_UNIT"}]}, "rateValues": [
                          {"currency": "USD", "slabRates": [{"order": 1, "rate": "10"}]}]}]})
    await call(client, "update_account", accountId="acc_twice", pricePlanId=plan["id"])
    for _ in range(2):
        seats = await call(client, "update_license", accountId="acc_twice", licenseId="seats", quantity=2,
                           updateType="RELATIVE")
    assert seats["currentQuantity"] == 4  # 2 + 2: the same call added twice


async def test_deal_arguments_are_listed(client):
    """The per-account deal arguments a client sees: a deal at creation as in update_account, a quote for an
    account (its deal priced), a grant limited to rate cards."""
    tools = {t.name: t for t in (await client.list_tools()).tools}
    created, updated = tools["create_account"].input_schema, tools["update_account"].input_schema
    assert created["properties"]["rateCardOverrides"] == updated["properties"]["rateCardOverrides"]
    assert "rateCardOverrides" in tools["create_customer"].input_schema["properties"]["account"]["description"]
    rules = updated["properties"]["pricingRulesOverride"]["anyOf"][0]
    assert rules["type"] == "array" and rules["maxItems"] == 50
    quote = tools["calculate_revenue"]
    assert "accountId" in quote.input_schema["properties"] and "accountId" not in quote.input_schema.get("required", [])
    assert {"accountId", "isOverridden", "pricePlanVersion"} <= set(quote.output_schema["properties"])
    limited = tools["grant_credit"].input_schema["properties"]["applicableEntityIds"]
    assert limited["anyOf"][0] == {"type": "array", "items": {"type": "string"}, "maxItems": 100}
