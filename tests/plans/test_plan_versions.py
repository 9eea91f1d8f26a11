"""Plans over time, through the MCP tools with the clock moved across cycles: a plan's next version is drafted
(update_price_plan), finalized with each migrationMode (finalize_price_plan), and invoices name the version
that priced them. Amounts are worked out by hand next to each assertion.

Growth v1: 0.10 a token, platform fee 31.00 a month (no enableProration); v2: 0.20 a token, fee 62.00.
Monthly cycles from the 1st, gracePeriod 0: a month's invoice is DUE at its end. January has 31 days.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import text

from helpers import at, break_stored_deal, break_stored_version, call, call_error, clone_rows, iso, scalar, tokens_meter
from togai_engine.app import plan_changes, plan_versions
from togai_engine.plans.overrides import validate_overrides
from togai_engine.plans.schemas import RateCards
from togai_engine.plans.service import get_plan
from togai_engine.store.database import raw_connection

MONTHLY = {"interval": "MONTHLY", "startOffset": {"dayOffset": "1", "monthOffset": "NIL"}, "gracePeriod": 0}


def usage_card(meter: str, rate: str, currencies: tuple[str, ...] = ("USD",)) -> dict[str, Any]:
    return {"name": "api_calls", "usageMeterId": meter, "ratePlan": {"pricingModel": "TIERED", "slabs": [
        {"order": 1, "startAfter": 0, "priceType": "PER_UNIT"}]},
        "rateValues": [{"currency": c, "slabRates": [{"order": 1, "rate": rate}]} for c in currencies]}


def cards(meter: str, rate: str, monthly_fee: str, currencies: tuple[str, ...] = ("USD",)) -> dict[str, Any]:
    return {"usageRateCards": [usage_card(meter, rate, currencies)],
            "fixedFeeRateCards": [{"id": "platform", "rateValues": [
                {"currency": c, "rate": monthly_fee} for c in currencies]}]}


async def growth(client: Any, currencies: tuple[str, ...] = ("USD",)) -> tuple[str, str]:
    """Growth v1 -> (plan id, meter id)."""
    meter = await tokens_meter(client)
    plan = await call(client, "create_price_plan", name="Growth", pricingCycleConfig=MONTHLY,
                      rateCards=cards(meter, "0.10", "31", currencies), supportedCurrencies=list(currencies))
    return plan["id"], meter


async def account(client: Any, account_id: str, plan_id: str, since: str, **extra: Any) -> None:
    await call(client, "create_customer", id=f"cust_{account_id}", name="Customer", account={
        "id": account_id, "name": account_id, "pricePlanId": plan_id, "effectiveFrom": since, **extra})


def cheap_tokens(meter: str) -> dict[str, Any]:
    """Acme's deal: tokens at 0.05 (the plan's api_calls card says 0.10)."""
    return {"usageRateCards": [usage_card(meter, "0.05")]}


async def usage(client: Any, account_id: str, when: str, tokens: str, event_id: str) -> None:
    result = await call(client, "ingest_event", event={
        "id": event_id, "schemaName": "llm", "timestamp": when, "accountId": account_id,
        "attributes": {"tokens": tokens}})
    assert result["status"] == "ACCEPTED", result


async def version_2(client: Any, plan_id: str, meter: str, mode: str) -> dict[str, Any]:
    await call(client, "update_price_plan", pricePlanId=plan_id, rateCards=cards(meter, "0.20", "62"))
    return await call(client, "finalize_price_plan", pricePlanId=plan_id, migrationMode=mode)


async def invoices(client: Any, account_id: str) -> list[tuple[str, str, str, int, str]]:
    """(start, end, status, pricePlanVersion, total) oldest first."""
    page = await call(client, "list_invoices", accountId=account_id, pageSize=100)
    return sorted((i["startDate"], i["endDate"], i["status"], i["pricePlanVersion"], i["totalAmount"])
                  for i in page["data"])


async def test_a_draft_is_never_attached_and_none_moves_no_account(client, clock) -> None:
    plan_id, meter = await growth(client)
    await account(client, "early", plan_id, iso(2026, 1, 1))
    clock.set(at(2026, 1, 10))
    draft = await call(client, "update_price_plan", pricePlanId=plan_id, rateCards=cards(meter, "0.30", "62"))
    assert (draft["version"], draft["status"]) == (2, "DRAFT")
    # a second update replaces the one DRAFT (still version 2)
    draft = await call(client, "update_price_plan", pricePlanId=plan_id, rateCards=cards(meter, "0.20", "62"),
                       description="v2")
    assert (draft["version"], draft["status"], draft["description"]) == (2, "DRAFT", "v2")

    shown = await call(client, "get_price_plan", pricePlanId=plan_id)  # ACTIVE by default
    assert (shown["version"], shown["status"]) == (1, "ACTIVE")
    assert [(v["version"], v["status"]) for v in shown["versions"]] == [(1, "ACTIVE"), (2, "DRAFT")]
    latest = await call(client, "get_price_plan", pricePlanId=plan_id, version="LATEST")
    assert (latest["version"], latest["status"]) == (2, "DRAFT")
    assert latest["rateCards"]["usageRateCards"][0]["rateValues"][0]["slabRates"][0]["rate"] == "0.20"
    first = await call(client, "get_price_plan", pricePlanId=plan_id, version="1")
    assert first["rateCards"]["usageRateCards"][0]["rateValues"][0]["slabRates"][0]["rate"] == "0.10"

    # attaching while version 2 is a DRAFT gives version 1: a DRAFT cannot be attached
    await account(client, "during_draft", plan_id, iso(2026, 1, 10))
    finalized = await call(client, "finalize_price_plan", pricePlanId=plan_id, migrationMode="NONE")
    assert (finalized["version"], finalized["migratedAccounts"], finalized["skippedAccounts"]) == (2, [], [])
    # NONE: new attachments get the new version
    await account(client, "after", plan_id, iso(2026, 1, 10))
    shown = await call(client, "get_price_plan", pricePlanId=plan_id)
    assert [(v["version"], v["status"], v["migrationMode"]) for v in shown["versions"]] == [
        (1, "ACTIVE", None), (2, "ACTIVE", "NONE")]
    assert (await call(client, "list_price_plans"))["data"][0]["version"] == 2

    for account_id in ("early", "during_draft", "after"):
        await usage(client, account_id, "2026-01-12T00:00:00Z", "100", f"u_{account_id}")
    clock.set(at(2026, 2, 1))
    # v1: 100 × 0.10 = 10.00 + 31.00 = 41.00 (a first partial period charges the whole fee: no enableProration)
    assert (await invoices(client, "early"))[0] == (iso(2026, 1, 1), iso(2026, 2, 1), "DUE", 1, "41.00")
    assert (await invoices(client, "during_draft"))[0] == (iso(2026, 1, 10), iso(2026, 2, 1), "DUE", 1, "41.00")
    # v2: 100 × 0.20 = 20.00 + 62.00 = 82.00
    assert (await invoices(client, "after"))[0] == (iso(2026, 1, 10), iso(2026, 2, 1), "DUE", 2, "82.00")
    # NONE never moves them later either: February's DRAFT of "early" is still version 1
    assert (await invoices(client, "early"))[1][2:4] == ("DRAFT", 1)


async def test_next_cycle_moves_each_account_at_its_cycle_end(client, clock) -> None:
    plan_id, meter = await growth(client)
    await account(client, "acme", plan_id, iso(2026, 1, 1))
    await usage(client, "acme", "2026-01-05T00:00:00Z", "100", "jan")
    clock.set(at(2026, 1, 20))
    result = await version_2(client, plan_id, meter, "NEXT_CYCLE")
    assert [(m["accountId"], m["fromVersion"], m["effectiveFrom"]) for m in result["migratedAccounts"]] == [
        ("acme", 1, iso(2026, 2, 1))]
    draft = await call(client, "get_invoice", accountId="acme")  # January is still priced by version 1
    assert (draft["pricePlanVersion"], draft["totalAmount"]) == (1, "41.00")
    clock.set(at(2026, 2, 5))
    await usage(client, "acme", "2026-02-03T00:00:00Z", "100", "feb")
    clock.set(at(2026, 3, 1))
    assert await invoices(client, "acme") == [
        (iso(2026, 1, 1), iso(2026, 2, 1), "DUE", 1, "41.00"),  # 100 × 0.10 + 31.00
        (iso(2026, 2, 1), iso(2026, 3, 1), "DUE", 2, "82.00"),  # a whole cycle on v2: 100 × 0.20 + 62.00
        (iso(2026, 3, 1), iso(2026, 4, 1), "DRAFT", 2, "62.00"),
    ]


async def test_immediate_splits_the_cycle_and_prorates_like_a_plan_change(client, clock) -> None:
    plan_id, meter = await growth(client)
    await account(client, "acme", plan_id, iso(2026, 1, 1))
    await usage(client, "acme", "2026-01-05T00:00:00Z", "100", "before")
    clock.set(at(2026, 1, 16))
    result = await version_2(client, plan_id, meter, "IMMEDIATE")
    assert [(m["accountId"], m["effectiveFrom"]) for m in result["migratedAccounts"]] == [("acme", iso(2026, 1, 16))]
    clock.set(at(2026, 1, 21))
    await usage(client, "acme", "2026-01-20T00:00:00Z", "50", "after")
    clock.set(at(2026, 2, 1))
    assert await invoices(client, "acme") == [
        # v1 for 15 of 31 days: fee 31 × 15/31 = 15.00; usage 100 × 0.10 = 10.00 -> 25.00
        (iso(2026, 1, 1), iso(2026, 1, 16), "DUE", 1, "25.00"),
        # v2 for 16 of 31 days: fee 62 × 16/31 = 32.00; usage 50 × 0.20 = 10.00 -> 42.00
        (iso(2026, 1, 16), iso(2026, 2, 1), "DUE", 2, "42.00"),
        # the cycles did not move (same anchor): February is a whole month on v2
        (iso(2026, 2, 1), iso(2026, 3, 1), "DRAFT", 2, "62.00"),
    ]


async def test_start_of_current_cycle_reprices_the_open_period_only(client, clock) -> None:
    plan_id, meter = await growth(client)
    await account(client, "acme", plan_id, iso(2026, 1, 1))
    await usage(client, "acme", "2026-01-05T00:00:00Z", "100", "jan")
    clock.set(at(2026, 2, 10))
    await usage(client, "acme", "2026-02-03T00:00:00Z", "100", "feb")
    assert (await invoices(client, "acme"))[1][2:] == ("DRAFT", 1, "41.00")  # 100 × 0.10 + 31.00
    result = await version_2(client, plan_id, meter, "START_OF_CURRENT_CYCLE")
    assert [(m["accountId"], m["effectiveFrom"]) for m in result["migratedAccounts"]] == [("acme", iso(2026, 2, 1))]
    assert await invoices(client, "acme") == [
        (iso(2026, 1, 1), iso(2026, 2, 1), "DUE", 1, "41.00"),  # DUE: never re-priced
        (iso(2026, 2, 1), iso(2026, 3, 1), "DRAFT", 2, "82.00"),  # February from its start: 100 × 0.20 + 62.00
    ]


async def test_an_enterprise_deal_prices_the_same_on_the_invoice_and_in_the_lab(client, clock) -> None:
    plan_id, meter = await growth(client)
    await account(client, "plain", plan_id, iso(2026, 1, 1))
    await account(client, "acme", plan_id, iso(2026, 1, 1), rateCardOverrides=cheap_tokens(meter))
    for account_id in ("plain", "acme"):
        await usage(client, account_id, "2026-01-05T00:00:00Z", "1000", f"u_{account_id}")
    clock.set(at(2026, 1, 20))
    draft = await call(client, "get_invoice", accountId="acme")
    # the deal: 1000 × 0.05 = 50.00 (the plan says 0.10) + the plan's fee 31.00 = 81.00
    assert (draft["isOverridden"], draft["lineItems"][0]["value"], draft["totalAmount"]) == (True, "50.00", "81.00")
    assert (await call(client, "get_invoice", accountId="plain"))["isOverridden"] is False
    window = {"startTime": iso(2026, 1, 1), "endTime": iso(2026, 2, 1)}
    lab = await call(client, "simulate_price_plan", candidates=[plan_id], accountIds=["acme", "plain"], **window)
    cycles = {a["accountId"]: a["cycles"][0] for a in lab["accounts"]}
    # the DRAFT's own amount, and the account's own plan priced with its deal: 81.00 both
    assert (cycles["acme"]["actual"], cycles["acme"]["candidates"][0]["amount"]) == ("81.00", "81.00")
    assert (cycles["plain"]["actual"], cycles["plain"]["candidates"][0]["amount"]) == ("131.00", "131.00")

    clock.set(at(2026, 2, 1))
    due = (await call(client, "list_invoices", accountId="acme", status="DUE"))["data"][0]
    assert (due["isOverridden"], due["pricePlanVersion"], due["totalAmount"]) == (True, 1, "81.00")
    lab = await call(client, "simulate_price_plan", candidates=[plan_id], accountIds=["acme"], **window)
    cycle = lab["accounts"][0]["cycles"][0]
    assert (cycle["status"], cycle["actual"], cycle["candidates"][0]["amount"]) == ("DUE", "81.00", "81.00")

    # A migration keeps the deal: from March on v2's fee (62.00) with acme's 0.05 a token
    await version_2(client, plan_id, meter, "NEXT_CYCLE")
    clock.set(at(2026, 3, 2))
    await usage(client, "acme", "2026-03-01T12:00:00Z", "1000", "mar")
    march = await call(client, "get_invoice", accountId="acme")
    # 1000 × 0.05 = 50.00 + 62.00 = 112.00
    assert (march["pricePlanVersion"], march["isOverridden"], march["totalAmount"]) == (2, True, "112.00")
    on = (await call(client, "get_account", accountId="acme"))["financial"]["pricePlan"]
    assert (on["version"], on["isOverridden"], on["effectiveFrom"]) == (2, True, iso(2026, 3, 1))


async def test_ignore_override_modes_drop_the_deal(client, clock) -> None:
    plan_id, meter = await growth(client)
    await account(client, "acme", plan_id, iso(2026, 1, 1), rateCardOverrides=cheap_tokens(meter))
    clock.set(at(2026, 1, 16))
    await version_2(client, plan_id, meter, "IMMEDIATE_IGNORE_OVERRIDE")
    await usage(client, "acme", "2026-01-20T00:00:00Z", "100", "u")
    draft = await call(client, "get_invoice", accountId="acme")
    # v2 without the deal from 16 Jan: 62 × 16/31 = 32.00 + 100 × 0.20 = 20.00 -> 52.00
    assert (draft["startDate"], draft["isOverridden"], draft["totalAmount"]) == (iso(2026, 1, 16), False, "52.00")


async def test_a_deal_that_no_longer_validates_keeps_its_account_back_and_never_stops_the_others(
        client, clock, db, monkeypatch) -> None:
    plan_id, meter = await growth(client)
    await account(client, "plain", plan_id, iso(2026, 1, 1))
    await account(client, "acme", plan_id, iso(2026, 1, 1), rateCardOverrides=cheap_tokens(meter))
    await account(client, "bad", plan_id, iso(2026, 1, 1), rateCardOverrides=cheap_tokens(meter))
    # An upgrade with stricter checks, or a hand edit: bad's stored deal no longer parses; the engine restarts
    await break_stored_deal(db, monkeypatch, "bad", "{usageRateCards,0,rateValues,0,slabRates,0,rate}", '"0.05 USD"')

    clock.set(at(2026, 1, 16))
    result = await version_2(client, plan_id, meter, "IMMEDIATE")  # keeps the deals
    assert sorted((m["accountId"], m["effectiveFrom"]) for m in result["migratedAccounts"]) == [
        ("acme", iso(2026, 1, 16)), ("plain", iso(2026, 1, 16))]
    assert [s["accountId"] for s in result["skippedAccounts"]] == ["bad"]
    reason = result["skippedAccounts"][0]["reason"]
    assert "account 'bad'" in reason and "it stays on version 1" in reason
    assert "rateCardOverrides.usageRateCards[0].rateValues[0].slabRates[0].rate: '0.05 USD' is not a decimal" in reason
    assert "update_account(pricePlanId, effectiveFrom, rateCardOverrides)" in reason
    clock.set(at(2026, 1, 21))
    await usage(client, "acme", "2026-01-20T00:00:00Z", "100", "u_acme")
    draft = await call(client, "get_invoice", accountId="acme")
    # v2 with acme's deal from 16 Jan: fee 62 × 16/31 = 32.00 + 100 × 0.05 = 5.00 -> 37.00
    assert (draft["startDate"], draft["pricePlanVersion"], draft["isOverridden"], draft["totalAmount"]) == (
        iso(2026, 1, 16), 2, True, "37.00")

    # the fix the reason names: a valid deal from the start of its first period not invoiced puts bad on version 2
    await call(client, "update_account", accountId="bad", pricePlanId=plan_id, effectiveFrom=iso(2026, 1, 1),
               rateCardOverrides=cheap_tokens(meter))
    draft = await call(client, "get_invoice", accountId="bad")
    # v2 with the deal for the whole of January: fee 62.00, no usage
    assert (draft["startDate"], draft["pricePlanVersion"], draft["isOverridden"], draft["totalAmount"]) == (
        iso(2026, 1, 1), 2, True, "62.00")


async def test_accounts_on_a_version_that_no_longer_validates_stay_on_it_and_never_stop_the_others(
        client, clock, db, monkeypatch) -> None:
    plan_id, meter = await growth(client)
    await account(client, "old", plan_id, iso(2026, 1, 1))
    await version_2(client, plan_id, meter, "NONE")  # "old" stays on version 1
    await account(client, "new", plan_id, iso(2026, 1, 1))  # on version 2
    # An upgrade with stricter checks, or a hand edit: version 1 no longer parses; the engine restarts
    await break_stored_version(db, monkeypatch, plan_id, 1, "{rateCards,fixedFeeRateCards,0,rateValues,0,rate}",
                               '"31 USD"')

    clock.set(at(2026, 1, 16))
    await call(client, "update_price_plan", pricePlanId=plan_id, rateCards=cards(meter, "0.30", "93"))
    result = await call(client, "finalize_price_plan", pricePlanId=plan_id, migrationMode="IMMEDIATE")
    assert [(m["accountId"], m["fromVersion"], m["effectiveFrom"]) for m in result["migratedAccounts"]] == [
        ("new", 2, iso(2026, 1, 16))]
    assert [s["accountId"] for s in result["skippedAccounts"]] == ["old"]
    reason = result["skippedAccounts"][0]["reason"]
    assert f"version 1 of price plan {plan_id!r} no longer validates" in reason and "it stays on version 1" in reason
    assert "rateCards.fixedFeeRateCards[0].rateValues[0].rate: '31 USD' is not a decimal number" in reason
    draft = await call(client, "get_invoice", accountId="new")
    # v2 for 15 of 31 days: 62 × 15/31 = 30.00, then v3 from 16 Jan: 93 × 16/31 = 48.00 (no usage)
    assert (draft["startDate"], draft["pricePlanVersion"], draft["totalAmount"]) == (iso(2026, 1, 16), 3, "48.00")


async def test_refusals_name_the_field(client, clock) -> None:
    plan_id, meter = await growth(client, ("USD", "EUR"))
    two = cards(meter, "0.10", "31", ("USD", "EUR"))
    await call(client, "update_price_plan", pricePlanId=plan_id, rateCards=two)  # nobody attached: any change goes
    await account(client, "eu", plan_id, iso(2026, 1, 1), invoiceCurrency="EUR")

    error = await call_error(client, "update_price_plan", pricePlanId=plan_id, rateCards=cards(meter, "0.2", "62"),
                             supportedCurrencies=["USD"])
    assert "supportedCurrencies: drops the invoiceCurrency" in error and "eu (EUR)" in error
    error = await call_error(client, "update_price_plan", pricePlanId=plan_id, rateCards=two,
                             pricingCycleConfig={**MONTHLY, "interval": "QUARTERLY", "startOffset": None})
    assert "pricingCycleConfig.interval: " in error
    error = await call_error(client, "update_price_plan", pricePlanId=plan_id, rateCards={
        "usageRateCards": [{**usage_card(meter, "0.1", ("USD", "EUR")), "usageMeterId": "um_nope"}]})
    assert "rateCards.usageRateCards[0].usageMeterId: " in error
    # gracePeriod may change while accounts are on the plan
    graced = await call(client, "update_price_plan", pricePlanId=plan_id, rateCards=two,
                        pricingCycleConfig={**MONTHLY, "gracePeriod": 2})
    assert graced["pricingCycleConfig"]["gracePeriod"] == 2

    deal = {"usageRateCards": [{**usage_card(meter, "0.05", ("USD", "EUR")), "name": "calls"}]}
    error = await call_error(client, "update_account", accountId="eu", pricePlanId=plan_id, rateCardOverrides=deal)
    assert "rateCardOverrides.usageRateCards[0].name: must name the usageRateCard" in error and "api_calls" in error
    error = await call_error(client, "update_account", accountId="eu", pricePlanId=plan_id,
                             rateCardOverrides={"usageRateCards": [usage_card(meter, "0.05")]})  # no EUR rate
    assert "rateCardOverrides.usageRateCards[0]" in error and "EUR" in error
    negative = usage_card(meter, "-1", ("USD", "EUR"))
    error = await call_error(client, "update_account", accountId="eu", pricePlanId=plan_id,
                             rateCardOverrides={"usageRateCards": [negative]})
    assert "rateCardOverrides.usageRateCards[0].rateValues[0].slabRates[0].rate" in error
    error = await call_error(client, "update_account", accountId="eu", name="x",
                             rateCardOverrides={"usageRateCards": [negative]})
    assert "rateCardOverrides: applies to the plan attached in the same call" in error

    error = await call_error(client, "get_price_plan", pricePlanId=plan_id, version="newest")
    assert "version: give LATEST, ACTIVE or a version number" in error
    assert "has no version 9" in await call_error(client, "get_price_plan", pricePlanId=plan_id, version="9")

    # a deal on a card the next version drops cannot move with the account
    await call(client, "update_account", accountId="eu", pricePlanId=plan_id, effectiveFrom=iso(2026, 1, 1),
               rateCardOverrides={"usageRateCards": [usage_card(meter, "0.05", ("USD", "EUR"))]})
    await call(client, "finalize_price_plan", pricePlanId=plan_id, migrationMode="NONE")
    renamed = {**two, "usageRateCards": [{**two["usageRateCards"][0], "name": "tokens"}]}
    await call(client, "update_price_plan", pricePlanId=plan_id, rateCards=renamed)
    error = await call_error(client, "finalize_price_plan", pricePlanId=plan_id, migrationMode="NEXT_CYCLE")
    assert "migrationMode: account 'eu' has rateCardOverrides replacing usageRateCard 'api_calls'" in error
    await call(client, "finalize_price_plan", pricePlanId=plan_id, migrationMode="NEXT_CYCLE_IGNORE_OVERRIDE")
    error = await call_error(client, "finalize_price_plan", pricePlanId=plan_id, migrationMode="NONE")
    assert "pricePlanId: price plan" in error and "has no DRAFT version" in error


async def test_a_period_in_grace_keeps_its_version_and_a_scheduled_plan_starts_on_the_new_one(client, clock) -> None:
    meter = await tokens_meter(client)
    graced = {**MONTHLY, "gracePeriod": 3}
    plan_id = (await call(client, "create_price_plan", name="Graced", pricingCycleConfig=graced,
                          rateCards=cards(meter, "0.10", "31")))["id"]
    await account(client, "acme", plan_id, iso(2026, 1, 1))
    await account(client, "later", plan_id, iso(2026, 3, 1))  # scheduled: starts in March
    await usage(client, "acme", "2026-01-05T00:00:00Z", "100", "jan")
    clock.set(at(2026, 2, 2))  # January is in its grace period: still DRAFT
    await call(client, "update_price_plan", pricePlanId=plan_id, rateCards=cards(meter, "0.20", "62"))
    result = await call(client, "finalize_price_plan", pricePlanId=plan_id, migrationMode="START_OF_CURRENT_CYCLE")
    assert sorted((m["accountId"], m["effectiveFrom"]) for m in result["migratedAccounts"]) == [
        ("acme", iso(2026, 2, 1)), ("later", iso(2026, 3, 1))]
    assert await invoices(client, "acme") == [
        (iso(2026, 1, 1), iso(2026, 2, 1), "DRAFT", 1, "41.00"),  # the previous cycle is not the current one
        (iso(2026, 2, 1), iso(2026, 3, 1), "DRAFT", 2, "62.00"),
    ]
    clock.set(at(2026, 3, 2))
    assert (await invoices(client, "later"))[0] == (iso(2026, 3, 1), iso(2026, 4, 1), "DRAFT", 2, "62.00")


async def test_an_account_whose_billing_is_stuck_is_migrated_and_the_result_names_its_billing_problem(
        client, clock, db) -> None:
    """A finalize closes its accounts' due periods before it moves them; an account whose bill run fails there (its
    billing progress edited by hand) is still moved, as its stored progress stands, but the result says so
    (migratedAccounts[].billingProblem) instead of listing it like an account that billed."""
    plan_id, meter = await growth(client)
    await account(client, "bad", plan_id, iso(2026, 1, 1))
    await account(client, "good", plan_id, iso(2026, 1, 1))
    clock.set(at(2026, 2, 2))
    assert (await invoices(client, "bad"))[0][2:] == ("DUE", 1, "31.00")  # January
    async with db.unit_of_work() as session:  # a hand edit: bad's billing progress forgets its invoiced January
        await session.execute(text("UPDATE account_billing SET billed_until = NULL WHERE account_id = 'bad'"))
    clock.set(at(2026, 3, 5))
    result = await version_2(client, plan_id, meter, "START_OF_CURRENT_CYCLE")
    moved = {m["accountId"]: m for m in result["migratedAccounts"]}
    assert {a: (m["effectiveFrom"], m["billingProblem"]) for a, m in moved.items() if a == "good"} == {
        "good": (iso(2026, 3, 1), None)}
    assert moved["bad"]["effectiveFrom"] == iso(2026, 3, 1)
    problem = moved["bad"]["billingProblem"]
    assert problem.startswith("its bill run fails (before this move and after it): account 'bad': its invoice "), problem
    assert "account_billing.billed_until = NULL" in problem
    assert problem.endswith("It was moved as its stored billing progress stands (no period invoiced); nothing more "
                            "of it is invoiced until that is fixed, and get_account's billingProblem names it"), problem
    assert result["skippedAccounts"] == []


async def test_an_account_whose_late_usage_alone_stays_pending_is_migrated_without_a_billing_problem(
        client, clock, db) -> None:
    """A run that bills an account's invoices but cannot price its pending late usage (its period's invoice edited by
    hand into a currency the plan does not price) has not stuck the account's billing: the finalize's run after the
    move fails that way too, and the migrated account's billingProblem stays null (what is pending is
    get_account's pendingLateUsage.problem), as for the run before the move."""
    meter = await tokens_meter(client)
    plan = await call(client, "create_price_plan", name="Growth", pricingCycleConfig=MONTHLY,
                      rateCards=cards(meter, "0.10", "31"), lateUsage="BILL_ON_NEXT_INVOICE")
    await account(client, "bad", plan["id"], iso(2026, 1, 1))
    clock.set(at(2026, 2, 3))
    assert (await invoices(client, "bad"))[0][2:] == ("DUE", 1, "31.00")  # January
    result = await call(client, "ingest_event", event={
        "id": "late", "schemaName": "llm", "timestamp": iso(2026, 1, 20), "accountId": "bad",
        "attributes": {"tokens": "10"}})
    assert result["status"] == "ACCEPTED_LATE", result
    async with db.unit_of_work() as session:
        await session.execute(text("UPDATE invoices SET currency = 'EUR' WHERE account_id = 'bad' AND status = 'DUE'"))
    clock.set(at(2026, 2, 10))
    pending = (await call(client, "get_account", accountId="bad"))["financial"]
    assert pending["billingProblem"] is None and "does not support EUR" in pending["pendingLateUsage"]["problem"]
    result = await version_2(client, plan["id"], meter, "IMMEDIATE")
    [moved] = result["migratedAccounts"]
    assert (moved["accountId"], moved["effectiveFrom"], moved["billingProblem"]) == ("bad", iso(2026, 2, 10), None)
    financial = (await call(client, "get_account", accountId="bad"))["financial"]
    assert financial["billingProblem"] is None and "does not support EUR" in financial["pendingLateUsage"]["problem"]


