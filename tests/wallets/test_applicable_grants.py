"""Credit-grant rate cards restricted to rate cards (grantDetails.applicableEntityIds), the fields a grant card
refuses, and ONE_TIME and RECURRING cards across plan changes.

Plan "Scoped": monthly on the 1st, no grace; usage card `api` at 0.01 per token, fixed fee `platform` 25.00,
and a RECURRING grant `api_credits` of 40.00 per cycle (priority 0, expires at the cycle end) that pays only
the `api` line.
"""

from __future__ import annotations

from typing import Any

from conftest import row_counts
from helpers import at, break_stored_deal, call, call_error, iso, tokens_meter


def _plan(meter: str, name: str = "Scoped", **grant_details: Any) -> dict[str, Any]:
    return {
        "name": name,
        "pricingCycleConfig": {"interval": "MONTHLY", "startOffset": {"dayOffset": "1"}, "gracePeriod": 0},
        "rateCards": {
            "usageRateCards": [{"name": "api", "usageMeterId": meter, "ratePlan": {"pricingModel": "TIERED", "slabs": [
                {"order": 1, "startAfter": "0", "priceType": "PER_UNIT"}]},
                "rateValues": [{"currency": "USD", "slabRates": [{"order": 1, "rate": "0.01"}]}]}],
            "fixedFeeRateCards": [{"name": "platform", "rateValues": [{"currency": "USD", "rate": "25.00"}]}],
            "creditGrantRateCards": [{
                "name": "api_credits", "type": "RECURRING",
                "grantDetails": {"priority": 0, "expiryType": "PRICING_CYCLE", "applicableEntityIds": ["api"],
                                 **grant_details},
                "rateDetails": {"currencySlabRateDetails": [{"currency": "USD", "creditAmount": "40.00"}]}}],
        },
    }


async def _tokens(client: Any, event_id: str, when: str, tokens: str) -> None:
    await call(client, "ingest_event", event={"id": event_id, "schemaName": "llm", "timestamp": when,
                                              "accountId": "acme", "attributes": {"tokens": tokens}})


async def _due(client: Any) -> list[tuple[str, str, str, str]]:
    """(start, total, credits applied, amount due) of the DUE invoices, oldest first."""
    page = await call(client, "list_invoices", accountId="acme", status="DUE", pageSize=100)
    return sorted((i["startDate"][:10], i["totalAmount"], i["creditsApplied"], i["amountDue"]) for i in page["data"])


async def _account(client: Any, plan_id: str) -> None:
    await call(client, "create_customer", id="cust_acme", name="Acme", account={
        "id": "acme", "name": "Acme", "pricePlanId": plan_id, "effectiveFrom": iso(2026, 1, 1)})


async def test_a_grant_for_one_card_pays_only_its_line_and_the_fee_stays_due(client, clock) -> None:
    meter = await tokens_meter(client)
    plan = await call(client, "create_price_plan", **_plan(meter))
    await _account(client, plan["id"])

    # January: 2500 tokens × 0.01 = 25.00 of api; + platform 25.00 = 50.00. The 40.00 grant pays only the
    # api line: 25.00; the platform fee stays due.
    clock.set(at(2026, 1, 15))
    await _tokens(client, "e1", iso(2026, 1, 10), "2500")
    wallet = await call(client, "get_wallet_balance", accountId="acme")
    assert [(g["amount"], g["applicableEntityIds"]) for g in wallet["grants"]] == [("40.00", ["api"])]
    clock.set(at(2026, 2, 1))
    assert await _due(client) == [("2026-01-01", "50.00", "25.00", "25.00")]

    # February: 1000 tokens = 10.00 of api; a manual 10.00 credit (priority 200, any line) is granted too.
    # The restricted grant (priority 0) pays the api line, 10.00; the manual credit pays 10.00 of the fee:
    # 35.00 - 20.00 = 15.00 due.
    clock.set(at(2026, 2, 10))
    await _tokens(client, "e2", iso(2026, 2, 5), "1000")
    await call(client, "grant_credit", accountId="acme", amount="10.00", priority=200, purpose="goodwill")
    clock.set(at(2026, 3, 1))
    assert (await _due(client))[-1] == ("2026-02-01", "35.00", "20.00", "15.00")
    entries = (await call(client, "list_wallet_entries", accountId="acme", pageSize=100))["data"]
    applied = sorted(e["amount"] for e in entries if e["kind"] == "APPLICATION")
    # January's 25.00, February's 10.00 (restricted grant) and 10.00 (manual)
    assert applied == ["-10.00", "-10.00", "-25.00"]


