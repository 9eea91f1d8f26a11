"""completion/complete through a real MCP client: every id argument of the prompts and templates, from the
store, by prefix, bounded; and the prefix search is an index range scan whatever the collation."""

from __future__ import annotations

import pytest
from mcp.shared.exceptions import MCPError
from mcp_types import PromptReference, ResourceTemplateReference
from sqlalchemy import text

from helpers import call
from surface_story import tell
from togai_engine.app.lookup import prefix_successor


async def values(client, ref, name: str, value: str, **context: str) -> list[str]:
    result = await client.complete(ref, {"name": name, "value": value}, context or None)
    return result.completion.values


def prompt(name: str) -> PromptReference:
    return PromptReference(name=name)


def template(uri: str) -> ResourceTemplateReference:
    return ResourceTemplateReference(uri=uri)


async def test_every_id_argument_completes_by_prefix(client, clock) -> None:
    story = await tell(client, clock)
    # accounts: ids and aliases alike, in byte order
    assert await values(client, template("togai://accounts/{accountId}"), "accountId", "acme") == ["acme-eu", "acme-main"]
    assert await values(client, prompt("close_month"), "accountId", "g") == ["globex-main"]
    assert await values(client, prompt("check_feature_rollout"), "customerId", "") == ["acme", "globex"]
    every_invoice = sorted([story.acme_january, story.acme_february, story.globex_february,
                            *[i["id"] for i in (await call(client, "list_invoices", accountId="globex-main"))["data"]]])
    assert await values(client, template("togai://invoices/{invoiceId}"), "invoiceId", "inv_") == sorted(set(every_invoice))
    one = story.acme_january[:6]
    assert await values(client, template("togai://invoices/{invoiceId}.json"), "invoiceId", one) == sorted(
        i for i in set(every_invoice) if i.startswith(one))
    # with the account named in the context (an alias works): that account's invoices, newest period first
    assert await values(client, prompt("audit_overage_claim"), "invoiceId", "", accountId="acme-eu") == [
        story.acme_february, story.acme_january]
    assert await values(client, prompt("design_price_change"), "pricePlanId", "pp_") == sorted([story.growth,
                                                                                               story.starter])
    assert await values(client, template("togai://usage-meters/{usageMeterId}"), "usageMeterId", "um_") == [
        "um_requests", "um_tokens"]
    assert await values(client, prompt("check_feature_rollout"), "featureId", "beta") == ["beta_search"]
    # the context account's plans only: globex is on Starter, which has no feature
    assert await values(client, prompt("check_feature_rollout"), "featureId", "", accountId="globex-main") == []
    assert await values(client, prompt("check_feature_rollout"), "featureId", "", accountId="acme-main") == [
        "beta_search"]
    assert await values(client, prompt("onboard_partner"), "pricePlanId", "zz") == []


async def test_month_and_day_offer_the_recent_ones(client, clock) -> None:
    await tell(client, clock)  # the clock is at 5 February 2026
    assert await values(client, prompt("close_month"), "month", "2026") == ["2026-02", "2026-01"]
    assert (await values(client, prompt("close_month"), "month", ""))[:3] == ["2026-02", "2026-01", "2025-12"]
    assert await values(client, prompt("load_daily_usage"), "day", "2026-02-0") == [
        "2026-02-05", "2026-02-04", "2026-02-03", "2026-02-02", "2026-02-01"]


async def test_prefixes_are_literal_and_results_bounded(client) -> None:
    for customer in ("a_b", "axb", "a:c"):
        await call(client, "create_customer", id=customer, name=customer)
    # "_" is no wildcard (as it would be in LIKE)
    assert await values(client, prompt("check_feature_rollout"), "customerId", "a_") == ["a_b"]
    assert await values(client, prompt("check_feature_rollout"), "customerId", "a") == ["a:c", "a_b", "axb"]
    for i in range(25):
        await call(client, "create_customer", id=f"bulk-{i:02d}", name=f"Bulk {i}")
    result = await client.complete(prompt("check_feature_rollout"), {"name": "customerId", "value": "bulk-"})
    assert result.completion.values == [f"bulk-{i:02d}" for i in range(20)]
    assert result.completion.has_more is True and result.completion.total is None
    exact = await client.complete(prompt("check_feature_rollout"), {"name": "customerId", "value": "bulk-2"})
    assert exact.completion.values == [f"bulk-{i}" for i in range(20, 25)]
    assert (exact.completion.has_more, exact.completion.total) == (False, 5)


async def test_arguments_that_are_not_ids_or_not_the_refs_complete_to_nothing(client, clock) -> None:
    await tell(client, clock)
    assert await values(client, prompt("onboard_partner"), "customerName", "A") == []
    assert await values(client, prompt("close_month"), "invoiceId", "inv_") == []  # close_month takes no invoiceId
    with pytest.raises(MCPError) as raised:
        await client.complete(prompt("no_such_prompt"), {"name": "accountId", "value": ""})
    assert "no prompt named 'no_such_prompt'" in raised.value.error.message
    with pytest.raises(MCPError) as raised:
        await client.complete(template("togai://nothing/{accountId}"), {"name": "accountId", "value": ""})
    assert "is not a resource template of this server" in raised.value.error.message