async def test_a_deal_given_at_creation_prices_like_one_given_later(client, clock, db) -> None:
    plan_id, meter = await growth(client)
    deal = {**cheap_tokens(meter), "fixedFeeRateCards": [
        {"id": "platform", "rateValues": [{"currency": "USD", "rate": "20"}]}]}
    await call(client, "create_customer", id="cust_acme", name="Acme")
    created = await call(client, "create_account", id="acme", customerId="cust_acme", name="Acme",
                         pricePlanId=plan_id, effectiveFrom=iso(2026, 1, 1), rateCardOverrides=deal)
    assert created["id"] == "acme"
    # the inline account of create_customer takes the same deal
    await account(client, "globex", plan_id, iso(2026, 1, 1), rateCardOverrides=deal)
    await account(client, "plain", plan_id, iso(2026, 1, 1))
    for account_id in ("acme", "globex", "plain"):
        await usage(client, account_id, "2026-01-05T00:00:00Z", "1000", f"u_{account_id}")
    clock.set(at(2026, 2, 1))
    # the deal: 1000 × 0.05 = 50.00 + its fee 20.00 = 70.00; the plan: 1000 × 0.10 = 100.00 + 31.00 = 131.00
    assert (await invoices(client, "acme"))[0] == (iso(2026, 1, 1), iso(2026, 2, 1), "DUE", 1, "70.00")
    assert (await invoices(client, "globex"))[0] == (iso(2026, 1, 1), iso(2026, 2, 1), "DUE", 1, "70.00")
    assert (await invoices(client, "plain"))[0] == (iso(2026, 1, 1), iso(2026, 2, 1), "DUE", 1, "131.00")
    for account_id, deal_on in (("acme", True), ("globex", True), ("plain", False)):
        on = (await call(client, "get_account", accountId=account_id))["financial"]["pricePlan"]
        assert (on["id"], on["isOverridden"]) == (plan_id, deal_on)
    # creating again with the same id: the same call returns the account and attaches nothing; one with the plan
    # from another instant is refused (it would split the association in two) and attaches nothing either
    again = await call(client, "create_account", id="acme", customerId="cust_acme", name="Acme",
                       pricePlanId=plan_id, effectiveFrom=iso(2026, 1, 1), rateCardOverrides=deal)
    assert again["id"] == "acme"
    error = await call_error(client, "create_account", id="acme", customerId="cust_acme", name="Acme",
                             pricePlanId=plan_id, effectiveFrom=iso(2026, 1, 15), rateCardOverrides=deal)
    assert "effectiveFrom: account 'acme' already exists with a different effectiveFrom" in error
    assert len(await invoices(client, "acme")) == 2
    async with db.unit_of_work() as session:
        assert await session.scalar(text("SELECT count(*) FROM plan_associations WHERE account_id = 'acme'")) == 1


