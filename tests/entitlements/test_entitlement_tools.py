"""check_entitlement and get_entitlements through the MCP tools, with real events and a moving clock."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from conftest import row_counts
from helpers import call, call_error


async def _setup(client: Any) -> str:
    meter = await call(client, "create_usage_meter", name="api calls", eventSchemaName="api", aggregation="COUNT")
    plan = await call(client, "create_price_plan", name="Starter", pricingCycleConfig={
        "interval": "MONTHLY", "startOffset": {"dayOffset": "1", "monthOffset": "NIL"}, "gracePeriod": 0},
        rateCards={"billingEntitlementRateCards": [
            {"featureId": "api", "displayName": "API calls", "usageMeterId": meter["id"],
             "featureConfigs": [{"featureCreditLimit": "3"}]},
            {"featureId": "sso", "displayName": "Single sign-on"},  # no meter: BOOLEAN, no limit to give
        ]})
    await call(client, "create_customer", id="cust_acme", name="Acme", account={
        "id": "acme", "name": "Acme", "aliases": ["acme-alias"]})
    return plan["id"]


async def _call_api(client: Any, n: int, when: str = "2026-01-05T00:00:00Z") -> None:
    await call(client, "ingest_event", event={"id": f"call-{n}", "schemaName": "api", "timestamp": when,
                                              "accountId": "acme", "attributes": {}})


async def test_a_limit_on_a_boolean_feature_is_refused_and_a_metered_feature_needs_one(client, db) -> None:
    """A feature without usageMeterId is BOOLEAN: nothing counts against a featureCreditLimit, so one sent with it
    would be accepted and ignored. A metered feature's limit is what check_entitlement counts against."""
    meter = await call(client, "create_usage_meter", name="api calls", eventSchemaName="api", aggregation="COUNT")

    async def refused(card: dict[str, Any]) -> str:
        before = await row_counts(db)
        error = await call_error(client, "create_price_plan", name="Features", pricingCycleConfig={
            "interval": "MONTHLY"}, rateCards={"billingEntitlementRateCards": [card]})
        assert await row_counts(db) == before  # no plan stored
        return error

    limited_sso = {"featureId": "sso", "featureConfigs": [{"featureCreditLimit": "1"}]}
    error = await refused(limited_sso)
    assert "rateCards.billingEntitlementRateCards[0].featureConfigs" in error and "BOOLEAN" in error
    assert "remove featureConfigs" in error and "usageMeterId" in error
    error = await refused({"featureId": "api", "usageMeterId": meter["id"]})
    assert "rateCards.billingEntitlementRateCards[0].featureConfigs" in error and "featureCreditLimit" in error
    # the same refusal for a deal's card and an inline plan in the lab
    plan = await call(client, "create_price_plan", name="Features", pricingCycleConfig={"interval": "MONTHLY"},
                      rateCards={"billingEntitlementRateCards": [{"featureId": "sso"}]})
    await call(client, "create_customer", id="cust_acme", name="Acme", account={"id": "acme", "name": "Acme"})
    before, shown = await row_counts(db), await call(client, "get_account", accountId="acme")
    error = await call_error(client, "update_account", accountId="acme", pricePlanId=plan["id"],
                             rateCardOverrides={"billingEntitlementRateCards": [{**limited_sso, "name": "sso"}]})
    assert "rateCardOverrides.billingEntitlementRateCards[0].featureConfigs" in error and "BOOLEAN" in error
    # no association (deal) stored: acme is still on no plan
    assert await row_counts(db) == before and await call(client, "get_account", accountId="acme") == shown
    error = await call_error(client, "calculate_revenue", usage={}, pricePlan={
        "name": "Inline", "pricingCycleConfig": {"interval": "MONTHLY"},
        "rateCards": {"billingEntitlementRateCards": [limited_sso]}})
    assert "pricePlan.rateCards.billingEntitlementRateCards[0].featureConfigs" in error


