"""More of the engine on a Citus cluster, through the MCP tools as on one node: credit notes, an invoice
voided, PREPAID credits taken back by credit notes, events voided across accounts (and concurrently), consume
if entitled (two consumers of the last unit), a plan change mid-cycle, seats, a plan version migrated IMMEDIATE,
pricing rules and the sandbox clock.
Every amount is worked out by hand next to it; the accounts spread over the shards of both workers."""

from __future__ import annotations

import asyncio
from contextlib import AsyncExitStack
from typing import Any

from mcp import Client

from cluster import cclient, cclock, cdb, citus_database, citus_url, empty_citus_url
from conftest import hosted
from helpers import at, call, call_error, iso
from mcp_server.cli import bill_run
from mcp_server.server import build_server
from togai_engine.common.clock import FixedClock
from togai_engine.meters.rollups import verify_rollups
from togai_engine.sandbox.service import start
from togai_engine.store.database import Database

MONTHLY = {"interval": "MONTHLY", "startOffset": {"dayOffset": "1", "monthOffset": "NIL"}, "gracePeriod": 3}
PER_UNIT = {"pricingModel": "TIERED", "slabs": [{"order": 1, "startAfter": "0", "priceType": "PER_UNIT"}]}


def usage_card(meter: str, rate: str, name: str = "tokens") -> dict[str, Any]:
    return {"name": name, "usageMeterId": meter, "ratePlan": PER_UNIT,
            "rateValues": [{"currency": "USD", "slabRates": [{"order": 1, "rate": rate}]}]}


def fee(rate: str) -> dict[str, Any]:
    return {"id": "platform", "rateValues": [{"currency": "USD", "rate": rate}], "invoiceTiming": "IN_ARREARS",
            "enableProration": True}


async def meter(client: Client) -> str:
    made = await call(client, "create_usage_meter", name="tokens", eventSchemaName="llm", aggregation="SUM",
                      computations=[{"computation": "tokens"}])
    return str(made["id"])


async def onboard(client: Client, account: str, plan_id: str, since: str = "2026-01-01T00:00:00Z") -> None:
    await call(client, "create_customer", id=f"c_{account}", name=account, account={
        "id": account, "name": account, "pricePlanId": plan_id, "effectiveFrom": since})


async def tokens(client: Client, account: str, event_id: str, when: str, count: int | str) -> dict[str, Any]:
    return await call(client, "ingest_event", event={"id": event_id, "schemaName": "llm", "timestamp": when,
                                                     "accountId": account, "attributes": {"tokens": str(count)}})


async def invoices(client: Client, account: str) -> list[tuple[str, str, str, str]]:
    """(start, end, status, total), oldest first."""
    page = await call(client, "list_invoices", accountId=account, pageSize=100)
    return sorted((i["startDate"], i["endDate"], i["status"], i["totalAmount"]) for i in page["data"])


async def draft_total(client: Client, account: str) -> str:
    return str((await call(client, "get_invoice", accountId=account))["totalAmount"])


async def due(client: Client, account: str) -> dict[str, Any]:
    (listed,) = (await call(client, "list_invoices", accountId=account, status="DUE"))["data"]
    return await call(client, "get_invoice", invoiceId=listed["id"])


async def exact(db: Database) -> None:
    async with db.unit_of_work() as session:
        assert await verify_rollups(session) == []