async def test_a_general_grant_leaves_the_restricted_lines_to_the_restricted_grant(client, clock) -> None:
    # A manual 30.00 credit with a better priority (0 < the card's 5) pays the fee first, so the restricted
    # grant still pays the api line: 25.00 fee + 25.00 api = 50.00, all paid (30.00 + 20.00 of restricted).
    meter = await tokens_meter(client)
    plan = await call(client, "create_price_plan", **_plan(meter, priority=5))
    await _account(client, plan["id"])
    await call(client, "grant_credit", accountId="acme", amount="30.00", priority=0)
    clock.set(at(2026, 1, 15))
    await _tokens(client, "e1", iso(2026, 1, 10), "2500")
    clock.set(at(2026, 2, 1))
    # the manual 30.00: platform 25.00 then 5.00 of api; the restricted grant: the api line's other 20.00
    assert await _due(client) == [("2026-01-01", "50.00", "50.00", "0.00")]


async def test_grant_card_fields_that_cannot_be_honoured_are_refused_naming_the_field(client) -> None:
    meter = await tokens_meter(client)
    path = "rateCards.creditGrantRateCards[0]"
    message = await call_error(client, "create_price_plan", **_plan(meter, applicableEntityIds=["api", "seats"]))
    assert f"{path}.grantDetails.applicableEntityIds[1]" in message and "'seats'" in message
    assert "'api', 'platform'" in message  # the names it could have used
    message = await call_error(client, "create_price_plan", **_plan(meter, applicableEntityIds=["api", "api"]))
    assert f"{path}.grantDetails.applicableEntityIds[1]" in message and "twice" in message
    # PREPAID sells the credits: without a price (slabDetails) it cannot be honoured; the other timings would be
    # accepted and ignored (free credits are granted as each period starts).
    refusals = {}
    for timing in ("PREPAID", "IN_ADVANCE", "IN_ARREARS"):
        plan = _plan(meter)
        plan["rateCards"]["creditGrantRateCards"][0]["invoiceTiming"] = timing
        refusals[timing] = await call_error(client, "create_price_plan", **plan)
    assert f"{path}.rateDetails.currencySlabRateDetails[0].slabDetails" in refusals["PREPAID"]
    assert "price them" in refusals["PREPAID"]
    for timing in ("IN_ADVANCE", "IN_ARREARS"):
        assert f"{path}.invoiceTiming" in refusals[timing] and f"'{timing}' does not apply" in refusals[timing]


async def test_one_time_grants_once_per_plan_across_plan_changes_and_recurring_every_cycle(client, clock) -> None:
    # Plan A: a ONE_TIME 30.00 welcome credit (45 days, CUSTOM). Plan B: a RECURRING 5.00 per cycle. Acme is on
    # A in January, B in February, A again from March: A's welcome comes once (January), B's grant every B cycle.
    meter = await tokens_meter(client)
    cycle = {"interval": "MONTHLY", "startOffset": {"dayOffset": "1"}, "gracePeriod": 0}
    usage = {"usageMeterId": meter, "ratePlan": {"pricingModel": "TIERED", "slabs": [
        {"order": 1, "startAfter": "0", "priceType": "PER_UNIT"}]},
        "rateValues": [{"currency": "USD", "slabRates": [{"order": 1, "rate": "0.01"}]}]}
    a = await call(client, "create_price_plan", name="A", pricingCycleConfig=cycle, rateCards={
        "usageRateCards": [usage], "creditGrantRateCards": [{
            "name": "welcome", "type": "ONE_TIME", "grantDetails": {"expiryType": "CUSTOM", "expiryDuration": "P45D"},
            "rateDetails": {"currencySlabRateDetails": [{"currency": "USD", "creditAmount": "30.00"}]}}]})
    b = await call(client, "create_price_plan", name="B", pricingCycleConfig=cycle, rateCards={
        "usageRateCards": [usage], "creditGrantRateCards": [{
            "name": "monthly", "type": "RECURRING", "grantDetails": {"expiryType": "PRICING_CYCLE"},
            "rateDetails": {"currencySlabRateDetails": [{"currency": "USD", "creditAmount": "5.00"}]}}]})
    await _account(client, a["id"])
    await call(client, "update_account", accountId="acme", pricePlanId=b["id"], effectiveFrom=iso(2026, 2, 1))
    await call(client, "update_account", accountId="acme", pricePlanId=a["id"], effectiveFrom=iso(2026, 3, 1))
    clock.set(at(2026, 4, 2))
    await call(client, "list_invoices", accountId="acme")  # brings billing up to now
    entries = (await call(client, "list_wallet_entries", accountId="acme", pageSize=100))["data"]
    grants = sorted((e["at"][:10], e["amount"]) for e in entries if e["kind"] == "GRANT")
    # welcome 30.00 on 1 January (until 15 February: 1 January + 45 days), B's 5.00 on 1 February only;
    # back on A in March: no second welcome
    assert grants == [("2026-01-01", "30.00"), ("2026-02-01", "5.00")]
    wallet = await call(client, "get_wallet_balance", accountId="acme")
    assert wallet["balance"] == "0.00"  # nothing used (no usage), everything expired by 2 April