async def test_metered_and_boolean_entitlements_across_a_cycle(client, clock):
    plan_id = await _setup(client)
    no_plan = await call(client, "check_entitlement", accountId="acme", featureId="api")
    assert (no_plan["entitled"], no_plan["reason"]) == (False, "NO_ACTIVE_PLAN")
    await call(client, "update_account", accountId="acme", pricePlanId=plan_id, effectiveFrom="2026-01-01T00:00:00Z")
    clock.set(datetime(2026, 1, 10, tzinfo=UTC))

    for n in (1, 2):
        await _call_api(client, n)
    # used 2 of 3: one more fits (2 + 1 = 3), two more do not (2 + 2 = 4 > 3).
    one = await call(client, "check_entitlement", accountId="acme", featureId="api")
    assert (one["entitled"], one["reason"], one["used"], one["limit"], one["remaining"], one["resetsAt"]) == (
        True, "ENTITLED", "2", "3", "1", "2026-02-01T00:00:00Z")
    two = await call(client, "check_entitlement", accountId="acme", featureId="api", quantity=2)
    assert (two["entitled"], two["reason"], two["quantity"]) == (False, "LIMIT_REACHED", "2")

    await _call_api(client, 3)  # at the limit
    at_limit = await call(client, "check_entitlement", accountId="acme-alias", featureId="api")
    assert (at_limit["accountId"], at_limit["entitled"], at_limit["used"], at_limit["remaining"]) == (
        "acme", False, "3", "0")
    await _call_api(client, 4)  # over: the event is recorded; entitlement stays refused, remaining stays 0
    over = await call(client, "check_entitlement", accountId="acme", featureId="api")
    assert (over["entitled"], over["used"], over["remaining"]) == (False, "4", "0")

    sso = await call(client, "check_entitlement", accountId="acme", featureId="sso", quantity=100)
    assert (sso["entitled"], sso["featureType"], sso["limit"], sso["used"]) == (True, "BOOLEAN", None, None)
    missing = await call(client, "check_entitlement", accountId="acme", featureId="export")
    assert (missing["entitled"], missing["reason"]) == (False, "FEATURE_NOT_IN_PLAN")

    listed = await call(client, "get_entitlements", accountId="acme")
    assert listed["pricePlanId"] == plan_id and listed["resetsAt"] == "2026-02-01T00:00:00Z"
    assert [(f["featureId"], f["entitled"], f["used"]) for f in listed["data"]] == [("api", False, "4"), ("sso", True, None)]

    clock.set(datetime(2026, 2, 1, tzinfo=UTC))  # a new cycle: usage resets
    reset = await call(client, "check_entitlement", accountId="acme", featureId="api", quantity=3)
    assert (reset["entitled"], reset["used"], reset["remaining"], reset["resetsAt"]) == (
        True, "0", "3", "2026-03-01T00:00:00Z")
    await _call_api(client, 5, when="2026-02-01T00:00:00Z")
    assert (await call(client, "check_entitlement", accountId="acme", featureId="api"))["used"] == "1"


async def test_archived_and_unknown_accounts(client):
    plan_id = await _setup(client)
    await call(client, "update_account", accountId="acme", pricePlanId=plan_id, effectiveFrom="2026-01-01T00:00:00Z")
    await call(client, "update_account", accountId="acme", status="ARCHIVED")
    archived = await call(client, "check_entitlement", accountId="acme", featureId="sso")
    assert (archived["entitled"], archived["reason"]) == (False, "ACCOUNT_ARCHIVED")
    listed = await call(client, "get_entitlements", accountId="acme")
    assert (listed["reason"], listed["data"]) == ("ACCOUNT_ARCHIVED", [])
    assert "account 'ghost' does not exist" in await call_error(client, "check_entitlement", accountId="ghost",
                                                                featureId="sso")
    assert "quantity: must be greater than 0" in await call_error(
        client, "check_entitlement", accountId="acme", featureId="sso", quantity=0)