async def test_credit_notes_and_an_invoice_voided(cclient, cdb, cclock) -> None:
    tokens_meter = await meter(cclient)
    plan = await call(cclient, "create_price_plan", name="Pro", pricingCycleConfig=MONTHLY,
                      rateCards={"usageRateCards": [usage_card(tokens_meter, "0.01")], "fixedFeeRateCards": [fee("49")]})
    for account in ("acme", "beta", "corp"):
        await onboard(cclient, account, plan["id"])
    cclock.set(at(2026, 1, 15))
    await tokens(cclient, "acme", "a1", "2026-01-10T00:00:00Z", 3000)
    await tokens(cclient, "beta", "b1", "2026-01-11T00:00:00Z", 1000)
    await call(cclient, "grant_credit", accountId="acme", amount="9.00", idempotencyKey="prepaid")
    await call(cclient, "grant_credit", accountId="beta", amount="4.00", idempotencyKey="prepaid")
    cclock.set(at(2026, 2, 4))  # January's grace period has ended
    acme, beta = await due(cclient, "acme"), await due(cclient, "beta")
    # acme: 3000 × 0.01 = 30.00 + 49.00 = 79.00, the wallet pays 9.00: 70.00 due
    assert (acme["totalAmount"], acme["creditsApplied"], acme["amountDue"]) == ("79.00", "9.00", "70.00")
    # beta: 1000 × 0.01 = 10.00 + 49.00 = 59.00, the wallet pays 4.00: 55.00 due
    assert (beta["totalAmount"], beta["creditsApplied"], beta["amountDue"]) == ("59.00", "4.00", "55.00")

    first = await call(cclient, "create_credit_note", invoiceId=acme["id"], reason="ORDER_CHANGE", amount="10.00",
                       idempotencyKey="cn-1")
    # 70.00 - 10.00 = 60.00 still due; nothing reaches the wallet
    assert (first["creditNote"]["sequenceId"], first["invoice"]["amountDue"], first["walletBalance"]) == (
        "CN-000001", "60.00", "0.00")
    replay = await call(cclient, "create_credit_note", invoiceId=acme["id"], reason="ORDER_CHANGE", amount="10.00",
                        idempotencyKey="cn-1")
    assert replay["replayed"] is True and replay["creditNote"]["id"] == first["creditNote"]["id"]
    second = await call(cclient, "create_credit_note", invoiceId=acme["id"], reason="DUPLICATE",
                        lines=[{"rateCardName": "platform", "amount": "49.00"}, {"lineNumber": 1, "amount": "20.00"}])
    # 49.00 + 20.00 = 69.00: 60.00 off what is due (-> 0.00), the other 9.00 (the wallet had paid) back to it
    note = second["creditNote"]
    assert (note["sequenceId"], note["creditedFromDue"], note["creditedToWallet"]) == ("CN-000002", "60.00", "9.00")
    assert (second["invoice"]["amountDue"], second["invoice"]["creditNotesTotal"], second["walletBalance"]) == (
        "0.00", "79.00", "9.00")
    assert len((await call(cclient, "list_credit_notes", accountId="acme"))["data"]) == 2

    voided = await call(cclient, "update_invoice_status", invoiceId=beta["id"], status="VOID")
    assert voided["status"] == "VOID"
    # the 4.00 the wallet paid goes back to it
    assert (await call(cclient, "get_wallet_balance", accountId="beta"))["balance"] == "4.00"
    again = await call(cclient, "update_invoice_status", invoiceId=beta["id"], status="VOID")
    assert again["status"] == "VOID"
    corp = await due(cclient, "corp")
    assert corp["totalAmount"] == "49.00"  # no usage: the platform fee alone
    assert (await call(cclient, "update_invoice_status", invoiceId=corp["id"], status="PAID"))["status"] == "PAID"
    summary, _, _ = await bill_run(cdb, at(2026, 2, 4))
    assert (summary.invoicesDue, summary.failed) == (0, [])
    await exact(cdb)