async def test_grant_credit_limited_to_one_card_pays_only_its_line(client, clock) -> None:
    """grant_credit's applicableEntityIds (Togai's CreditRequest): a manual grant for the `api` card. The plan's
    own 40.00 `api_credits` grant is left out (a plan without grant cards) so only the manual grants pay."""
    meter = await tokens_meter(client)
    scoped = _plan(meter, "Plain")
    scoped["rateCards"].pop("creditGrantRateCards")
    plan = await call(client, "create_price_plan", **scoped)
    await _account(client, plan["id"])
    clock.set(at(2026, 1, 2))
    # 30.00 for api only, priority 0 (burns first); 100.00 unrestricted, priority 1
    limited = await call(client, "grant_credit", accountId="acme", amount="30.00", priority=0,
                         applicableEntityIds=["api"], idempotencyKey="api-30")
    assert limited["grant"]["applicableEntityIds"] == ["api"]
    await call(client, "grant_credit", accountId="acme", amount="100.00", priority=1, idempotencyKey="any-100")
    await _tokens(client, "e1", iso(2026, 1, 10), "1200")
    clock.set(at(2026, 2, 1))  # January DUE (no grace)
    # January: 1200 × 0.01 = 12.00 of api + platform 25.00 = 37.00. The api grant pays its line only: 12.00
    # (18.00 left); the unrestricted grant pays the fee: 25.00 (75.00 left). Credits 37.00, nothing due.
    assert await _due(client) == [("2026-01-01", "37.00", "37.00", "0.00")]
    wallet = await call(client, "get_wallet_balance", accountId="acme")
    assert sorted((g["applicableEntityIds"] or [], g["remaining"]) for g in wallet["grants"]) == [
        ([], "75.00"), (["api"], "18.00")]
    # February: the api grant has 18.00 for 500 × 0.01 = 5.00 of api; the fee 25.00 from the other: 75 - 25 = 50
    await _tokens(client, "e2", iso(2026, 2, 10), "500")
    clock.set(at(2026, 3, 1))
    assert (await _due(client))[1] == ("2026-02-01", "30.00", "30.00", "0.00")
    wallet = await call(client, "get_wallet_balance", accountId="acme")
    assert sorted((g["applicableEntityIds"] or [], g["remaining"]) for g in wallet["grants"]) == [
        ([], "50.00"), (["api"], "13.00")]

    # the same key and content returns the grant; another card list under that key is a conflict
    again = await call(client, "grant_credit", accountId="acme", amount="30.00", priority=0,
                       applicableEntityIds=["api"], idempotencyKey="api-30")
    assert (again["replayed"], again["grant"]["id"]) == (True, limited["grant"]["id"])
    error = await call_error(client, "grant_credit", accountId="acme", amount="30.00", priority=0,
                             applicableEntityIds=["api", "platform"], idempotencyKey="api-30")
    assert "with a different applicableEntityIds" in error
    error = await call_error(client, "grant_credit", accountId="acme", amount="30.00", priority=0,
                             idempotencyKey="api-30")
    assert "with a different applicableEntityIds" in error


