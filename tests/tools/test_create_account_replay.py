"""create_account again with an existing id, through a real MCP client: the same call (normalised as stored)
returns the account unchanged; a call whose fields differ is refused, naming the first field that differs with
what is stored and what was sent, and writes nothing (accounts README, "Creating again"; Stripe's idempotency
rule). The plan: Growth, 0.10 a token and a platform fee of 31.00 a month; Acme's deal: tokens at 0.05."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import text

from conftest import row_counts
from helpers import call, call_error, iso, tokens_meter
from togai_engine.accounts.schemas import AccountCreate, AccountUpdate
from togai_engine.app import accounts as app_accounts

MONTHLY = {"interval": "MONTHLY", "startOffset": {"dayOffset": "1", "monthOffset": "NIL"}, "gracePeriod": 0}


def usage_card(meter: str, rate: str) -> dict[str, Any]:
    return {"name": "api_calls", "usageMeterId": meter,
            "ratePlan": {"pricingModel": "TIERED", "slabs": [{"order": 1, "startAfter": 0, "priceType": "PER_UNIT"}]},
            "rateValues": [{"currency": "USD", "slabRates": [{"order": 1, "rate": rate}]}]}


def platform_fee(rate: str, fee_id: str = "platform") -> dict[str, Any]:
    return {"id": fee_id, "rateValues": [{"currency": "USD", "rate": rate}]}


async def growth(client: Any, name: str = "Growth", *, fees: tuple[str, ...] = ("platform",)) -> tuple[str, str]:
    """(plan id, meter id)."""
    meter = await tokens_meter(client)
    plan = await call(client, "create_price_plan", name=name, pricingCycleConfig=MONTHLY, rateCards={
        "usageRateCards": [usage_card(meter, "0.10")], "fixedFeeRateCards": [platform_fee("31", f) for f in fees]})
    return plan["id"], meter


async def refusal(client: Any, tool: str, /, **arguments: Any) -> str:
    """The error of a call that must fail, without the SDK's "Error executing tool ...: " in front."""
    return (await call_error(client, tool, **arguments)).split(": ", 1)[1]


async def associations(db: Any, account_id: str) -> list[tuple[Any, ...]]:
    async with db.unit_of_work() as session:
        rows = await session.execute(text(
            "SELECT price_plan_id, effective_from, effective_until, rate_card_overrides FROM plan_associations "
            "WHERE account_id = :id ORDER BY effective_from"), {"id": account_id})
        return [tuple(row) for row in rows]


async def audit_rows(db: Any) -> list[str]:
    async with db.unit_of_work() as session:
        return list(await session.scalars(text("SELECT tool FROM audit_log ORDER BY at, id")))


async def test_the_same_call_again_returns_the_account_unchanged(client, db) -> None:
    plan_id, meter = await growth(client, fees=("platform", "support"))
    await call(client, "create_customer", id="cust_acme", name="Acme")
    deal = {"usageRateCards": [usage_card(meter, "0.05")],
            "fixedFeeRateCards": [platform_fee("20"), platform_fee("5", "support")]}
    first = await call(client, "create_account", id="acme", customerId="cust_acme", name="Acme",
                       invoiceCurrency="USD", aliases=["acme-eu", "acme-us"], primaryEmail="billing@acme.example",
                       address={"line1": "1 Main St", "country": "us"}, metadata={"tier": "gold"},
                       pricePlanId=plan_id, effectiveFrom=iso(2026, 1, 1), rateCardOverrides=deal)
    stored = await associations(db, "acme")
    before = await row_counts(db)
    # the same deal written another way: the lists in the other order, the fees' cards too, keys reordered, 0.050
    # for 0.05 and 20.00 for 20; the currency in lower case, the aliases in another order, the name with spaces around it, the address
    # with an empty part and its country as stored
    same_deal = {"fixedFeeRateCards": [platform_fee("5.0", "support"),
                                       {"rateValues": [{"rate": "20.00", "currency": "USD"}], "id": "platform"}],
                 "usageRateCards": [{**usage_card(meter, "0.050"), "name": "api_calls"}]}
    again = await call(client, "create_account", id="acme", customerId="cust_acme", name="  Acme ",
                       invoiceCurrency="usd", aliases=["acme-us", "acme-eu"], primaryEmail="billing@acme.example",
                       address={"country": "US", "city": None, "line1": "1 Main St"}, metadata={"tier": "gold"},
                       pricePlanId=plan_id, effectiveFrom="2026-01-01T01:00:00+01:00", rateCardOverrides=same_deal)
    assert again == first
    # a retry that leaves effectiveFrom out matches too: its default, the moment of the call, cannot be repeated
    assert await call(client, "create_account", id="acme", customerId="cust_acme", name="Acme",
                      aliases=["acme-eu", "acme-us"], primaryEmail="billing@acme.example",
                      address={"line1": "1 Main St", "country": "US"}, metadata={"tier": "gold"},
                      pricePlanId=plan_id, rateCardOverrides=deal) == first
    assert await associations(db, "acme") == stored
    # nothing written but the two replays' audit records
    assert await row_counts(db) == before | {"audit_log": before["audit_log"] + 2}