def test_prefix_successor_is_the_least_string_above_the_prefix() -> None:
    assert prefix_successor("inv_") == "inv`"
    assert prefix_successor("a\U0010ffff") == "b"
    assert prefix_successor("a\ud7ff") == "a\ue000"  # past the surrogates, which text cannot hold
    assert prefix_successor("\U0010ffff") is None
    assert prefix_successor("") is None


PREFIX_QUERIES = {
    "ix_account_handles_handle_prefix": "SELECT handle FROM account_handles WHERE handle ~>=~ 'acme' AND handle ~<~ "
                                        "'acmf' ORDER BY handle USING ~<~ LIMIT 21",
    "ix_customers_id_prefix": "SELECT id FROM customers WHERE id ~>=~ 'a' AND id ~<~ 'b' ORDER BY id USING ~<~ LIMIT 21",
    "ix_invoices_id_prefix": "SELECT id FROM invoices WHERE id ~>=~ 'inv_' AND id ~<~ 'inv`' ORDER BY id USING ~<~ "
                             "LIMIT 21",
    "ix_price_plans_id_prefix": "SELECT id FROM price_plans WHERE id ~>=~ 'pp_' AND id ~<~ 'pp`' ORDER BY id USING ~<~ "
                                "LIMIT 21",
    "ix_usage_meters_id_prefix": "SELECT id FROM usage_meters WHERE id ~>=~ 'um_' AND id ~<~ 'um`' ORDER BY id USING "
                                 "~<~ LIMIT 21",
}


async def test_each_prefix_search_is_an_index_range_scan(db) -> None:
    """The lookups' query shape (app/lookup.py) can be served by the text_pattern_ops index of migration 0014,
    in order and without a sort: with sequential scans priced out, the plan is that index's scan."""
    async with db.unit_of_work() as session:
        definitions = dict((await session.execute(text(
            "SELECT indexname, indexdef FROM pg_indexes WHERE indexname LIKE 'ix\\_%\\_prefix'"))).tuples().all())
        assert set(definitions) == set(PREFIX_QUERIES)
        assert all("text_pattern_ops" in definition for definition in definitions.values())
        await session.execute(text("SET LOCAL enable_seqscan = off"))
        for index, query in PREFIX_QUERIES.items():
            plan = "\n".join((await session.execute(text(f"EXPLAIN {query}"))).scalars())
            assert f"Index Only Scan using {index}" in plan or f"Index Scan using {index}" in plan, plan
            assert "Sort" not in plan, plan


async def test_text_no_id_can_hold_completes_to_nothing(client, clock) -> None:
    await tell(client, clock)
    # a NUL or a lone surrogate, in the value or in an argument already given: no match, and no internal error
    assert await values(client, prompt("audit_overage_claim"), "invoiceId", "inv", accountId="a\x00b") == []
    assert await values(client, prompt("check_feature_rollout"), "featureId", "", accountId="a\x00b") == []
    assert await values(client, prompt("onboard_partner"), "pricePlanId", "\ud800") == []


async def test_feature_ids_come_from_the_plan_versions_that_grant_them(client, clock) -> None:
    """A plan's features are its versions' (update_price_plan + finalize_price_plan): a feature a finalized version
    added completes, for an account on that version as get_entitlements lists it; a DRAFT version grants nothing
    yet, so its feature is not offered."""
    story = await tell(client, clock)
    cycle = {"interval": "MONTHLY", "startOffset": {"dayOffset": "1"}, "gracePeriod": 1}
    fee = {"id": "platform", "rateValues": [{"currency": "USD", "rate": "10"}], "invoiceTiming": "IN_ARREARS"}
    await call(client, "update_price_plan", pricePlanId=story.starter, pricingCycleConfig=cycle, rateCards={
        "fixedFeeRateCards": [fee], "billingEntitlementRateCards": [{"featureId": "sso"}]})  # BOOLEAN
    await call(client, "finalize_price_plan", pricePlanId=story.starter, migrationMode="IMMEDIATE")
    assert [f["featureId"] for f in (await call(client, "get_entitlements", accountId="globex-main"))["data"]] \
        == ["sso"]
    assert await values(client, prompt("check_feature_rollout"), "featureId", "", accountId="globex-main") == ["sso"]
    assert await values(client, prompt("check_feature_rollout"), "featureId", "s") == ["sso"]
    # Growth's next version, still a DRAFT, adds a feature nobody has
    growth = await call(client, "get_price_plan", pricePlanId=story.growth)
    await call(client, "update_price_plan", pricePlanId=story.growth, rateCards={
        **growth["rateCards"], "billingEntitlementRateCards": [
            *growth["rateCards"]["billingEntitlementRateCards"], {"featureId": "drafted"}]})
    assert await values(client, prompt("check_feature_rollout"), "featureId", "") == ["beta_search", "sso"]