async def test_grant_credit_names_only_cards_of_the_accounts_plan(client, clock) -> None:
    meter = await tokens_meter(client)
    plan = await call(client, "create_price_plan", **_plan(meter))
    await call(client, "create_customer", id="cust_bare", name="Bare", account={"id": "bare", "name": "Bare"})
    error = await call_error(client, "grant_credit", accountId="bare", amount="5", applicableEntityIds=["api"])
    assert "applicableEntityIds: account 'bare' is on no price plan now" in error
    await _account(client, plan["id"])
    error = await call_error(client, "grant_credit", accountId="acme", amount="5", applicableEntityIds=["api", "apl"])
    assert "applicableEntityIds[1]: 'apl' is not a usage, license, fixed-fee or entitlement overage rate card" in error
    assert "(they are: 'api', 'platform')" in error and plan["id"] in error
    # a credit-grant card is no line of an invoice
    assert "applicableEntityIds[0]: 'api_credits' is not" in await call_error(
        client, "grant_credit", accountId="acme", amount="5", applicableEntityIds=["api_credits"])
    error = await call_error(client, "grant_credit", accountId="acme", amount="5", applicableEntityIds=["api", "api"])
    assert "applicableEntityIds[1]: 'api' is listed twice" in error
    assert "applicableEntityIds: is empty" in await call_error(
        client, "grant_credit", accountId="acme", amount="5", applicableEntityIds=[])
    wallet = await call(client, "get_wallet_balance", accountId="acme")
    assert [g["source"] for g in wallet["grants"]] == ["RATE_CARD"]  # no refused grant was made


async def test_a_retry_of_a_grant_replays_when_the_accounts_deal_no_longer_validates(client, clock, db,
                                                                                      monkeypatch) -> None:
    """A retry of a committed grant returns it, limited to cards or not, without resolving the plan again: an account
    whose deal stopped validating gets its grant back, and only a balance it cannot tell is left unknown."""
    meter = await tokens_meter(client)
    plain = _plan(meter, "Plain")
    plain["rateCards"].pop("creditGrantRateCards")
    plan = await call(client, "create_price_plan", **plain)
    await call(client, "create_customer", id="cust_acme", name="Acme", account={
        "id": "acme", "name": "Acme", "pricePlanId": plan["id"], "effectiveFrom": iso(2026, 1, 1),
        "rateCardOverrides": {"fixedFeeRateCards": [{"name": "platform", "rateValues": [
            {"currency": "USD", "rate": "20.00"}]}]}})
    clock.set(at(2026, 1, 2))
    limited = await call(client, "grant_credit", accountId="acme", amount="30.00", applicableEntityIds=["api"],
                         idempotencyKey="api-30")
    short = await call(client, "grant_credit", accountId="acme", amount="5.00", effectiveUntil=iso(2026, 1, 20),
                       idempotencyKey="short")
    assert (limited["balance"], short["balance"]) == ("30.00", "35.00")  # 30.00 + 5.00
    # An upgrade with stricter checks, or a hand edit: acme's stored deal no longer parses; the engine restarts
    await break_stored_deal(db, monkeypatch, "acme", "{fixedFeeRateCards,0,rateValues,0,rate}", '"20 USD"')

    clock.set(at(2026, 1, 10))  # nothing expired: the balance needs no period, 30.00 + 5.00
    before = await row_counts(db)
    again = await call(client, "grant_credit", accountId="acme", amount="30.00", applicableEntityIds=["api"],
                       idempotencyKey="api-30")
    assert (again["replayed"], again["grant"], again["balance"], again["problem"]) == (
        True, limited["grant"], "35.00", None)
    assert await row_counts(db) == before | {"audit_log": before["audit_log"] + 1}  # the replay is audited only

    clock.set(at(2026, 1, 25))  # the 5.00 expired on 20 January, unrecorded: held for a period not DUE yet or not,
    # which only the deal's periods tell, so the balance (30.00, or 35.00) is unknown; the grants are still the same
    for key, arguments, first in (("api-30", {"amount": "30.00", "applicableEntityIds": ["api"]}, limited),
                                  ("short", {"amount": "5.00", "effectiveUntil": iso(2026, 1, 20)}, short)):
        again = await call(client, "grant_credit", accountId="acme", idempotencyKey=key, **arguments)
        assert (again["replayed"], again["grant"]["id"], again["balance"]) == (True, first["grant"]["id"], None)
        assert "the wallet balance is unknown" in again["problem"] and "'20 USD'" in again["problem"]
    # a new grant is still refused naming the deal
    error = await call_error(client, "grant_credit", accountId="acme", amount="1.00", idempotencyKey="new")
    assert "account 'acme'" in error and "'20 USD' is not a decimal number" in error