async def test_a_deal_at_creation_is_refused_without_a_plan_or_with_a_card_the_plan_lacks(client, clock) -> None:
    plan_id, meter = await growth(client)
    await call(client, "create_customer", id="cust_acme", name="Acme")
    deal = cheap_tokens(meter)
    error = await call_error(client, "create_account", id="acme", customerId="cust_acme", name="Acme",
                             rateCardOverrides=deal)
    assert "rateCardOverrides: applies to the plan attached in the same call; add pricePlanId" in error
    assert "does not exist" in await call_error(client, "get_account", accountId="acme")  # nothing was created
    error = await call_error(client, "create_customer", id="cust_globex", name="Globex", account={
        "id": "globex", "name": "Globex", "rateCardOverrides": deal})
    assert "account.rateCardOverrides: applies to the plan attached in the same call" in error
    misnamed = {"usageRateCards": [{**usage_card(meter, "0.05"), "name": "calls"}]}
    error = await call_error(client, "create_customer", id="cust_globex", name="Globex", account={
        "id": "globex", "name": "Globex", "pricePlanId": plan_id, "rateCardOverrides": misnamed})
    assert "account.rateCardOverrides.usageRateCards[0].name: must name the usageRateCard" in error
    assert "api_calls" in error
    error = await call_error(client, "create_account", id="acme", customerId="cust_acme", name="Acme",
                             pricePlanId=plan_id, rateCardOverrides={"usageRateCards": [usage_card(meter, "-1")]})
    assert "rateCardOverrides.usageRateCards[0].rateValues[0].slabRates[0].rate" in error
    error = await call_error(client, "create_account", id="acme", customerId="cust_acme", name="Acme",
                             pricePlanId=plan_id, rateCardOverrides={"usageRateCards": [{"name": "api_calls"}]})
    assert "rateCardOverrides.usageRateCards[0]" in error
    # every refusal left nothing behind: the customer of the refused create_customer, and both accounts
    assert "does not exist" in await call_error(client, "get_customer", customerId="cust_globex")
    assert "does not exist" in await call_error(client, "get_account", accountId="acme")