async def test_events_voided_across_accounts_and_twice_at_once(cclient, cdb, cclock) -> None:
    tokens_meter = await meter(cclient)
    plan = await call(cclient, "create_price_plan", name="Tokens", pricingCycleConfig=MONTHLY,
                      rateCards={"usageRateCards": [usage_card(tokens_meter, "0.01")]})
    accounts = ("acme", "beta", "corp", "dyna")
    for account in accounts:
        await onboard(cclient, account, plan["id"])
    cclock.set(at(2026, 1, 20))
    for n, account in enumerate(accounts):
        await tokens(cclient, account, f"{account}-1", "2026-01-05T10:00:00Z", 100 * (n + 1))
        await tokens(cclient, account, f"{account}-2", "2026-01-06T10:00:00Z", 1000)
    # each account: its own 100 × (n + 1) tokens + 1000 -> acme 11.00, beta 12.00, corp 13.00, dyna 14.00
    assert [await draft_total(cclient, a) for a in accounts] == ["11.00", "12.00", "13.00", "14.00"]
    # one call voids events of three accounts (of several shards)
    voided = await call(cclient, "void_events", reason="sent twice", events=[
        {"accountId": a, "eventId": f"{a}-2"} for a in ("dyna", "acme", "corp")])
    assert sorted((e["accountId"], e["status"]) for e in voided["data"]) == [
        ("acme", "VOIDED"), ("corp", "VOIDED"), ("dyna", "VOIDED")]
    # the 1000 tokens (10.00) leave acme, corp and dyna at once
    assert [await draft_total(cclient, a) for a in accounts] == ["1.00", "12.00", "3.00", "4.00"]
    # two sessions void beta's event at the same time: it is voided once, both calls see it VOIDED
    async with AsyncExitStack() as stack:
        sessions = [await stack.enter_async_context(hosted(Client(build_server(cdb, clock=cclock),
                                                                  raise_exceptions=False))) for _ in range(2)]
        both = await asyncio.gather(*(call(s, "void_event", accountId="beta", eventId="beta-2", reason="duplicate")
                                      for s in sessions))
    assert [r["status"] for r in both] == ["VOIDED", "VOIDED"] and both[0]["voidedAt"] == both[1]["voidedAt"]
    assert await draft_total(cclient, "beta") == "2.00"  # 200 tokens left
    await exact(cdb)


async def test_consume_if_entitled_and_two_consumers_of_the_last_unit(cclient, cdb, cclock) -> None:
    api = await call(cclient, "create_usage_meter", name="api calls", eventSchemaName="api", aggregation="COUNT")
    plan = await call(cclient, "create_price_plan", name="Quota", pricingCycleConfig={**MONTHLY, "gracePeriod": 0},
                      rateCards={
                          "billingEntitlementRateCards": [{"featureId": "api", "usageMeterId": api["id"],
                                                           "featureConfigs": [{"featureCreditLimit": "3"}]}],
                          "usageRateCards": [usage_card(api["id"], "0.25", "api")]})
    for account in ("acme", "beta"):
        await onboard(cclient, account, plan["id"])
    cclock.set(at(2026, 1, 10))

    async def consume(client: Client, account: str, event_id: str) -> dict[str, Any]:
        return await call(client, "check_entitlement", accountId=account, featureId="api", quantity="1",
                          consume={"id": event_id, "schemaName": "api", "attributes": {}})

    # limit 3: two fit (used 0 and 1), then two sessions race for the last one
    for account in ("acme", "beta"):
        assert [(r["entitled"], r["usedAfter"]) for r in [await consume(cclient, account, f"{account}-{n}")
                                                           for n in (1, 2)]] == [(True, "1"), (True, "2")]
    async with AsyncExitStack() as stack:
        sessions = [await stack.enter_async_context(hosted(Client(build_server(cdb, clock=cclock),
                                                                  raise_exceptions=False))) for _ in range(4)]
        answers = await asyncio.gather(*(consume(s, account, f"{account}-last-{k}")
                                         for k, s in enumerate(sessions) for account in ("acme", "beta")))
    for account in ("acme", "beta"):
        won = [a for a in answers if a["eventId"].startswith(account) and a["consumed"]]
        lost = [a for a in answers if a["eventId"].startswith(account) and not a["consumed"]]
        assert (len(won), len(lost)) == (1, 3), answers
        assert {a["reason"] for a in lost} == {"LIMIT_REACHED"}
    cclock.set(at(2026, 2, 1))
    for account in ("acme", "beta"):
        # 3 calls consumed at 0.25: 0.75
        assert (await invoices(cclient, account))[0][2:] == ("DUE", "0.75")
    await exact(cdb)


