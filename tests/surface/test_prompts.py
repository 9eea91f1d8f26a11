"""Prompts through a real MCP client: listed with their arguments, each rendered with arguments, naming only
tools and resources that exist, with this engine's rules in them; bad arguments are clear errors."""

from __future__ import annotations

import re

import pytest
from mcp.shared.exceptions import MCPError

from helpers import at, call, tokens_meter
from surface_story import tell

EXPECTED = {
    "onboard_partner": {"customerName": True, "customerId": False, "accountId": False, "pricePlanId": False,
                        "invoiceCurrency": False, "startDate": False},
    "audit_overage_claim": {"invoiceId": True, "usageMeterId": False, "claimedQuantity": False, "claim": False},
    "check_feature_rollout": {"featureId": True, "customerId": False, "accountId": False},
    "load_daily_usage": {"day": True, "schemaName": False, "accountId": False},
    "close_month": {"month": True, "accountId": False},
    "design_price_change": {"pricePlanId": True, "goal": False, "customerId": False},
}


async def render(client, name: str, **arguments: str) -> str:
    result = await client.get_prompt(name, arguments)
    assert len(result.messages) == 1 and result.messages[0].role == "user"
    return result.messages[0].content.text


def flat(text: str) -> str:
    """The text with every run of whitespace (line breaks of the wrapped prose) as one space."""
    return " ".join(text.split())


def tools_named(text: str) -> list[str]:
    line = next(line for line in text.splitlines() if line.startswith("Tools: "))
    return [re.sub(r" \(.*\)$", "", name) for name in line.removeprefix("Tools: ").rstrip(".").split(", ")]


async def test_prompts_are_listed_with_titles_descriptions_and_arguments(client) -> None:
    prompts = {p.name: p for p in (await client.list_prompts()).prompts}
    assert {name: {a.name: a.required for a in p.arguments} for name, p in prompts.items()} == EXPECTED
    for p in prompts.values():
        assert p.title and p.description and "\n" not in p.description
        assert all(a.description for a in p.arguments)


async def test_each_prompt_renders_and_names_only_real_tools_and_readable_resources(client, clock) -> None:
    story = await tell(client, clock)
    tools = {t.name for t in (await client.list_tools()).tools}
    rendered = {
        "onboard_partner": await render(client, "onboard_partner", customerName="Initech LLC",
                                        pricePlanId=story.growth, startDate="2026-03-01"),
        "audit_overage_claim": await render(client, "audit_overage_claim", invoiceId=story.acme_january,
                                            usageMeterId="um_tokens", claimedQuantity="180",
                                            claim="we sent 180 tokens, not 220"),
        "check_feature_rollout": await render(client, "check_feature_rollout", featureId="beta_search",
                                              customerId="acme"),
        "load_daily_usage": await render(client, "load_daily_usage", day="2026-02-03", schemaName="llm"),
        "close_month": await render(client, "close_month", month="2026-01", accountId="acme-main"),
        "design_price_change": await render(client, "design_price_change", pricePlanId=story.growth,
                                            goal="cheaper above 1M tokens"),
    }
    assert set(rendered) == set(EXPECTED)
    for name, text in rendered.items():
        named = tools_named(text)
        assert named and set(named) <= tools, (name, set(named) - tools)
        # every concrete resource a prompt points at can be read (onboarding names the account it creates)
        for uri in re.findall(r"togai://[a-z-]+/[A-Za-z0-9_.:%-]+", text) if name != "onboard_partner" else ():
            await client.read_resource(uri.rstrip(".,"))


async def test_onboarding_uses_the_ids_and_the_plan_given(client) -> None:
    text = flat(await render(client, "onboard_partner", customerName="Initech LLC", pricePlanId="pp_x",
                        invoiceCurrency="eur", startDate="2026-03-01"))
    assert 'create_customer(id="initech-llc", name="Initech LLC", account={"id": "initech-llc-main"' in text
    assert '"invoiceCurrency": "EUR"' in text and "supportedCurrencies contains EUR" in text
    assert 'update_account(accountId="initech-llc-main", pricePlanId="pp_x", effectiveFrom="2026-03-01T00:00:00Z")' in text
    assert 'idempotencyKey="onboard-initech-llc-main-prepaid"' in text
    assert "togai://accounts/initech-llc-main" in text
    without_plan = flat(await render(client, "onboard_partner", customerName="Initech LLC", customerId="ini"))
    assert "create_usage_meter" in without_plan and "create_price_plan" in without_plan
    assert 'account={"id": "ini-main"' in without_plan


