"""A credit-grant rate card's grant pays the invoice of its own cycle, never an earlier one.

Plan "Grants": monthly on the 1st, usage at 0.01 per token, and a RECURRING credit-grant card of
10.00 per cycle expiring at the cycle end (PRICING_CYCLE). Each cycle has 2500 tokens = 25.00 of
usage, so every DUE invoice is 25.00 - 10.00 credit = 15.00 due, paid by that cycle's own grant.
The next cycle's grant starts at the very instant the previous invoice becomes DUE (gracePeriod 0),
or during its grace period: it must not pay the previous cycle.
"""

from __future__ import annotations

from typing import Any

from conftest import row_counts
from helpers import at, break_stored_version, call, call_error, iso, tokens_meter
from togai_engine.billing.runs import run_bill


async def _plan(client: Any, grace: int) -> str:
    meter = await tokens_meter(client)
    plan = await call(client, "create_price_plan", name="Grants", pricingCycleConfig={
        "interval": "MONTHLY", "startOffset": {"dayOffset": "1", "monthOffset": "NIL"}, "gracePeriod": grace},
        rateCards={
            "usageRateCards": [{"usageMeterId": meter, "ratePlan": {"pricingModel": "TIERED", "slabs": [
                {"order": 1, "startAfter": "0", "priceType": "PER_UNIT"}]},
                "rateValues": [{"currency": "USD", "slabRates": [{"order": 1, "rate": "0.01"}]}]}],
            "creditGrantRateCards": [{"name": "monthly", "type": "RECURRING",
                                      "grantDetails": {"priority": 1, "expiryType": "PRICING_CYCLE"},
                                      "rateDetails": {"currencySlabRateDetails": [
                                          {"currency": "USD", "creditAmount": "10.00"}]}}],
        })
    await call(client, "create_customer", id="cust_acme", name="Acme", account={
        "id": "acme", "name": "Acme", "pricePlanId": plan["id"], "effectiveFrom": iso(2026, 1, 1)})
    return str(plan["id"])


async def _tokens(client: Any, event_id: str, when: str, tokens: str = "2500") -> None:
    await call(client, "ingest_event", event={"id": event_id, "schemaName": "llm", "timestamp": when,
                                              "accountId": "acme", "attributes": {"tokens": tokens}})


async def _due(client: Any) -> list[tuple[str, str, str, str]]:
    """(start, total, credits applied, amount due) of the DUE invoices, oldest first."""
    page = await call(client, "list_invoices", accountId="acme", status="DUE", pageSize=100)
    return sorted((i["startDate"][:10], i["totalAmount"], i["creditsApplied"], i["amountDue"]) for i in page["data"])


async def _ledger(client: Any) -> list[tuple[str, str, str, str]]:
    """(grant's cycle month, kind, amount, date) of every ledger entry, oldest first."""
    entries = (await call(client, "list_wallet_entries", accountId="acme", pageSize=100))["data"]
    month = {e["grantId"]: e["at"][:7] for e in entries if e["kind"] == "GRANT"}
    return [(month[e["grantId"]], e["kind"], e["amount"], e["at"][:10]) for e in reversed(entries)]


# Each cycle's grant +10.00 at its start and -10.00 to its own invoice when that becomes DUE (1st of
# the next month, gracePeriod 0); April's grant (issued as April starts) is untouched. No EXPIRY at
# all: every grant is used up by the invoice of its cycle.
THREE_CYCLES = [
    ("2026-01", "GRANT", "10.00", "2026-01-01"), ("2026-01", "APPLICATION", "-10.00", "2026-02-01"),
    ("2026-02", "GRANT", "10.00", "2026-02-01"), ("2026-02", "APPLICATION", "-10.00", "2026-03-01"),
    ("2026-03", "GRANT", "10.00", "2026-03-01"), ("2026-03", "APPLICATION", "-10.00", "2026-04-01"),
    ("2026-04", "GRANT", "10.00", "2026-04-01"),
]
# 2500 tokens × 0.01 = 25.00 per cycle; 10.00 of it paid by the cycle's grant: 15.00 due
PAID_BY_OWN_GRANT = [("2026-01-01", "25.00", "10.00", "15.00"), ("2026-02-01", "25.00", "10.00", "15.00"),
                     ("2026-03-01", "25.00", "10.00", "15.00")]


def _ledger_sorted(rows: list[tuple[str, str, str, str]]) -> list[tuple[str, str, str, str]]:
    return sorted(rows, key=lambda r: (r[0], r[3], r[1] != "GRANT"))