async def test_validating_a_deal_leaves_the_callers_cards_as_given(client, db) -> None:
    """validate_overrides is pure: a fee named by its id only gets its name in what is stored, not in the
    caller's cards."""
    plan_id, _ = await growth(client)
    given = RateCards.model_validate({"fixedFeeRateCards": [{"id": "platform", "rateValues": [
        {"currency": "USD", "rate": "20"}]}]})
    async with db.unit_of_work() as session:
        stored = await validate_overrides(session, await get_plan(session, plan_id), given)
    assert given.fixedFeeRateCards[0].name is None
    assert stored is not None and stored["fixedFeeRateCards"][0]["name"] == "platform"


async def test_an_accounts_own_pricing_rules_price_its_invoices_drafts_and_the_lab(client, clock) -> None:
    """pricingRulesOverride (Togai's PUT /v2/schedules/{id}/pricing_rules): acme's rules replace the plan's
    (Growth has none): 10% off the subTotal above 500 tokens, with its 0.05 a token deal."""
    plan_id, meter = await growth(client)
    ten_off = {"name": "volume", "order": 1, "condition": {">": [{"var": f"usage.{meter}"}, 500]},
               "computation": {"*": [{"var": "subTotal"}, -0.1]}, "action": {"type": "ADD"}}
    await call(client, "create_customer", id="cust_acme", name="Acme", account={"id": "acme", "name": "Acme"})
    await call(client, "update_account", accountId="acme", pricePlanId=plan_id, effectiveFrom=iso(2026, 1, 1),
               rateCardOverrides=cheap_tokens(meter), pricingRulesOverride=[ten_off])
    await account(client, "plain", plan_id, iso(2026, 1, 1))
    for account_id in ("acme", "plain"):
        await usage(client, account_id, "2026-01-05T00:00:00Z", "1000", f"u_{account_id}")
    clock.set(at(2026, 1, 20))
    draft = await call(client, "get_invoice", accountId="acme")
    # 1000 × 0.05 = 50.00 + fee 31.00 = subTotal 81.00; the rule adds 81.00 × -0.1 = -8.10 -> 72.90
    assert (draft["isOverridden"], draft["totalAmount"]) == (True, "72.90")
    assert [(log["name"], log["status"]) for log in draft["pricingRuleLogs"]][:1] == [("volume", "APPLIED")]
    # the plan keeps no rules for others: 1000 × 0.10 + 31.00 = 131.00
    assert (await call(client, "get_invoice", accountId="plain"))["totalAmount"] == "131.00"
    clock.set(at(2026, 2, 1))
    assert (await invoices(client, "acme"))[0] == (iso(2026, 1, 1), iso(2026, 2, 1), "DUE", 1, "72.90")
    lab = await call(client, "simulate_price_plan", candidates=[plan_id], accountIds=["acme"],
                     startTime=iso(2026, 1, 1), endTime=iso(2026, 2, 1))
    assert lab["accounts"][0]["cycles"][0]["candidates"][0]["amount"] == "72.90"
    quote = await call(client, "calculate_revenue", accountId="acme", usage={meter: "1000"})
    assert (quote["isOverridden"], quote["total"]) == (True, "72.90")
    # [] takes the rules away from March (the deal's cards stay): 50.00 + 31.00
    await call(client, "update_account", accountId="acme", pricePlanId=plan_id, effectiveFrom=iso(2026, 3, 1),
               rateCardOverrides=cheap_tokens(meter), pricingRulesOverride=[])
    clock.set(at(2026, 3, 2))
    await usage(client, "acme", "2026-03-01T12:00:00Z", "1000", "mar")
    assert (await call(client, "get_invoice", accountId="acme"))["totalAmount"] == "81.00"