async def test_the_audit_cross_references_metrics_with_the_invoice_lines(client) -> None:
    text = flat(await render(client, "audit_overage_claim", invoiceId="inv_42", usageMeterId="um_tokens",
                        claimedQuantity="180", claim="we sent 180 tokens"))
    assert 'get_invoice(invoiceId="inv_42")' in text and 'The customer says: "we sent 180 tokens".' in text
    assert ('"name": "USAGE", "aggregationPeriod": "DAY", "groupBy": "USAGE_METER_ID", "filters": [{"fieldName": '
            '"ACCOUNT_ID", "fieldValues": ["<accountId>"]}, {"fieldName": "USAGE_METER_ID", "fieldValues": '
            '["um_tokens"]}]') in text
    assert '"name": "EVENTS", "groupBy": "EVENT_STATUS"' in text
    # late usage is metered in its period but billed on a later invoice: not a fault
    assert ("except usage that arrived after the period was invoiced under lateUsage BILL_ON_NEXT_INVOICE "
            "(ACCEPTED_LATE events): it counts in the period's metrics but is billed on a later invoice's "
            "LATE_USAGE_AMOUNT line") in text
    for status in ("DUPLICATE", "VOIDED", "NOT_BILLED_NO_PLAN", "NOT_BILLED_CYCLE_CLOSED", "ACCEPTED_LATE",
                   "LATE_USAGE_AMOUNT", "TRUE_UP_AMOUNT"):
        assert status in text
    assert ('calculate_revenue(pricePlanId=<the invoice\'s pricePlanId>, accountId=<accountId>, usage={"um_tokens": '
            '"<invoiced quantity>"})') in text
    assert '"180" gives the claimed amount' in text
    assert 'create_credit_note(invoiceId="inv_42", reason="ORDER_CHANGE"' in text
    assert "togai://invoices/inv_42 " in text and "togai://invoices/inv_42.json" in text


async def test_the_rollout_check_explains_every_refusal(client) -> None:
    text = flat(await render(client, "check_feature_rollout", featureId="beta_search", accountId="acme-eu"))
    assert 'check_entitlement(accountId=<id>, featureId="beta_search", quantity="1")' in text
    assert "Scope: account acme-eu." in text
    for reason in ("NO_ACTIVE_PLAN", "FEATURE_NOT_IN_PLAN", "LIMIT_REACHED", "ACCOUNT_ARCHIVED", "BOOLEAN", "METERED",
                   "BILLING_ENTITLEMENT", "featureCreditLimit"):
        assert reason in text
    everyone = flat(await render(client, "check_feature_rollout", featureId="beta_search"))
    assert 'list_accounts(status="ACTIVE") page by page (nextToken)' in everyone


async def test_loading_a_day_states_batches_keys_and_statuses(client) -> None:
    text = flat(await render(client, "load_daily_usage", day="2026-01-15", schemaName="api_call", accountId="acme-eu"))
    assert "(UTC: 2026-01-15T00:00:00Z to 2026-01-16T00:00:00Z, end exclusive)" in text
    assert "takes 1 to 1000 events per call" in text and "resend the SAME batch with the SAME ids" in text
    assert 'list_usage_meters(eventSchemaName="api_call")' in text
    assert '"filters": [{"fieldName": "SCHEMA_NAME", "fieldValues": ["api_call"]}]' in text
    for status in ("DUPLICATE", "NOT_BILLED_NO_PLAN", "NOT_BILLED_CYCLE_CLOSED", "ACCEPTED_LATE", "UNKNOWN_ACCOUNT",
                   "NEGATIVE_VALUE"):
        assert status in text
    assert "at most 100 per call" in text  # void_events' bound
    assert "togai-engine import events FILE" in text


async def test_closing_a_month_covers_due_drafts_payments_and_late_usage(client) -> None:
    text = flat(await render(client, "close_month", month="2025-12", accountId="acme-main"))
    assert "Close the billing of 2025-12 (periods overlapping 2025-12-01T00:00:00Z to 2026-01-01T00:00:00Z, UTC) for " \
           "account acme-main." in text
    assert 'list_invoices(accountId="acme-main", startTime="2025-12-01T00:00:00Z", endTime="2026-01-01T00:00:00Z")' in text
    for rule in ("gracePeriod (closesAt)", "togai-engine bill", 'update_invoice_status(invoiceId, status="PAID")',
                 "create_credit_note", "IGNORE (default) stores them NOT_BILLED_CYCLE_CLOSED", "BILL_ON_NEXT_INVOICE",
                 '"name": "REVENUE", "aggregationPeriod": "MONTH"', "STANDARD_ADVANCED"):
        assert rule in text