async def test_each_cycle_is_paid_by_its_own_grant_as_the_clock_moves(client, clock) -> None:
    await _plan(client, grace=0)
    for month in (1, 2, 3):
        clock.set(at(2026, month, 15))
        await _tokens(client, f"e{month}", iso(2026, month, 10))
        clock.set(at(2026, month + 1, 1))  # the cycle ends, its invoice becomes DUE at once (grace 0)
        due = await _due(client)
        # the newest DUE invoice: 25.00 - its own grant's 10.00 = 15.00; the next cycle's grant (started
        # at this very instant) is not applied
        assert due[-1] == PAID_BY_OWN_GRANT[month - 1]
        wallet = await call(client, "get_wallet_balance", accountId="acme")
        # only the new cycle's grant is left: 10.00, nothing accrued yet in it
        assert (wallet["balance"], wallet["accruedCharges"], wallet["availableBalance"]) == ("10.00", "0.00", "10.00")
        assert [(g["remaining"], g["effectiveFrom"]) for g in wallet["grants"]] == [("10.00", iso(2026, month + 1, 1))]
    assert await _due(client) == PAID_BY_OWN_GRANT
    ledger = await _ledger(client)
    assert _ledger_sorted(ledger) == THREE_CYCLES
    assert not [e for e in ledger if e[1] == "EXPIRY"]
    invoice = await call(client, "get_invoice", invoiceId=(await call(
        client, "list_invoices", accountId="acme", status="DUE", pageSize=1))["data"][0]["id"])
    assert (invoice["totalAmount"], invoice["creditsApplied"], invoice["amountDue"]) == ("25.00", "10.00", "15.00")


async def test_a_bill_run_ahead_of_time_gives_the_same_invoices_and_ledger(client, clock, db) -> None:
    await _plan(client, grace=0)
    clock.set(at(2026, 1, 15))
    for month in (1, 2, 3):
        await _tokens(client, f"e{month}", iso(2026, month, 10))
    # As `togai-engine bill --as-of 2026-04-01T00:00:00Z`: January, February and March close in one run,
    # after every grant up to April's has been issued.
    summary = await run_bill(db, at(2026, 4, 1))
    assert (summary.invoicesDue, summary.failed) == (3, [])
    assert await _due(client) == PAID_BY_OWN_GRANT
    clock.set(at(2026, 4, 2))  # every grant up to March has expired by now: the read settles what it must
    assert _ledger_sorted(await _ledger(client)) == THREE_CYCLES  # no EXPIRY entry at all
    wallet = await call(client, "get_wallet_balance", accountId="acme")
    assert (wallet["balance"], [g["effectiveFrom"] for g in wallet["grants"]]) == ("10.00", [iso(2026, 4, 1)])


async def test_with_a_grace_period_the_next_grant_waits_and_a_manual_grant_pays(client, clock) -> None:
    await _plan(client, grace=3)
    clock.set(at(2026, 1, 15))
    await _tokens(client, "e1", iso(2026, 1, 10))
    clock.set(at(2026, 2, 2))  # January is in its grace period (DUE 4 Feb); February's grant exists already
    wallet = await call(client, "get_wallet_balance", accountId="acme")
    # January's grant expired on 1 Feb but is held for January's invoice: still in the balance, listed
    # EXPIRED with its 10.00. Balance 10.00 + February's 10.00 = 20.00; accrued: January's 25.00 (in grace)
    # + February's 0.00; available 20.00 - 25.00 = -5.00.
    assert (wallet["balance"], wallet["accruedCharges"], wallet["availableBalance"]) == ("20.00", "25.00", "-5.00")
    assert [(g["status"], g["remaining"], g["effectiveFrom"][:10]) for g in wallet["grants"]] == [
        ("EXPIRED", "10.00", "2026-01-01"), ("ACTIVE", "10.00", "2026-02-01")]
    january, february = (g["id"] for g in wallet["grants"])
    # A manual grant given during the grace period, effective now: it is effective when January becomes DUE.
    manual = (await call(client, "grant_credit", accountId="acme", amount="4.00", purpose="GOODWILL"))["grant"]["id"]
    clock.set(at(2026, 2, 4))
    # January 25.00: its own grant 10.00 (priority 1) + the manual 4.00 (priority 100) = 14.00 applied,
    # 11.00 due. February's grant (started 1 Feb, during January's grace) pays nothing of January.
    assert await _due(client) == [("2026-01-01", "25.00", "14.00", "11.00")]
    entries = (await call(client, "list_wallet_entries", accountId="acme", pageSize=100))["data"]
    name = {january: "january", february: "february", manual: "manual"}
    # No EXPIRY: January's grant was held through the grace period and used up by its invoice.
    assert [(name[e["grantId"]], e["kind"], e["amount"], e["at"][:10]) for e in reversed(entries)] == [
        ("january", "GRANT", "10.00", "2026-01-01"), ("february", "GRANT", "10.00", "2026-02-01"),
        ("manual", "GRANT", "4.00", "2026-02-02"),
        ("january", "APPLICATION", "-10.00", "2026-02-04"), ("manual", "APPLICATION", "-4.00", "2026-02-04")]
    wallet = await call(client, "get_wallet_balance", accountId="acme")
    assert (wallet["balance"], [g["id"] for g in wallet["grants"]]) == ("10.00", [february])