async def test_a_different_plan_deal_or_name_is_refused_naming_the_field(client, db) -> None:
    plan_id, meter = await growth(client)
    other_plan = (await call(client, "create_price_plan", name="Pro", pricingCycleConfig=MONTHLY, rateCards={
        "usageRateCards": [usage_card(meter, "0.08")]}))["id"]
    await call(client, "create_customer", id="cust_acme", name="Acme")
    deal = {"usageRateCards": [usage_card(meter, "0.05")]}
    first = {"id": "acme", "customerId": "cust_acme", "name": "Acme", "pricePlanId": plan_id,
             "effectiveFrom": iso(2026, 1, 1), "rateCardOverrides": deal}
    created = await call(client, "create_account", **first)
    stored = await associations(db, "acme")
    [(stored_plan, _, _, stored_deal)] = stored
    assert stored_plan == plan_id and stored_deal["usageRateCards"][0]["rateValues"][0]["slabRates"][0]["rate"] == "0.05"
    before, audited = await row_counts(db), await audit_rows(db)

    error = await refusal(client, "create_account", **{**first, "pricePlanId": other_plan})
    assert error.startswith(f"pricePlanId: account 'acme' already exists with a different pricePlanId (stored "
                            f"'{plan_id}', sent '{other_plan}')"), error
    assert "Use update_account (pricePlanId + effectiveFrom" in error and "choose another id" in error

    error = await refusal(client, "create_account", **{**first, "effectiveFrom": iso(2026, 1, 15)})
    assert ("effectiveFrom: account 'acme' already exists with a different effectiveFrom (stored "
            "2026-01-01T00:00:00Z, sent 2026-01-15T00:00:00Z)") in error, error

    # a different rate in the deal: named down to the rate, 0.05 stored and 0.04 sent
    error = await refusal(client, "create_account", **{**first, "rateCardOverrides": {
        "usageRateCards": [usage_card(meter, "0.04")]}})
    assert error.startswith("rateCardOverrides.usageRateCards[0].rateValues[0].slabRates[0].rate: account 'acme' "
                            "already exists with a different rateCardOverrides (stored 0.05, sent 0.04)"), error
    # a card more in the deal
    error = await refusal(client, "create_account", **{**first, "rateCardOverrides": {
        **deal, "fixedFeeRateCards": [platform_fee("20")]}})
    assert error.startswith("rateCardOverrides.fixedFeeRateCards[0]: account 'acme' already exists with a different "
                            "rateCardOverrides (stored no fixedFeeRateCard 'platform', sent fixedFeeRateCard "
                            "'platform')"), error
    # the deal left out: a fresh create without it would price with the plan's own rates
    error = await refusal(client, "create_account", **{k: v for k, v in first.items() if k != "rateCardOverrides"})
    assert error.startswith("rateCardOverrides: account 'acme' already exists with a different rateCardOverrides "
                            "(stored a deal replacing usageRateCards api_calls, sent none (the plan's own rates))")
    # the plan left out: a fresh create without it would have no plan
    error = await refusal(client, "create_account", id="acme", customerId="cust_acme", name="Acme")
    assert error.startswith(f"pricePlanId: account 'acme' already exists with a different pricePlanId (stored "
                            f"'{plan_id}', sent none)"), error

    error = await refusal(client, "create_account", **{**first, "name": "Acme Inc"})
    assert error.startswith("name: account 'acme' already exists with a different name (stored 'Acme', sent "
                            "'Acme Inc')"), error
    assert "Use update_account to change it, or choose another id" in error
    # the first field that differs in the tool's order is named: the name before the plan
    assert (await refusal(client, "create_account", **{**first, "name": "Acme Inc", "pricePlanId": other_plan})
            ).startswith("name: ")
    error = await refusal(client, "create_account", **{**first, "aliases": ["acme-eu"]})
    assert "aliases: account 'acme' already exists with a different aliases (stored [], sent [\"acme-eu\"])" in error
    error = await refusal(client, "create_account", **{**first, "address": {"line1": "2 Main St", "country": "us"}})
    assert error.startswith("address: account 'acme' already exists with a different address (stored none, sent "
                            '{"line1":"2 Main St","country":"US"})'), error

    # nothing was written by any refusal: no association, no alias, no audit record; the account reads as before
    assert await row_counts(db) == before and await audit_rows(db) == audited
    assert await associations(db, "acme") == stored
    account = await call(client, "get_account", accountId="acme")
    assert {**account, "financial": None} == created  # create_account answers without the financial picture
    on = account["financial"]["pricePlan"]
    assert (on["id"], on["effectiveFrom"], on["isOverridden"]) == (plan_id, iso(2026, 1, 1), True)