async def test_a_plan_change_mid_cycle_and_seats(cclient, cdb, cclock) -> None:
    tokens_meter = await meter(cclient)
    cycle = {**MONTHLY, "gracePeriod": 0}
    small = await call(cclient, "create_price_plan", name="Small", pricingCycleConfig=cycle,
                       rateCards={"usageRateCards": [usage_card(tokens_meter, "0.01")]})
    large = await call(cclient, "create_price_plan", name="Large", pricingCycleConfig=cycle,
                       rateCards={"usageRateCards": [usage_card(tokens_meter, "0.02")]})
    seats = await call(cclient, "create_price_plan", name="Seats", pricingCycleConfig=cycle, rateCards={
        "licenseRateCards": [{"id": "seats", "displayName": "Seats", "enableProration": True, "ratePlan": PER_UNIT,
                              "rateValues": [{"currency": "USD", "slabRates": [{"order": 1, "rate": "10"}]}],
                              "config": {"maxQuantity": 20}}]})
    await onboard(cclient, "acme", small["id"])
    await onboard(cclient, "team", seats["id"])
    cclock.set(at(2026, 1, 10))
    await tokens(cclient, "acme", "before", "2026-01-10T00:00:00Z", 1000)
    await call(cclient, "update_account", accountId="acme", pricePlanId=large["id"], effectiveFrom=iso(2026, 1, 16))
    await call(cclient, "update_license", accountId="team", licenseId="seats", quantity=5,
               effectiveFrom=iso(2026, 1, 1))
    more = await call(cclient, "update_license", accountId="team", licenseId="seats", quantity=3,
                      updateType="RELATIVE", effectiveFrom=iso(2026, 1, 16))
    assert (more["quantity"], more["currentQuantity"]) == (8, 5)
    cclock.set(at(2026, 1, 20))
    await tokens(cclient, "acme", "after", "2026-01-20T00:00:00Z", 1000)
    cclock.set(at(2026, 2, 1))
    assert await invoices(cclient, "acme") == [
        (iso(2026, 1, 1), iso(2026, 1, 16), "DUE", "10.00"),  # Small: 1000 × 0.01
        (iso(2026, 1, 16), iso(2026, 2, 1), "DUE", "20.00"),  # Large: 1000 × 0.02
        (iso(2026, 2, 1), iso(2026, 3, 1), "DRAFT", "0.00"),
    ]
    # prorated seats over January's 31 days: 5 × 10 × 15/31 + 8 × 10 × 16/31 = (750 + 1280) / 31 = 65.4838… -> 65.48
    assert (await invoices(cclient, "team"))[0][2:] == ("DUE", "65.48")
    await exact(cdb)