async def test_a_credit_note_during_a_grace_period_keeps_the_held_grant(client, clock) -> None:
    await _plan(client, grace=3)
    clock.set(at(2026, 1, 15))
    await _tokens(client, "e1", iso(2026, 1, 10))
    await _tokens(client, "e2", iso(2026, 2, 10))
    clock.set(at(2026, 2, 4))
    january = (await call(client, "list_invoices", accountId="acme", status="DUE"))["data"][0]
    await call(client, "update_invoice_status", invoiceId=january["id"], status="PAID")  # 25.00 - 10.00 credit
    clock.set(at(2026, 3, 2))  # February in its grace period (DUE 4 March); its grant expired 1 March, held
    note = await call(client, "create_credit_note", invoiceId=january["id"], reason="PRODUCT_UNSATISFACTORY",
                      amount="5.00")
    # A PAID invoice's note goes to the wallet: February's held 10.00 + March's 10.00 + the note's 5.00 = 25.00
    assert (note["creditNote"]["creditedToWallet"], note["walletBalance"]) == ("5.00", "25.00")
    clock.set(at(2026, 3, 4))
    # February 25.00 is paid by its own held grant, 10.00 (priority 1), then the note's 5.00 (priority 100):
    # 15.00 applied, 10.00 due (January is PAID)
    assert await _due(client) == [("2026-02-01", "25.00", "15.00", "10.00")]
    kinds = [(e["kind"], e["amount"]) for e in (await call(client, "list_wallet_entries", accountId="acme",
                                                            pageSize=100))["data"]]
    assert [k for k in kinds if k[0] == "EXPIRY"] == []  # never expired and given back
    wallet = await call(client, "get_wallet_balance", accountId="acme")
    assert wallet["balance"] == "10.00"  # March's 10.00 is all that is left


async def test_a_one_time_grant_comes_with_the_first_period_when_one_run_closes_it(client, clock) -> None:
    # Monthly, no grace, a 25.00 fee and a ONE_TIME 30.00 welcome grant lasting 45 days. Both accounts start
    # on 1 Feb. "stepwise" is read on 1 Feb (its February DRAFT opens then, with the grant); "late" is first
    # read on 1 Mar, when one run closes February (never a DRAFT) and opens March: the grant is still
    # February's, as it would have been had a run seen February start.
    plan = await call(client, "create_price_plan", name="Welcome", pricingCycleConfig={
        "interval": "MONTHLY", "startOffset": {"dayOffset": "1"}, "gracePeriod": 0}, rateCards={
        "fixedFeeRateCards": [{"id": "base", "rateValues": [{"currency": "USD", "rate": "25"}]}],
        "creditGrantRateCards": [{"name": "welcome", "type": "ONE_TIME",
                                  "grantDetails": {"priority": 0, "expiryType": "CUSTOM", "expiryDuration": "P45D"},
                                  "rateDetails": {"currencySlabRateDetails": [
                                      {"currency": "USD", "creditAmount": "30.00"}]}}]})
    for account_id in ("stepwise", "late"):
        await call(client, "create_customer", id=f"c_{account_id}", name="C", account={
            "id": account_id, "name": account_id, "pricePlanId": plan["id"], "effectiveFrom": iso(2026, 2, 1)})
    clock.set(at(2026, 2, 1))
    assert (await call(client, "get_invoice", accountId="stepwise"))["startDate"] == iso(2026, 2, 1)
    clock.set(at(2026, 3, 1))
    for account_id in ("stepwise", "late"):
        due = (await call(client, "list_invoices", accountId=account_id, status="DUE"))["data"]
        # February: the 25.00 fee, paid by the welcome grant (started 1 Feb, before the period ended): 0.00 due
        assert [(i["startDate"], i["totalAmount"], i["creditsApplied"], i["amountDue"]) for i in due] == [
            (iso(2026, 2, 1), "25.00", "25.00", "0.00")], account_id
        wallet = await call(client, "get_wallet_balance", accountId=account_id)
        # 30.00 - 25.00 = 5.00 left, valid from 1 Feb for 45 days: until 18 Mar (February has 28 days)
        assert (wallet["balance"], [(g["effectiveFrom"], g["effectiveUntil"], g["remaining"])
                                    for g in wallet["grants"]]) == (
            "5.00", [(iso(2026, 2, 1), iso(2026, 3, 18), "5.00")]), account_id