async def test_an_account_created_without_a_plan_refuses_a_replay_that_brings_one(client, db) -> None:
    plan_id, _ = await growth(client)
    await call(client, "create_customer", id="cust_acme", name="Acme")
    await call(client, "create_account", id="acme", customerId="cust_acme", name="Acme")
    before = await row_counts(db)
    error = await refusal(client, "create_account", id="acme", customerId="cust_acme", name="Acme",
                          pricePlanId=plan_id, effectiveFrom=iso(2026, 1, 1))
    assert error.startswith(f"pricePlanId: account 'acme' already exists with a different pricePlanId (stored none, "
                            f"sent '{plan_id}')"), error
    assert await row_counts(db) == before and await associations(db, "acme") == []
    # attached afterwards with update_account: the creation did not ask for that plan, so replaying it still
    # returns the account
    await call(client, "update_account", accountId="acme", pricePlanId=plan_id, effectiveFrom=iso(2026, 1, 1))
    again = await call(client, "create_account", id="acme", customerId="cust_acme", name="Acme")
    assert again["id"] == "acme" and len(await associations(db, "acme")) == 1


async def test_a_plan_attached_at_the_creation_instant_is_not_taken_for_the_creations(client, db) -> None:
    """A call that began at the very instant of the account's creation (now() is a transaction's start) and
    attached a plan after it committed writes an association with the creation's created_at too: the creation's
    is still the one compared, the account's first (written before any other call could see the account)."""
    plan_id, meter = await growth(client)
    other_plan = (await call(client, "create_price_plan", name="Pro", pricingCycleConfig=MONTHLY, rateCards={
        "usageRateCards": [usage_card(meter, "0.08")]}))["id"]
    await call(client, "create_customer", id="cust_acme", name="Acme")
    first = {"id": "acme", "customerId": "cust_acme", "name": "Acme", "pricePlanId": plan_id,
             "effectiveFrom": iso(2026, 1, 1)}
    created = await call(client, "create_account", **first)
    async with db.unit_of_work() as session:
        # the other call's association, read first whatever the scan: earlier in effective_from, and the
        # creation's row rewritten (its tuple after the other's in the table)
        await session.execute(text(
            "INSERT INTO plan_associations (account_id, price_plan_id, effective_from, effective_until, anchor, "
            "created_at) SELECT id, :plan, '2025-12-01Z', '2026-01-01Z', '2025-12-01Z', created_at FROM accounts "
            "WHERE id = 'acme'"), {"plan": other_plan})
        await session.execute(text("UPDATE plan_associations SET anchor = anchor WHERE account_id = 'acme' AND "
                                   "price_plan_id = :plan"), {"plan": plan_id})
    assert await call(client, "create_account", **first) == created
    error = await refusal(client, "create_account", **{**first, "pricePlanId": other_plan})
    assert error.startswith(f"pricePlanId: account 'acme' already exists with a different pricePlanId (stored "
                            f"'{plan_id}', sent '{other_plan}')"), error


async def test_a_plan_attached_at_the_instant_of_a_plan_less_creation_is_not_taken_for_the_creations(client,
                                                                                                         db) -> None:
    """An account created without a plan, and an update_account that began at the same instant (now() is a
    transaction's start) attaching one: that association has the account's created_at too, but the creation wrote
    none, so replaying the creation (no plan) is a replay, and one bringing the plan is refused. Forced here by
    both calls in one transaction, which share now()."""
    plan_id, _ = await growth(client)
    await call(client, "create_customer", id="cust_acme", name="Acme")
    now = datetime(2026, 1, 1, tzinfo=UTC)
    async with db.unit_of_work() as session:
        await app_accounts.create_account(
            session, AccountCreate(id="acme", customerId="cust_acme", name="Acme"), now)
        await app_accounts.update_account(session, "acme", AccountUpdate(pricePlanId=plan_id,
                                                                         effectiveFrom=iso(2026, 1, 1)), now)
    async with db.unit_of_work() as session:
        [same_instant] = list(await session.scalars(text(
            "SELECT a.created_at = p.created_at FROM accounts a JOIN plan_associations p ON p.account_id = a.id "
            "WHERE a.id = 'acme'")))
    assert same_instant  # the race the test forces
    again = await call(client, "create_account", id="acme", customerId="cust_acme", name="Acme")
    assert again["id"] == "acme" and [row[0] for row in await associations(db, "acme")] == [plan_id]
    error = await refusal(client, "create_account", id="acme", customerId="cust_acme", name="Acme",
                          pricePlanId=plan_id, effectiveFrom=iso(2026, 1, 1))
    assert error.startswith(f"pricePlanId: account 'acme' already exists with a different pricePlanId (stored none, "
                            f"sent '{plan_id}')"), error