async def test_pricing_rules_override_is_checked_like_a_plans_rules(client, clock) -> None:
    plan_id, meter = await growth(client)
    await account(client, "acme", plan_id, iso(2026, 1, 1))
    rule = {"name": "r", "order": 1, "computation": {"*": [{"var": "subTotal"}, -0.1]}, "action": {"type": "ADD"}}
    error = await call_error(client, "update_account", accountId="acme", pricingRulesOverride=[rule])
    assert "pricingRulesOverride: applies to the plan attached in the same call; add pricePlanId" in error
    error = await call_error(client, "update_account", accountId="acme", pricePlanId=plan_id, pricingRulesOverride=[
        {**rule, "condition": {">": [{"var": "usage.um_nope"}, 1]}}])
    assert "pricingRulesOverride[0].condition" in error and "um_nope" in error
    error = await call_error(client, "update_account", accountId="acme", pricePlanId=plan_id, pricingRulesOverride=[
        {**rule, "action": {"type": "UPDATE", "target": "calls"}}])
    assert "pricingRulesOverride[0].action.target: 'calls' is not a rate card of this plan" in error
    error = await call_error(client, "update_account", accountId="acme", pricePlanId=plan_id,
                             pricingRulesOverride=[rule, {**rule, "order": 2}])
    assert "pricingRulesOverride[1].name: 'r' is already the name of pricingRulesOverride[0]" in error
    # nothing changed: acme is on the plain plan
    assert (await call(client, "get_account", accountId="acme"))["financial"]["pricePlan"]["isOverridden"] is False

    # a rule on the api_calls card cannot move to a version without it
    cap = {**rule, "computation": {"min": [{"var": "rateCards.api_calls"}, 40]},
           "action": {"type": "UPDATE", "target": "api_calls"}}
    await call(client, "update_account", accountId="acme", pricePlanId=plan_id, pricingRulesOverride=[cap])
    renamed = cards(meter, "0.20", "62")
    renamed["usageRateCards"][0]["name"] = "tokens"
    await call(client, "update_price_plan", pricePlanId=plan_id, rateCards=renamed)
    error = await call_error(client, "finalize_price_plan", pricePlanId=plan_id, migrationMode="IMMEDIATE")
    assert "migrationMode: account 'acme' has a pricingRulesOverride that does not fit version 2" in error
    assert "api_calls" in error