async def test_a_manual_grant_given_and_expired_in_the_grace_period_pays_nothing(client, clock) -> None:
    # Rule 2 of "Which grants pay an invoice": valid when the invoice becomes DUE, or valid through the period
    # (still valid at its end). A goodwill grant given on 2 Feb and expiring on 3 Feb is neither for January
    # (period ends 1 Feb, DUE 4 Feb): it expires unused and January is paid by its own grant only.
    await _plan(client, grace=3)
    clock.set(at(2026, 1, 15))
    await _tokens(client, "e1", iso(2026, 1, 10))
    clock.set(at(2026, 2, 2))
    goodwill = (await call(client, "grant_credit", accountId="acme", amount="4.00", purpose="GOODWILL",
                           effectiveUntil=iso(2026, 2, 3)))["grant"]["id"]
    clock.set(at(2026, 2, 3, 12))
    wallet = await call(client, "get_wallet_balance", accountId="acme")
    # the goodwill has expired: January's held 10.00 + February's 10.00 = 20.00; nothing holds the 4.00
    assert wallet["balance"] == "20.00"
    assert goodwill not in [g["id"] for g in wallet["grants"]]
    clock.set(at(2026, 2, 4))
    # January: 25.00 - its own grant's 10.00 = 15.00 due; the goodwill's 4.00 expired on 3 Feb
    assert await _due(client) == [("2026-01-01", "25.00", "10.00", "15.00")]
    entries = (await call(client, "list_wallet_entries", accountId="acme", pageSize=100))["data"]
    assert [(e["kind"], e["amount"], e["at"][:10]) for e in reversed(entries) if e["grantId"] == goodwill] == [
        ("GRANT", "4.00", "2026-02-02"), ("EXPIRY", "-4.00", "2026-02-03")]


def _custom_card(duration: str) -> dict[str, Any]:
    return {"name": "monthly", "grantDetails": {"expiryType": "CUSTOM", "expiryDuration": duration},
            "rateDetails": {"currencySlabRateDetails": [{"currency": "USD", "creditAmount": "10.00"}]}}


async def test_a_custom_expiry_shorter_than_a_cycle_is_refused_naming_expiry_duration(client) -> None:
    """Policy (wallets/README.md, "Which grants pay an invoice"): a card's grant pays its cycle's invoice when that
    becomes DUE, and only if valid then or through the cycle's end; a CUSTOM expiry that ends before the end of some
    cycle of the plan would expire unused there, so it is refused, naming expiryDuration and a length that covers
    every cycle. P10D on a monthly plan: [1 Jan, 11 Jan) never reaches 1 February. P30D: February's grant would
    pay, January's (31 days) not. P1M: the cycle [28 Feb, 31 Mar) of a plan on the last day of the month ends after
    28 Feb + 1 month = 28 Mar."""
    field = "rateCards.creditGrantRateCards[0].grantDetails.expiryDuration"

    def plan(duration: str, cycle: dict[str, Any]) -> dict[str, Any]:
        return {"name": f"Grants {duration} {abs(hash(repr(cycle))) % 10**9}", "pricingCycleConfig": cycle,
                "rateCards": {"creditGrantRateCards": [_custom_card(duration)]}}

    monthly = {"interval": "MONTHLY", "startOffset": {"dayOffset": "1"}}
    last_day = {"interval": "MONTHLY", "startOffset": {"dayOffset": "LAST"}}
    for duration, cycle, example in (("P10D", monthly, "2000-01-01 – 2000-02-01"),
                                     ("P30D", monthly, "2000-01-01 – 2000-02-01"),
                                     ("P1M", last_day, "2000-02-29 – 2000-03-31"),
                                     ("P6D", {"interval": "WEEKLY"}, None),
                                     ("P1M", {"interval": "MONTHLY", "anniversaryCycle": True}, None),
                                     ("P3M", {"interval": "QUARTERLY", "startOffset": {"dayOffset": "LAST",
                                                                                       "monthOffset": "1"}}, None)):
        error = await call_error(client, "create_price_plan", **plan(duration, cycle))
        assert f"{field}: '{duration}' from a cycle's start ends before that cycle does" in error, error
        assert "expire unused" in error and "PRICING_CYCLE" in error, error
        if example is not None:
            assert example in error, error
    # long enough for every cycle: accepted, and the suggested lengths are
    for duration, cycle in (("P1M", monthly), ("P31D", last_day), ("P1M3D", last_day), ("P7D", {"interval": "WEEKLY"}),
                            ("P31D", {"interval": "MONTHLY", "anniversaryCycle": True}), ("P45D", monthly),
                            ("P92D", {"interval": "QUARTERLY", "startOffset": {"dayOffset": "LAST",
                                                                              "monthOffset": "1"}}),
                            ("P366D", {"interval": "ANNUALLY", "anniversaryCycle": True})):
        await call(client, "create_price_plan", **plan(duration, cycle))