async def test_an_id_of_another_customers_account_is_refused_naming_the_customer(client, db) -> None:
    await call(client, "create_customer", id="cust_acme", name="Acme", account={"id": "acme", "name": "Acme"})
    await call(client, "create_customer", id="cust_globex", name="Globex")
    before, audited = await row_counts(db), await audit_rows(db)
    error = await refusal(client, "create_account", id="acme", customerId="cust_globex", name="Acme")
    assert error.startswith("customerId: account 'acme' already exists with a different customerId (stored "
                            "'cust_acme', sent 'cust_globex')"), error
    assert "An account belongs to one customer for good: choose another id" in error
    # inline, the account's customer is the customer being created: its own id is what clashes
    error = await refusal(client, "create_customer", id="cust_initech", name="Initech",
                          account={"id": "acme", "name": "Acme"})
    assert error.startswith("account.id: account 'acme' already exists with a different customerId"), error
    assert "does not exist" in await refusal(client, "get_customer", customerId="cust_initech")
    assert (await row_counts(db), await audit_rows(db)) == (before, audited)  # neither refusal wrote anything


async def test_the_inline_account_of_create_customer_replays_the_same_way(client, db) -> None:
    plan_id, meter = await growth(client)
    deal = {"usageRateCards": [usage_card(meter, "0.05")]}
    inline = {"id": "globex", "name": "Globex", "pricePlanId": plan_id, "effectiveFrom": iso(2026, 1, 1),
              "rateCardOverrides": deal}
    first = await call(client, "create_customer", id="cust_globex", name="Globex", account=inline)
    stored = await associations(db, "globex")
    assert await call(client, "create_customer", id="cust_globex", name="Globex", account=inline) == first
    before, audited = await row_counts(db), await audit_rows(db)
    error = await refusal(client, "create_customer", id="cust_globex", name="Globex", account={
        **inline, "rateCardOverrides": {"usageRateCards": [usage_card(meter, "0.06")]}})
    assert error.startswith("account.rateCardOverrides.usageRateCards[0].rateValues[0].slabRates[0].rate: account "
                            "'globex' already exists with a different rateCardOverrides (stored 0.05, sent 0.06)")
    error = await refusal(client, "create_customer", id="cust_globex", name="Globex",
                             account={**inline, "invoiceCurrency": "EUR"})
    assert error.startswith("account.invoiceCurrency: account 'globex' already exists with a different "
                            "invoiceCurrency (stored 'USD', sent 'EUR')"), error
    error = await refusal(client, "create_customer", id="cust_globex", name="Globex",
                             account={**inline, "effectiveFrom": iso(2026, 2, 1)})
    assert error.startswith("account.effectiveFrom: "), error
    assert await row_counts(db) == before and await audit_rows(db) == audited
    assert await associations(db, "globex") == stored


async def test_the_same_creation_twice_at_once_creates_once_and_replays_the_first(client, db) -> None:
    """Two create_account calls with one id at once (the second begun while the first has not committed): the second
    waits for the first's row, then replays it: one account, one plan association, one id handle."""
    plan_id, _ = await growth(client)
    await call(client, "create_customer", id="cust_acme", name="Acme")
    data = AccountCreate(id="acme", customerId="cust_acme", name="Acme", pricePlanId=plan_id,
                         effectiveFrom=iso(2026, 1, 1))
    now = datetime(2026, 1, 1, tzinfo=UTC)
    first_wrote, let_go = asyncio.Event(), asyncio.Event()

    async def first() -> tuple[Any, bool]:
        async with db.unit_of_work() as session:
            result = await app_accounts.create_account(session, data, now)
            first_wrote.set()
            await let_go.wait()  # not committed yet while the second starts
            return result

    async def second() -> tuple[Any, bool]:
        await first_wrote.wait()
        async with db.unit_of_work() as session:
            return await app_accounts.create_account(session, data, now)

    creating = asyncio.create_task(first())
    replaying = asyncio.create_task(second())
    await asyncio.sleep(0.5)
    assert not replaying.done()  # waits for the first's row
    let_go.set()
    (made, created), (replayed, created_again) = await asyncio.wait_for(asyncio.gather(creating, replaying), 30)
    assert (created, created_again) == (True, False) and replayed == made
    assert [row[0] for row in await associations(db, "acme")] == [plan_id]
    async with db.unit_of_work() as session:
        handles = list(await session.scalars(text("SELECT handle FROM account_handles WHERE account_id = 'acme'")))
    assert handles == ["acme"]