async def test_the_same_deal_written_another_way_changes_nothing(client, clock, db) -> None:
    # "0.050" is the rate "0.05" is: update_account with the plan and deal the account is on, spelled otherwise,
    # is the plan it has (as a create_account replay judges it), so nothing is cut, credited or attached again
    plan_id, meter = await growth(client)
    clock.set(at(2026, 1, 10))
    await account(client, "acme", plan_id, iso(2026, 1, 1), rateCardOverrides=cheap_tokens(meter))

    async def state() -> tuple[list[tuple[Any, ...]], list[Any]]:
        async with db.unit_of_work() as session:
            rows = (await session.execute(text(
                "SELECT effective_from, effective_until, rate_card_overrides FROM plan_associations "
                "WHERE account_id = 'acme' ORDER BY effective_from"))).all()
            notes = (await session.execute(text("SELECT id FROM credit_notes"))).all()
        return [tuple(r) for r in rows], notes

    before = await state()
    await call(client, "update_account", accountId="acme", pricePlanId=plan_id, effectiveFrom=iso(2026, 1, 15),
               rateCardOverrides={"usageRateCards": [usage_card(meter, "0.050")]})
    assert await state() == before and len(before[0]) == 1


async def test_the_audit_of_a_finalize_names_the_accounts_it_moved(client, clock) -> None:
    # Moving an account to the new version changes its plan as update_account(pricePlanId) would: asked
    # "who changed acme's plan?", the audit log by entity must answer with the finalize too.
    plan_id, meter = await growth(client)
    await account(client, "acme", plan_id, iso(2026, 1, 1))
    await account(client, "globex", plan_id, iso(2026, 1, 1))
    clock.set(at(2026, 1, 16))
    result = await version_2(client, plan_id, meter, "IMMEDIATE")
    assert sorted(m["accountId"] for m in result["migratedAccounts"]) == ["acme", "globex"]
    record = (await call(client, "list_audit_log", tool="finalize_price_plan"))["data"][0]
    assert record["changedIds"] == [plan_id, "acme", "globex"]
    by_account = (await call(client, "list_audit_log", entityId="acme"))["data"]
    assert [r["tool"] for r in by_account] == ["finalize_price_plan", "create_customer"]