async def test_a_plan_stored_with_a_short_custom_expiry_is_refused_when_attached(client, db, monkeypatch) -> None:
    """A plan stored before the rule (here: edited in place to P10D) cannot be attached: the account's credits would
    expire unused every cycle; the refusal names pricePlanId, the card's field and the fix; nothing is written."""
    plan = await call(client, "create_price_plan", name="Grants", pricingCycleConfig={"interval": "MONTHLY"},
                      rateCards={"creditGrantRateCards": [_custom_card("P31D")]})
    await break_stored_version(db, monkeypatch, plan["id"], 1,
                               "{rateCards,creditGrantRateCards,0,grantDetails,expiryDuration}", '"P10D"')
    await call(client, "create_customer", id="cust_acme", name="Acme")
    before = await row_counts(db)
    error = await call_error(client, "create_account", id="acme", customerId="cust_acme", name="Acme",
                             pricePlanId=plan["id"], effectiveFrom=iso(2026, 1, 1))
    assert (f"pricePlanId: version 1 of price plan '{plan['id']}' has rateCards.creditGrantRateCards[0].grantDetails"
            f".expiryDuration 'P10D' from a cycle's start ends before that cycle does") in error, error
    assert "update_price_plan, then finalize_price_plan" in error
    assert await row_counts(db) == before


async def test_a_retried_attach_of_a_plan_stored_with_a_short_custom_expiry_changes_nothing(client, db,
                                                                                             monkeypatch) -> None:
    """An account attached to a plan before the rule (its stored version now P10D) retries the update_account that
    attached it: what is in effect is what it asks for, so it changes nothing and succeeds, as any retried attach
    (plan_changes.attach_plan) — not refused "before attaching the plan" it is already on. Attaching it anew (another
    account) is still refused."""
    plan = await call(client, "create_price_plan", name="Grants", pricingCycleConfig={"interval": "MONTHLY"},
                      rateCards={"creditGrantRateCards": [_custom_card("P31D")]})
    await call(client, "create_customer", id="cust_acme", name="Acme")
    await call(client, "create_account", id="acme", customerId="cust_acme", name="Acme")
    await call(client, "update_account", accountId="acme", pricePlanId=plan["id"], effectiveFrom=iso(2026, 1, 1))
    await break_stored_version(db, monkeypatch, plan["id"], 1,
                               "{rateCards,creditGrantRateCards,0,grantDetails,expiryDuration}", '"P10D"')
    before = await row_counts(db)
    again = await call(client, "update_account", accountId="acme", pricePlanId=plan["id"],
                       effectiveFrom=iso(2026, 1, 1))
    assert again["id"] == "acme"
    # nothing written but the call's audit record
    assert await row_counts(db) == before | {"audit_log": before["audit_log"] + 1}
    await call(client, "create_account", id="globex", customerId="cust_acme", name="Globex")
    error = await call_error(client, "update_account", accountId="globex", pricePlanId=plan["id"],
                             effectiveFrom=iso(2026, 1, 1))
    assert f"pricePlanId: version 1 of price plan '{plan['id']}' has " in error, error