async def test_the_price_change_runs_the_pricing_lab_with_the_current_plan_as_control(client) -> None:
    text = flat(await render(client, "design_price_change", pricePlanId="pp_now", customerId="acme"))
    assert 'simulate_price_plan(candidates=["pp_now", <up to 4 inline plans>], customerId="acme", lastCycles=3)' in text
    assert "at most 5 candidates; lastCycles up to 120" in text
    assert "calculate_revenue(pricePlan=<inline plan>" in text and "togai-engine plans apply FILE" in text
    assert "create_price_plan under a NEW name" in text and "to the cent" in text


@pytest.mark.parametrize(("name", "arguments", "message"), [
    ("close_month", {"month": "2026-13"}, "month: '2026-13' is not a month; write it as YYYY-MM, e.g. 2026-01"),
    ("close_month", {"month": "January"}, "month: 'January' is not a month"),
    ("load_daily_usage", {"day": "2026-02-30"}, "day: '2026-02-30' is not a day; write it as YYYY-MM-DD"),
    ("onboard_partner", {"customerName": "X", "startDate": "soon"}, "startDate: 'soon' is not a day"),
    ("audit_overage_claim", {}, "arguments.invoiceId: required by prompt audit_overage_claim (the disputed invoice"),
    ("no_such_prompt", {}, "name: no prompt named 'no_such_prompt'; prompts/list names them"),
    # an argument the prompt does not take (a typo, or another prompt's) is named, not an internal error
    ("close_month", {"month": "2026-01", "acountId": "acme"},
     "arguments.acountId: prompt close_month takes no argument 'acountId'; it takes month, accountId"),
])
async def test_bad_arguments_are_errors_naming_the_field(client, name, arguments, message) -> None:
    with pytest.raises(MCPError) as raised:
        await client.get_prompt(name, arguments)
    assert message in raised.value.error.message


async def test_a_long_bad_value_is_quoted_cut_short(client) -> None:
    # errors quote at most 80 characters of a value, as the tools' do: never a megabyte echoed back
    for name, arguments in (("close_month", {"month": "1" * 100_000}), ("load_daily_usage", {"day": "1" * 100_000})):
        with pytest.raises(MCPError) as raised:
            await client.get_prompt(name, arguments)
        message = raised.value.error.message
        assert f"'{'1' * 80}…' is not a" in message and len(message) < 200, message[:300]


async def test_a_long_argument_name_the_prompt_does_not_take_is_quoted_cut_short(client) -> None:
    # the name is the caller's text as much as a value is: named in the error by its first 80 characters
    with pytest.raises(MCPError) as raised:
        await client.get_prompt("close_month", {"month": "2026-01", "x" * 100_000: "acme"})
    message = raised.value.error.message
    assert message.startswith(f"arguments.{'x' * 80}…: prompt close_month takes no argument '{'x' * 80}…'; it takes "
                              "month, accountId"), message[:300]
    assert len(message) < 300, message[:300]


async def test_loading_a_day_names_the_fields_a_rejected_event_has(client) -> None:
    """The agent reads rejectedEvents by the names the prompt gives: each must be a field ingest_batch_events
    returns for a rejected event (its output schema), or the agent looks for what is not there."""
    text = flat(await render(client, "load_daily_usage", day="2026-01-15"))
    named = re.search(r"rejectedEvents \(([^)]*)\)", text)
    assert named is not None, text
    tool = next(t for t in (await client.list_tools()).tools if t.name == "ingest_batch_events")
    fields = set(tool.output_schema["$defs"]["RejectedEventInfo"]["properties"])
    assert set(named.group(1).split(", ")) <= fields, (named.group(1), fields)
    assert "message" in named.group(1)  # what is wrong with the event, in words