async def test_a_refused_finalize_leaves_nothing_behind_and_the_corrected_draft_is_what_bills(client, clock) -> None:
    """A finalize refused for acme's deal activates nothing, not even in this process' cache of versions: the
    DRAFT corrected after it is the version 2 that is finalized and bills."""
    plan_id, meter = await growth(client)
    await account(client, "acme", plan_id, iso(2026, 1, 1), rateCardOverrides=cheap_tokens(meter))
    await account(client, "plain", plan_id, iso(2026, 1, 1))
    renamed = cards(meter, "0.20", "62")
    renamed["usageRateCards"][0]["name"] = "tokens"
    await call(client, "update_price_plan", pricePlanId=plan_id, rateCards=renamed)
    clock.set(at(2026, 1, 16))
    error = await call_error(client, "finalize_price_plan", pricePlanId=plan_id, migrationMode="IMMEDIATE")
    assert "migrationMode: account 'acme' has rateCardOverrides replacing usageRateCard 'api_calls'" in error
    shown = await call(client, "get_price_plan", pricePlanId=plan_id, version="2")
    assert shown["status"] == "DRAFT"
    # the DRAFT corrected: it keeps api_calls (acme's deal fits) at 0.30, fee 93.00
    await call(client, "update_price_plan", pricePlanId=plan_id, rateCards=cards(meter, "0.30", "93"))
    shown = await call(client, "get_price_plan", pricePlanId=plan_id, version="2")
    assert (shown["status"], shown["rateCards"]["usageRateCards"][0]["name"]) == ("DRAFT", "api_calls")
    result = await call(client, "finalize_price_plan", pricePlanId=plan_id, migrationMode="IMMEDIATE")
    assert sorted(m["accountId"] for m in result["migratedAccounts"]) == ["acme", "plain"]
    shown = await call(client, "get_price_plan", pricePlanId=plan_id, version="2")
    assert (shown["status"], shown["rateCards"]["fixedFeeRateCards"][0]["rateValues"][0]["rate"]) == ("ACTIVE", "93")
    clock.set(at(2026, 1, 21))
    await usage(client, "plain", "2026-01-20T00:00:00Z", "100", "u_plain")
    draft = await call(client, "get_invoice", accountId="plain")
    # version 2 from 16 Jan: fee 93 × 16/31 = 48.00 + 100 × 0.30 = 30.00 -> 78.00
    assert (draft["startDate"], draft["pricePlanVersion"], draft["totalAmount"]) == (iso(2026, 1, 16), 2, "78.00")



async def test_a_finalize_that_fails_after_activating_leaves_no_stale_version_behind(client, clock,
                                                                                     monkeypatch) -> None:
    """An unexpected error after the DRAFT turned ACTIVE rolls the call back; the content read meanwhile must not
    outlive it in the process' cache of versions, or the corrected DRAFT would not be what version 2 bills."""
    plan_id, meter = await growth(client)
    await account(client, "plain", plan_id, iso(2026, 1, 1))
    await call(client, "update_price_plan", pricePlanId=plan_id, rateCards=cards(meter, "0.20", "62"))
    clock.set(at(2026, 1, 16))

    async def fails(*_: Any) -> None:
        raise RuntimeError("the connection dropped")

    with monkeypatch.context() as patched:
        patched.setattr(plan_versions, "rebill", fails)
        assert "internal error" in await call_error(client, "finalize_price_plan", pricePlanId=plan_id,
                                                    migrationMode="IMMEDIATE")
    await call(client, "update_price_plan", pricePlanId=plan_id, rateCards=cards(meter, "0.30", "93"))
    await call(client, "finalize_price_plan", pricePlanId=plan_id, migrationMode="IMMEDIATE")
    clock.set(at(2026, 1, 21))
    await usage(client, "plain", "2026-01-20T00:00:00Z", "100", "u_plain")
    draft = await call(client, "get_invoice", accountId="plain")
    # version 2 from 16 Jan: fee 93 × 16/31 = 48.00 + 100 × 0.30 = 30.00 -> 78.00
    assert (draft["startDate"], draft["pricePlanVersion"], draft["totalAmount"]) == (iso(2026, 1, 16), 2, "78.00")


async def test_a_deal_the_new_version_would_break_refuses_the_finalize_instead_of_breaking_its_reads(
        client, clock) -> None:
    """Acme's deal grants chat without a limit, with a card that counts no usage (no usageMeterId: BOOLEAN): valid
    on version 1, which bills no overage. Version 2 bills chat overage, which needs the feature's meter: with acme's card in
    place the effective plan has an overage card of a feature that counts nothing, so the finalize is refused
    naming the account, as for a card the new version drops, and nobody moves."""
    meter = await tokens_meter(client)
    chat = {"name": "chat", "featureId": "chat", "usageMeterId": meter, "featureConfigs": [{"featureCreditLimit": 100}]}
    one = {**cards(meter, "0.10", "31"), "billingEntitlementRateCards": [chat]}
    plan_id = (await call(client, "create_price_plan", name="Growth", pricingCycleConfig=MONTHLY, rateCards=one))["id"]
    await account(client, "plain", plan_id, iso(2026, 1, 1))
    await account(client, "acme", plan_id, iso(2026, 1, 1), rateCardOverrides={"billingEntitlementRateCards": [
        {"name": "chat", "featureId": "chat"}]})
    overage = {"featureId": "chat", "ratePlan": {"pricingModel": "TIERED", "slabs": [
        {"order": 1, "startAfter": 0, "priceType": "PER_UNIT"}]},
        "rateValues": [{"currency": "USD", "slabRates": [{"order": 1, "rate": "1"}]}]}
    clock.set(at(2026, 1, 16))
    await call(client, "update_price_plan", pricePlanId=plan_id, rateCards={**one, "entitlementOverageRateCards": [overage]})
    for mode in ("IMMEDIATE", "NEXT_CYCLE", "START_OF_CURRENT_CYCLE"):
        error = await call_error(client, "finalize_price_plan", pricePlanId=plan_id, migrationMode=mode)
        assert "migrationMode: account 'acme' has rateCardOverrides that do not fit version 2" in error, error
        assert "with them in place, rateCards.entitlementOverageRateCards[0].featureId: feature 'chat' has no " \
               "usageMeterId" in error
    # nothing moved: both accounts still read, on version 1
    await usage(client, "acme", "2026-01-10T00:00:00Z", "100", "u")
    draft = await call(client, "get_invoice", accountId="acme")
    # version 1 with the deal: 100 × 0.10 = 10.00 + 31.00
    assert (draft["pricePlanVersion"], draft["isOverridden"], draft["totalAmount"]) == (1, True, "41.00")
    # dropping the deal moves acme too
    result = await call(client, "finalize_price_plan", pricePlanId=plan_id, migrationMode="IMMEDIATE_IGNORE_OVERRIDE")
    assert sorted(m["accountId"] for m in result["migratedAccounts"]) == ["acme", "plain"]
    draft = await call(client, "get_invoice", accountId="acme")
    # version 2 without the deal from 16 Jan: fee 31 × 16/31 = 16.00, no usage since, no overage
    assert (draft["startDate"], draft["pricePlanVersion"], draft["isOverridden"], draft["totalAmount"]) == (
        iso(2026, 1, 16), 2, False, "16.00")


async def test_a_deal_that_parses_but_fails_its_own_versions_checks_keeps_its_account_back(
        client, clock, db, monkeypatch) -> None:
    """A hand edit leaves bad's deal parsing, with a negative rate create_price_plan refuses: it no longer validates
    on the version it is on, so bad stays there and is reported, and the others migrate (the new version is not
    what breaks it, so the finalize is not refused)."""
    plan_id, meter = await growth(client)
    await account(client, "acme", plan_id, iso(2026, 1, 1), rateCardOverrides=cheap_tokens(meter))
    await account(client, "bad", plan_id, iso(2026, 1, 1), rateCardOverrides=cheap_tokens(meter))
    await break_stored_deal(db, monkeypatch, "bad", "{usageRateCards,0,rateValues,0,slabRates,0,rate}", '"-1"')
    clock.set(at(2026, 1, 16))
    result = await version_2(client, plan_id, meter, "IMMEDIATE")
    assert [(m["accountId"], m["effectiveFrom"]) for m in result["migratedAccounts"]] == [("acme", iso(2026, 1, 16))]
    assert [s["accountId"] for s in result["skippedAccounts"]] == ["bad"]
    reason = result["skippedAccounts"][0]["reason"]
    assert "it stays on version 1" in reason and "account 'bad' has a deal" in reason
    assert "rateCards.usageRateCards[0].rateValues[0].slabRates[0].rate: rate must be a finite decimal >= 0" in reason