async def test_a_plan_version_migrated_immediately(cclient, cdb, cclock) -> None:
    tokens_meter = await meter(cclient)
    cycle = {**MONTHLY, "gracePeriod": 0}

    def cards(rate: str, monthly_fee: str) -> dict[str, Any]:
        return {"usageRateCards": [usage_card(tokens_meter, rate)],
                "fixedFeeRateCards": [{"id": "platform", "rateValues": [{"currency": "USD", "rate": monthly_fee}]}]}

    plan = await call(cclient, "create_price_plan", name="Growth", pricingCycleConfig=cycle, rateCards=cards("0.10", "31"))
    for account in ("acme", "beta"):
        await onboard(cclient, account, plan["id"])
        await tokens(cclient, account, f"{account}-before", "2026-01-05T00:00:00Z", 100)
    cclock.set(at(2026, 1, 16))
    draft = await call(cclient, "update_price_plan", pricePlanId=plan["id"], rateCards=cards("0.20", "62"))
    assert (draft["version"], draft["status"]) == (2, "DRAFT")
    result = await call(cclient, "finalize_price_plan", pricePlanId=plan["id"], migrationMode="IMMEDIATE")
    assert sorted((m["accountId"], m["effectiveFrom"]) for m in result["migratedAccounts"]) == [
        ("acme", iso(2026, 1, 16)), ("beta", iso(2026, 1, 16))]
    cclock.set(at(2026, 1, 21))
    for account in ("acme", "beta"):
        await tokens(cclient, account, f"{account}-after", "2026-01-20T00:00:00Z", 50)
    cclock.set(at(2026, 2, 1))
    for account in ("acme", "beta"):
        assert await invoices(cclient, account) == [
            # v1 for 15 of 31 days: fee 31 × 15/31 = 15.00; usage 100 × 0.10 = 10.00 -> 25.00
            (iso(2026, 1, 1), iso(2026, 1, 16), "DUE", "25.00"),
            # v2 for 16 of 31 days: fee 62 × 16/31 = 32.00; usage 50 × 0.20 = 10.00 -> 42.00
            (iso(2026, 1, 16), iso(2026, 2, 1), "DUE", "42.00"),
            (iso(2026, 2, 1), iso(2026, 3, 1), "DRAFT", "62.00"),
        ]
    await exact(cdb)


async def test_pricing_rules_in_a_sandbox(cdb) -> None:
    async with cdb.unit_of_work() as session:
        await start(session, at(2026, 1, 1))
    far_away = FixedClock(at(2031, 7, 4))  # a call that used it instead of the sandbox time would show
    async with hosted(Client(build_server(cdb, clock=far_away, sandbox=True), raise_exceptions=False)) as sandbox:
        api = await call(sandbox, "create_usage_meter", name="api_calls", eventSchemaName="api", aggregation="SUM",
                         computations=[{"computation": "calls"}])
        plan = await call(sandbox, "create_price_plan", name="Discount", pricingCycleConfig={**MONTHLY, "gracePeriod": 0},
                          rateCards={"usageRateCards": [usage_card(api["id"], "0.5", "api")],
                                     "fixedFeeRateCards": [{"id": "platform", "rateValues": [
                                         {"currency": "USD", "rate": "100"}]}]},
                          pricingRules=[{"name": "volume discount", "order": 1,
                                         "condition": {">": [{"var": "subTotal"}, 1000]},
                                         "computation": {"*": [{"var": "subTotal"}, -0.1]},
                                         "action": {"type": "ADD", "description": "10% off over 1000"}}])
        for account in ("acme", "beta"):
            await onboard(sandbox, account, plan["id"])
        moved = await call(sandbox, "advance_clock", to="2026-01-20")
        assert moved["now"] == "2026-01-20T00:00:00Z"
        for account, calls in (("acme", "2000.5"), ("beta", "1800")):
            await call(sandbox, "ingest_event", event={"id": f"{account}-jan", "schemaName": "api", "accountId": account,
                                                       "timestamp": "2026-01-19T00:00:00Z",
                                                       "attributes": {"calls": calls}})
        await call(sandbox, "advance_clock", by="P1M")  # 20 February: January is DUE
        acme, beta = await due(sandbox, "acme"), await due(sandbox, "beta")
    # acme: 2000.5 × 0.50 = 1000.25 + 100.00 = 1100.25 > 1000: × -0.1 = -110.025 -> -110.03; 990.22
    assert [(line["description"], line["value"]) for line in acme["lineItems"]
            if line["type"] == "PRICING_RULE_AMOUNT"] == [("10% off over 1000", "-110.03")]
    assert acme["totalAmount"] == "990.22" and acme["pricingRuleLogs"][0]["status"] == "APPLIED"
    # beta: 1800 × 0.50 = 900.00 + 100.00 = 1000.00, not over 1000: the rule is skipped
    assert beta["totalAmount"] == "1000.00" and beta["pricingRuleLogs"][0]["status"] == "SKIPPED"
    await exact(cdb)