async def test_prompts_change_a_plan_through_a_new_version(client) -> None:
    """A plan's content changes through versions (update_price_plan drafts the next, finalize_price_plan makes it
    the plan's and moves its accounts per migrationMode; plans README): no prompt says plans are immutable, and
    those that change pricing name that way, as well as a new plan attached with update_account."""
    raw = {
        "onboard_partner": await render(client, "onboard_partner", customerName="Initech LLC"),
        "check_feature_rollout": await render(client, "check_feature_rollout", featureId="beta_search"),
        "design_price_change": await render(client, "design_price_change", pricePlanId="pp_now"),
    }
    rendered = {name: flat(text) for name, text in raw.items()}
    for name, text in rendered.items():
        assert "immutable" not in text.lower(), name
        assert {"update_price_plan", "finalize_price_plan"} <= set(tools_named(raw[name])), name
        assert "update_price_plan(" in text and "finalize_price_plan(" in text, name
    assert ('update_price_plan(pricePlanId="pp_now", rateCards=<the winner\'s whole rateCards>) then '
            'finalize_price_plan(pricePlanId="pp_now", migrationMode="NEXT_CYCLE")') in rendered["design_price_change"]
    assert "create_price_plan under a NEW name" in rendered["design_price_change"]


def tokens_card(meter: str, rate: str) -> dict[str, object]:
    return {"name": "tokens", "usageMeterId": meter, "ratePlan": {"pricingModel": "TIERED", "slabs": [
        {"order": 1, "startAfter": "0", "priceType": "PER_UNIT"}]},
        "rateValues": [{"currency": "USD", "slabRates": [{"order": 1, "rate": rate}]}]}


async def test_the_audit_prices_the_line_with_the_version_and_the_deal_that_priced_it(client, clock) -> None:
    """An invoice is priced by its plan's version (pricePlanVersion) with the account's deal (isOverridden): the
    audit reads that version's cards and quotes with the account's deal, which is what reproduces the line; the
    plan alone (its latest version, no deal) quotes other rates."""
    meter = await tokens_meter(client)
    plan = await call(client, "create_price_plan", name="Tokens", pricingCycleConfig={
        "interval": "MONTHLY", "startOffset": {"dayOffset": "1"}, "gracePeriod": 0},
        rateCards={"usageRateCards": [tokens_card(meter, "0.01")]})
    await call(client, "create_customer", id="cust_acme", name="Acme", account={
        "id": "acme", "name": "Acme", "pricePlanId": plan["id"], "effectiveFrom": "2026-01-01T00:00:00Z",
        "rateCardOverrides": {"usageRateCards": [tokens_card(meter, "0.005")]}})
    await call(client, "ingest_event", event={"id": "e1", "schemaName": "llm", "timestamp": "2026-01-10T00:00:00Z",
                                              "accountId": "acme", "attributes": {"tokens": "1000"}})
    clock.set(at(2026, 2, 1))
    (invoice,) = (await call(client, "list_invoices", accountId="acme", status="DUE"))["data"]
    invoice = await call(client, "get_invoice", invoiceId=invoice["id"])
    (line,) = invoice["lineItems"]
    # the deal's rate: 1,000 × 0.005 = 5.00
    assert (line["value"], invoice["pricePlanVersion"], invoice["isOverridden"]) == ("5.00", 1, True)

    text = flat(await render(client, "audit_overage_claim", invoiceId=invoice["id"], usageMeterId=meter))
    assert "pricePlanVersion" in text and "isOverridden" in text
    assert 'get_price_plan(pricePlanId=<the invoice\'s pricePlanId>, version="<its pricePlanVersion>")' in text
    assert (f'calculate_revenue(pricePlanId=<the invoice\'s pricePlanId>, accountId=<accountId>, usage={{"{meter}": '
            '"<invoiced quantity>"})') in text
    # that quote reproduces the line; the plan's own rate would say 1,000 × 0.01 = 10.00
    quoted = await call(client, "calculate_revenue", pricePlanId=plan["id"], accountId="acme", usage={meter: "1000"})
    assert quoted["usageRateCards"][0]["amount"] == "5.00"
    plain = await call(client, "calculate_revenue", pricePlanId=plan["id"], usage={meter: "1000"})
    assert plain["usageRateCards"][0]["amount"] == "10.00"


async def test_prompts_that_make_plans_or_simulate_say_what_the_tools_refuse(client) -> None:
    """create_price_plan refuses featureConfigs on a BOOLEAN feature (no usageMeterId) and needs them on a metered
    one; simulate_price_plan needs billing:read besides plans:read. A prompt that leads there says so, rather than
    let the agent meet the refusal."""
    onboard = flat(await render(client, "onboard_partner", customerName="Initech LLC"))
    assert ('a metered feature has usageMeterId and featureConfigs [{"featureCreditLimit": "<per cycle>"}]; a '
            "BOOLEAN one has neither (featureConfigs on it is refused)") in onboard
    design = flat(await render(client, "design_price_change", pricePlanId="pp_now"))
    assert "simulate_price_plan needs scopes plans:read and billing:read" in design