async def test_a_stored_deal_naming_a_card_its_version_lacks_is_reported_not_ignored(client, clock, db,
                                                                                     monkeypatch) -> None:
    """No call stores such a deal (update_account and finalize refuse it, naming the field); after a hand edit its
    card would replace nothing, and acme would silently be billed the plan's 0.10 a token under its deal's name.
    It is a deal that no longer validates: acme's reads say why, a finalize keeps acme back, the others go on."""
    plan_id, meter = await growth(client)
    await account(client, "acme", plan_id, iso(2026, 1, 1), rateCardOverrides=cheap_tokens(meter))
    await account(client, "plain", plan_id, iso(2026, 1, 1))
    await usage(client, "acme", "2026-01-05T00:00:00Z", "1000", "u")
    await break_stored_deal(db, monkeypatch, "acme", "{usageRateCards,0,name}", '"calls"')
    clock.set(at(2026, 1, 16))
    error = await call_error(client, "get_invoice", accountId="acme")
    assert "account 'acme' has a deal" in error and "internal error" not in error
    assert "rateCardOverrides.usageRateCards[0].name: 'calls' names no usageRateCard of version 1" in error
    result = await version_2(client, plan_id, meter, "IMMEDIATE")
    assert [m["accountId"] for m in result["migratedAccounts"]] == ["plain"]
    assert [s["accountId"] for s in result["skippedAccounts"]] == ["acme"]
    assert "rateCardOverrides.usageRateCards[0].name: 'calls'" in result["skippedAccounts"][0]["reason"]


async def test_a_deal_that_ends_before_the_migration_does_not_refuse_it(client, clock) -> None:
    """Acme leaves Growth on 20 Jan (for Starter): NEXT_CYCLE moves accounts on 1 Feb, so acme's deal never meets
    version 2, whose dropped api_calls card it replaces; the finalize goes on without it."""
    plan_id, meter = await growth(client)
    starter = await call(client, "create_price_plan", name="Starter", pricingCycleConfig=MONTHLY,
                         rateCards=cards(meter, "0.50", "0"))
    await account(client, "acme", plan_id, iso(2026, 1, 1), rateCardOverrides=cheap_tokens(meter))
    await account(client, "plain", plan_id, iso(2026, 1, 1))
    await call(client, "update_account", accountId="acme", pricePlanId=starter["id"], effectiveFrom=iso(2026, 1, 20))
    clock.set(at(2026, 1, 16))
    renamed = cards(meter, "0.20", "62")
    renamed["usageRateCards"][0]["name"] = "tokens"
    await call(client, "update_price_plan", pricePlanId=plan_id, rateCards=renamed)
    error = await call_error(client, "finalize_price_plan", pricePlanId=plan_id, migrationMode="IMMEDIATE")
    assert "migrationMode: account 'acme' has rateCardOverrides replacing usageRateCard 'api_calls'" in error
    result = await call(client, "finalize_price_plan", pricePlanId=plan_id, migrationMode="NEXT_CYCLE")
    assert [(m["accountId"], m["effectiveFrom"]) for m in result["migratedAccounts"]] == [("plain", iso(2026, 2, 1))]
    assert result["skippedAccounts"] == []


async def test_a_finalize_closes_each_account_once_before_its_moves(client, clock, monkeypatch) -> None:
    """The accounts' due periods are closed in one pass under their locks, before the checks; each account's move
    re-bills it once (its new DRAFTs). Closing each account again before its move found nothing due and was waste."""
    plan_id, meter = await growth(client)
    await account(client, "acme", plan_id, iso(2026, 1, 1))
    await account(client, "plain", plan_id, iso(2026, 1, 1))
    await usage(client, "acme", "2026-01-10T00:00:00Z", "100", "u_acme")
    await call(client, "update_price_plan", pricePlanId=plan_id, rateCards=cards(meter, "0.20", "62"))
    clock.set(at(2026, 2, 16))  # January is due for both
    calls: list[tuple[str, list[str]]] = []

    def spy(module: Any, name: str) -> None:
        original = module.close_due_cycles

        async def closing(session: Any, now: Any, account_ids: Any = None, **kwargs: Any) -> Any:
            calls.append((name, sorted(account_ids)))
            return await original(session, now, account_ids, **kwargs)

        monkeypatch.setattr(module, "close_due_cycles", closing)

    spy(plan_versions, "one pass")
    spy(plan_changes, "per account")
    result = await call(client, "finalize_price_plan", pricePlanId=plan_id, migrationMode="IMMEDIATE")
    assert sorted(m["accountId"] for m in result["migratedAccounts"]) == ["acme", "plain"]
    assert calls == [("one pass", ["acme", "plain"]), ("per account", ["acme"]), ("per account", ["plain"])]
    # January DUE on version 1: 31.00 + 100 x 0.10 = 41.00 (acme), 31.00 (plain); February cut on the 16th, fees
    # by time share: 1-16 February on version 1, 31.00 x 15/28 = 16.607... -> 16.61, DUE at the cut (grace 0);
    # from the 16th on version 2, 62.00 x 13/28 = 28.785... -> 28.79, DRAFT
    assert [i[2:] for i in await invoices(client, "acme")] == [("DUE", 1, "41.00"), ("DUE", 1, "16.61"),
                                                               ("DRAFT", 2, "28.79")]
    assert [i[2:] for i in await invoices(client, "plain")] == [("DUE", 1, "31.00"), ("DUE", 1, "16.61"),
                                                                ("DRAFT", 2, "28.79")]


async def test_a_finalize_writes_the_billing_rows_of_more_accounts_than_a_statement_has_parameters(
        client, db) -> None:
    """A finalize writes the billing row and watermark of every account on the plan at once (add_billing_rows):
    a row per account, however many, never one statement parameter each (asyncpg sends 32,767 at most)."""
    await call(client, "create_customer", id="c", name="C", account={"id": "acc", "name": "A"})
    async with db.unit_of_work() as session:
        await clone_rows(await raw_connection(session), "accounts", "t.id = 'acc'",
                         {"id": "'acc_' || n", "name": "'A' || n"}, 33_000)
    ids = ["acc", *(f"acc_{n}" for n in range(1, 33_001))]
    async with db.unit_of_work() as session:
        await plan_changes.add_billing_rows(session, ids)
        await plan_changes.add_billing_rows(session, ids[:2])  # already there: nothing more
    for table in ("account_billing", "billing_watermarks"):
        assert await scalar(db, f"SELECT count(DISTINCT account_id) || ' ' || count(*) FROM {table}") == "33001 33001"