async def test_prepaid_credits_sold_paid_and_taken_back_by_credit_notes(cclient, cdb, cclock) -> None:
    """A PREPAID credit-grant card on Citus: the advance invoice sells the credits, PAID grants them, and credit notes
    on the purchase line void their share from the grant (invoices README, "PREPAID credits")."""
    tokens_meter = await meter(cclient)
    credits = {"id": "credits", "displayName": "Credits", "invoiceTiming": "PREPAID",
               "grantDetails": {"priority": 10},
               "rateDetails": {"pricingModel": "TIERED", "currencySlabRateDetails": [{
                   "currency": "USD", "creditAmount": "100",
                   "slabDetails": [{"startAfter": 0, "priceType": "PER_UNIT", "rate": "0.8"}]}]}}
    plan = await call(cclient, "create_price_plan", name="Prepaid", pricingCycleConfig=MONTHLY, rateCards={
        "usageRateCards": [usage_card(tokens_meter, "0.10")], "creditGrantRateCards": [credits]})
    cclock.set(at(2026, 1, 1))
    for account in ("acme", "beta"):
        await onboard(cclient, account, plan["id"])
    advances = {account: next(i for i in (await call(cclient, "list_invoices", accountId=account))["data"]
                              if i["invoiceType"] == "STANDARD_ADVANCED") for account in ("acme", "beta")}
    advance = advances["acme"]
    assert (advance["status"], advance["totalAmount"]) == ("DUE", "80.00")  # 100 credits × 0.8
    cclock.set(at(2026, 1, 5))
    for sale in advances.values():
        await call(cclient, "update_invoice_status", invoiceId=sale["id"], status="PAID")

    async def balance() -> str:
        return str((await call(cclient, "get_wallet_balance", accountId="acme"))["balance"])

    assert await balance() == "100.00"
    # By amount: refused while the purchase line can still be credited (it does not say which credits go back)
    refused = await call_error(cclient, "create_credit_note", invoiceId=advance["id"], reason="ORDER_CHANGE",
                               amount="10.00")
    assert "create_credit_note: amount: " in refused and "names the lines it credits" in refused
    assert (await call(cclient, "list_credit_notes", accountId="acme"))["data"] == [] and await balance() == "100.00"
    # 40.00 of the 80.00 line: 40 / 80 × 100 = 50 credits voided; the invoice was paid, so the 40.00 goes to the
    # wallet: 100.00 - 50.00 + 40.00 = 90.00
    first = await call(cclient, "create_credit_note", invoiceId=advance["id"], reason="ORDER_CHANGE",
                       lines=[{"lineNumber": 1, "amount": "40.00"}], idempotencyKey="cn-credits")
    assert (first["creditNote"]["lines"][0]["creditsVoided"], first["walletBalance"]) == ("50.00", "90.00")
    replay = await call(cclient, "create_credit_note", invoiceId=advance["id"], reason="ORDER_CHANGE",
                        lines=[{"lineNumber": 1, "amount": "40.00"}], idempotencyKey="cn-credits")
    assert replay["replayed"] is True and await balance() == "90.00"  # a replay voids nothing more
    # the rest of the line, 40.00: the other 50 credits; 90.00 - 50.00 + 40.00 = 80.00
    second = await call(cclient, "create_credit_note", invoiceId=advance["id"], reason="ORDER_CHANGE",
                        lines=[{"lineNumber": 1, "amount": "40.00"}])
    assert (second["creditNote"]["lines"][0]["creditsVoided"], second["walletBalance"]) == ("50.00", "80.00")
    # beta's credits, on another shard, are untouched
    assert (await call(cclient, "get_wallet_balance", accountId="beta"))["balance"] == "100.00"
    await exact(cdb)