async def test_a_new_grant_needs_no_period_of_an_account_whose_deal_no_longer_validates(client, clock, db,
                                                                                       monkeypatch) -> None:
    """A new grant reads the account's periods only to record an expiry that may be held for one: with nothing
    expired it is granted though the deal no longer validates; a limit to cards needs the plan and names the deal."""
    meter = await tokens_meter(client)
    plain = _plan(meter, "Plain")
    plain["rateCards"].pop("creditGrantRateCards")
    plan = await call(client, "create_price_plan", **plain)
    await call(client, "create_customer", id="cust_acme", name="Acme", account={
        "id": "acme", "name": "Acme", "pricePlanId": plan["id"], "effectiveFrom": iso(2026, 1, 1),
        "rateCardOverrides": {"fixedFeeRateCards": [{"name": "platform", "rateValues": [
            {"currency": "USD", "rate": "20.00"}]}]}})
    clock.set(at(2026, 1, 2))
    await call(client, "grant_credit", accountId="acme", amount="30.00", idempotencyKey="first")
    await break_stored_deal(db, monkeypatch, "acme", "{fixedFeeRateCards,0,rateValues,0,rate}", '"20 USD"')
    clock.set(at(2026, 1, 10))
    granted = await call(client, "grant_credit", accountId="acme", amount="12.50", idempotencyKey="second")
    assert (granted["replayed"], granted["grant"]["amount"], granted["balance"]) == (False, "12.50", "42.50")  # 30 + 12.50
    error = await call_error(client, "grant_credit", accountId="acme", amount="1.00", applicableEntityIds=["api"])
    assert "account 'acme'" in error and "'20 USD' is not a decimal number" in error


async def test_get_account_answers_for_a_broken_deal_when_a_grant_expired_unrecorded(client, clock, db,
                                                                                     monkeypatch) -> None:
    """get_account answers for an account whose deal no longer validates (billing README); a grant that expired
    and is not recorded yet needs the periods the deal hides to know whether it is held, so the wallet's numbers are
    unknown (the wallet null, `problem` naming the deal), never the whole grant counted nor get_account refused."""
    meter = await tokens_meter(client)
    plain = _plan(meter, "Plain")
    plain["rateCards"].pop("creditGrantRateCards")
    plan = await call(client, "create_price_plan", **plain)
    await call(client, "create_customer", id="cust_acme", name="Acme", account={
        "id": "acme", "name": "Acme", "pricePlanId": plan["id"], "effectiveFrom": iso(2026, 1, 1),
        "rateCardOverrides": {"fixedFeeRateCards": [{"name": "platform", "rateValues": [
            {"currency": "USD", "rate": "20.00"}]}]}})
    clock.set(at(2026, 1, 2))
    await call(client, "grant_credit", accountId="acme", amount="30.00", effectiveUntil=iso(2026, 1, 5))
    await break_stored_deal(db, monkeypatch, "acme", "{fixedFeeRateCards,0,rateValues,0,rate}", '"20 USD"')
    clock.set(at(2026, 1, 10))
    financial = (await call(client, "get_account", accountId="acme"))["financial"]
    assert financial["pricePlan"]["id"] == plan["id"] and financial["accruedCharges"] is None
    assert "account 'acme'" in financial["problem"] and "'20 USD' is not a decimal number" in financial["problem"]
    # the 30.00 expired on 5 January, its EXPIRY not recorded: whether it is held needs the periods, so the wallet
    # is unknown (a balance of 30.00 would count the expired grant)
    assert financial["wallet"] is None and financial["outstanding"] == "0.00"
