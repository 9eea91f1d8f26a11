"""The wallet ledger at the service level, on real PostgreSQL, with amounts worked by hand.

Billing calls apply_credits_to_invoice / reverse_invoice_credits; here the tests call them directly
with invoice ids they make up (the ledger links invoices by id).
"""

from __future__ import annotations

from decimal import Decimal

import pytest

from togai_engine.errors import InvalidInput
from togai_engine.store.database import raw_connection
from togai_engine.wallets import service as wallets
from togai_engine.wallets.rate_cards import grants_for_cycle
from wallet_helpers import (
    applied_by_purpose,
    apply,
    balance,
    day,
    entries,
    grant,
    ledger_sum,
    make_account,
    reverse,
)

D = Decimal


async def test_burn_order_priority_then_expiry_then_no_expiry_last(db):
    acc = await make_account(db)
    await grant(db, acc, "40.00", purpose="promo-late", priority=0, effectiveUntil=day(60))
    await grant(db, acc, "25.00", purpose="promo-soon", priority=0, effectiveUntil=day(30))
    await grant(db, acc, "100.00", purpose="prepaid", priority=5)
    await grant(db, acc, "10.00", purpose="prepaid-expiring", priority=5, effectiveUntil=day(40))
    # Invoice of 80.00: priority 0 first, earliest expiry first within it:
    #   promo-soon 25.00 (left 55.00), promo-late 40.00 (left 15.00),
    # then priority 5: prepaid-expiring 10.00 (left 5.00), prepaid (never expires, last) 5.00.
    assert await apply(db, acc, "inv_1", "80.00", day(10)) == D("80.00")
    assert await applied_by_purpose(db, acc, "inv_1") == {
        "promo-soon": D("25.00"), "promo-late": D("40.00"), "prepaid-expiring": D("10.00"), "prepaid": D("5.00"),
    }
    # 175.00 granted - 80.00 applied = 95.00, all of it left on "prepaid".
    wallet = await balance(db, acc, day(10))
    assert wallet.balance == D("95.00")
    assert [(g.purpose, g.remaining) for g in wallet.grants] == [("prepaid", D("95.00"))]


async def test_same_priority_and_expiry_burns_the_earliest_effective_grant_first(db):
    acc = await make_account(db)
    await grant(db, acc, "10.00", purpose="newer", priority=1, now=day(5))
    await grant(db, acc, "10.00", purpose="older", priority=1, effectiveFrom=day(1), now=day(5))
    # 12.00: "older" (effective day 1) gives 10.00, then "newer" (day 5) 2.00.
    assert await apply(db, acc, "inv_1", "12.00", day(6)) == D("12.00")
    assert await applied_by_purpose(db, acc, "inv_1") == {"older": D("10.00"), "newer": D("2.00")}


async def test_partial_application_leaves_an_amount_due_and_nothing_for_the_next_invoice(db):
    acc = await make_account(db)
    await grant(db, acc, "30.00", purpose="prepaid")
    applied = await apply(db, acc, "inv_1", "45.50", day(3))
    assert applied == D("30.00")
    assert D("45.50") - applied == D("15.50")  # amount due stays positive
    assert await apply(db, acc, "inv_2", "12.00", day(4)) == D("0.00")
    assert (await balance(db, acc, day(4))).balance == D("0.00")


async def test_applying_to_the_same_invoice_again_applies_nothing_more(db):
    acc = await make_account(db)
    await grant(db, acc, "100.00", purpose="prepaid")
    assert await apply(db, acc, "inv_1", "40.00", day(1)) == D("40.00")
    before = await entries(db, acc)
    assert await apply(db, acc, "inv_1", "40.00", day(2)) == D("40.00")
    assert await entries(db, acc) == before
    assert (await balance(db, acc, day(2))).balance == D("60.00")


async def test_expiry_mid_cycle_takes_the_remainder_at_the_expiry_instant(db):
    acc = await make_account(db)
    await grant(db, acc, "50.00", purpose="promo", effectiveUntil=day(15))
    assert await apply(db, acc, "inv_1", "20.00", day(10)) == D("20.00")
    # An invoice after the expiry gets nothing from it.
    assert await apply(db, acc, "inv_2", "5.00", day(16)) == D("0.00")
    wallet = await balance(db, acc, day(20))
    assert wallet.balance == D("0.00") and wallet.grants == []
    ledger = await entries(db, acc)
    # 50.00 granted - 20.00 applied = 30.00 left, which expires on day 15 exactly.
    assert [(e["kind"], e["amount"], e["at"]) for e in ledger] == [
        ("GRANT", D("50.00"), day(0)), ("APPLICATION", D("-20.00"), day(10)), ("EXPIRY", D("-30.00"), day(15)),
    ]
    # Reads do not add a second expiry, and the balance as of day 14 still sees the 30.00.
    await balance(db, acc, day(30))
    assert len(await entries(db, acc)) == 3
    assert await ledger_sum(db, acc, day(14)) == D("30.00")
    assert (await balance(db, acc, day(14))).balance == D("30.00")


async def test_void_reverses_exactly_once_and_the_credit_pays_the_reissued_invoice(db):
    acc = await make_account(db)
    await grant(db, acc, "30.00", purpose="first", priority=0)
    await grant(db, acc, "50.00", purpose="second", priority=1)
    # 60.00: first 30.00, second 30.00; balance 80.00 - 60.00 = 20.00.
    assert await apply(db, acc, "inv_a", "60.00", day(5)) == D("60.00")
    assert (await balance(db, acc, day(5))).balance == D("20.00")
    assert await reverse(db, "inv_a", day(6)) == D("60.00")
    assert await reverse(db, "inv_a", day(6)) == D("0")  # the second void gives nothing back
    assert (await balance(db, acc, day(6))).balance == D("80.00")
    # Re-issued invoice of 70.00: first 30.00, second 40.00; balance 80.00 - 70.00 = 10.00.
    assert await apply(db, acc, "inv_b", "70.00", day(7)) == D("70.00")
    assert await applied_by_purpose(db, acc, "inv_b") == {"first": D("30.00"), "second": D("40.00")}
    assert (await balance(db, acc, day(7))).balance == D("10.00")
    kinds = [e["kind"] for e in await entries(db, acc)]
    assert kinds.count("REVERSAL") == 2 and kinds.count("APPLICATION") == 4


async def test_a_voided_invoice_can_be_paid_again_and_voided_again(db):
    acc = await make_account(db)
    await grant(db, acc, "10.00", purpose="p")
    assert await apply(db, acc, "inv_a", "4.00", day(1)) == D("4.00")
    assert await reverse(db, "inv_a", day(2)) == D("4.00")
    assert await apply(db, acc, "inv_a", "4.00", day(3)) == D("4.00")
    assert await reverse(db, "inv_a", day(4)) == D("4.00")
    assert (await balance(db, acc, day(5))).balance == D("10.00")


async def test_credit_given_back_after_its_grant_expired_expires_again_at_once(db):
    acc = await make_account(db)
    await grant(db, acc, "40.00", purpose="promo", effectiveUntil=day(10))
    assert await apply(db, acc, "inv_1", "25.00", day(5)) == D("25.00")
    assert await reverse(db, "inv_1", day(12)) == D("25.00")
    # 40 - 25 (applied) - 15 (expired day 10) + 25 (given back day 12) - 25 (expires again day 12) = 0.
    ledger = [(e["kind"], e["amount"], e["at"]) for e in await entries(db, acc)]
    assert ("EXPIRY", D("-15.00"), day(10)) in ledger and ("EXPIRY", D("-25.00"), day(12)) in ledger
    assert (await balance(db, acc, day(12))).balance == D("0.00")
    assert await ledger_sum(db, acc, day(11)) == D("0.00")  # between the expiry and the reversal


async def test_a_credit_valid_through_the_period_pays_its_invoice_after_the_grace_period(db):
    acc = await make_account(db)
    # A cycle credit for January, expiring at the cycle end (day 31); the invoice is DUE on day 34.
    await grant(db, acc, "100.00", purpose="january", effectiveUntil=day(31))
    await grant(db, acc, "100.00", purpose="january-again", effectiveUntil=day(31), now=day(0))
    assert (await balance(db, acc, day(32))).balance == D("0.00")  # both expired, recorded on read
    # Without the period it would pay nothing at day 34 (not valid then):
    assert await apply(db, acc, "inv_probe", "60.00", day(34)) == D("0.00")
    # With period_end = day 31 both are eligible; 60.00 comes from the first in burn order.
    assert await apply(db, acc, "inv_jan", "60.00", day(34), period_end=day(31)) == D("60.00")
    assert sum((await applied_by_purpose(db, acc, "inv_jan")).values()) == D("60.00")
    # The balance does not move: the credit had already left it; the ledger still sums to 0.
    assert (await balance(db, acc, day(34))).balance == D("0.00")
    assert await ledger_sum(db, acc, day(40)) == D("0.00")


async def test_scheduled_grant_joins_the_balance_when_it_starts(db):
    acc = await make_account(db)
    result = await grant(db, acc, "20.00", purpose="next-month", effectiveFrom=day(10))
    assert result.grant.status == "SCHEDULED" and result.balance == D("0.00")
    wallet = await balance(db, acc, day(1))
    assert wallet.balance == D("0.00") and wallet.scheduledCredits == D("20.00")
    assert await apply(db, acc, "inv_1", "5.00", day(5)) == D("0.00")
    assert await apply(db, acc, "inv_2", "5.00", day(10)) == D("5.00")
    assert (await balance(db, acc, day(10))).balance == D("15.00")


async def test_other_currency_or_no_wallet_applies_nothing(db):
    acc = await make_account(db)
    empty = await make_account(db, "acc_empty")
    assert await apply(db, empty, "inv_0", "10.00", day(1)) == D("0.00")
    assert await entries(db, empty) == []
    await grant(db, acc, "10.00", purpose="usd")
    assert await apply(db, acc, "inv_eur", "10.00", day(1), currency="EUR") == D("0.00")


async def test_invoice_amounts_must_be_whole_minor_units(db):
    acc = await make_account(db)
    await grant(db, acc, "10.00", purpose="usd")
    with pytest.raises(InvalidInput, match="more decimals than USD allows"):
        await apply(db, acc, "inv_1", "1.005", day(1))
    with pytest.raises(InvalidInput, match="cannot be negative"):
        await apply(db, acc, "inv_1", "-1.00", day(1))


async def test_yen_wallet_keeps_whole_yen(db):
    acc = await make_account(db, "acc_jpy", currency="JPY")
    await grant(db, acc, "1000", purpose="yen")
    assert await apply(db, acc, "inv_1", "333", day(1), currency="JPY") == D("333")
    assert (await balance(db, acc, day(1))).balance == D("667")
    with pytest.raises(InvalidInput, match="JPY allows"):
        await grant(db, acc, "10.5", purpose="half-yen")


@pytest.mark.parametrize(("currency", "amounts", "finer"), [
    # JPY, 0 decimals: 1000 granted; an invoice of 333 takes 333, 1000 - 333 = 667; a note credits 7: 674; the invoice
    # voided gives its 333 back: 674 + 333 = 1007; a second invoice of 1200 takes all 1007, 0 left
    ("JPY", ("1000", "333", "667", "7", "674", "1007", "1200", "0"), "0.5"),
    # BHD, 3 decimals: 10.125 granted; 3.333 taken, 10.125 - 3.333 = 6.792; a note credits 0.001: 6.793; the void gives
    # 3.333 back: 6.793 + 3.333 = 10.126; an invoice of 12.000 takes all 10.126, 0.000 left
    ("BHD", ("10.125", "3.333", "6.792", "0.001", "6.793", "10.126", "12.000", "0.000"), "0.0005"),
])
async def test_a_wallet_in_a_currency_of_0_or_3_decimals_keeps_exact_amounts(db, currency, amounts, finer):
    granted, invoiced, after_close, noted, after_note, after_void, second, last = (D(a) for a in amounts)
    acc = await make_account(db, f"acc_{currency.lower()}", currency=currency)
    assert (await grant(db, acc, str(granted), purpose="prepaid")).grant.amount == granted
    assert await apply(db, acc, "inv_1", str(invoiced), day(1), currency=currency) == invoiced
    assert (await balance(db, acc, day(1))).balance == after_close
    async with db.unit_of_work() as s:
        await wallets.grant_from_credit_note(s, account_id=acc, currency=currency, amount=noted,
                                             credit_note_id="note_1", purpose="credit note", at=day(2))
    assert (await balance(db, acc, day(2))).balance == after_note
    assert await reverse(db, "inv_1", day(3)) == invoiced
    assert (await balance(db, acc, day(3))).balance == after_void
    assert await apply(db, acc, "inv_2", str(second), day(4), currency=currency) == after_void
    wallet = await balance(db, acc, day(4))
    assert wallet.balance == last and str(wallet.balance) == amounts[-1]  # shown with the currency's decimals
    assert wallet.balance == await ledger_sum(db, acc, day(4))
    for refused in (lambda: grant(db, acc, finer, purpose="finer"),
                    lambda: apply(db, acc, "inv_3", finer, day(5), currency=currency)):
        with pytest.raises(InvalidInput, match=f"more decimals than {currency} allows"):
            await refused()


async def test_currency_change_guard(db):
    acc = await make_account(db)
    async with db.unit_of_work() as s:
        assert not await wallets.has_wallet_entries(s, acc)
    await grant(db, acc, "1.00", purpose="p")
    async with db.unit_of_work() as s:
        assert await wallets.has_wallet_entries(s, acc)


PLAN = {
    "id": "plan_credits",
    "creditGrantRateCards": [
        {"name": "monthly", "grantDetails": {"priority": 1, "expiryType": "PRICING_CYCLE"},
         "rateDetails": {"currencySlabRateDetails": [{"currency": "USD", "creditAmount": "15"}]}},
        {"name": "welcome", "type": "ONE_TIME", "grantDetails": {"priority": 0, "expiryType": "NO_EXPIRY"},
         "rateDetails": {"currencySlabRateDetails": [{"currency": "USD", "creditAmount": "10"}]}},
    ],
}


async def test_rate_card_grants_are_issued_once_per_cycle(db):
    from togai_engine.cycles.cycles import Cycle

    acc = await make_account(db)
    january, february = Cycle(day(0), day(31)), Cycle(day(31), day(59))

    async def issue(cycle, at):
        async with db.unit_of_work() as s:
            specs = grants_for_cycle(PLAN["creditGrantRateCards"], PLAN["id"], "USD", cycle)
            await wallets.issue_rate_card_grants(s, account_id=acc, currency="USD", specs=specs, at=at)

    await issue(january, day(0))
    await issue(january, day(3))  # a retry issues nothing new
    # January: welcome 10.00 (never expires) + monthly 15.00 (until 1 Feb) = 25.00
    wallet = await balance(db, acc, day(3))
    assert wallet.balance == D("25.00")
    assert [(g.grantorId, g.amount, g.effectiveUntil) for g in wallet.grants] == [
        ("plan_credits:welcome", D("10.00"), None), ("plan_credits:monthly", D("15.00"), day(31)),
    ]
    # January's invoice (12.00) is DUE on day 34 (3-day grace), after the monthly credit expired:
    # priority 0 first: welcome pays 10.00, then January's monthly credit (valid through the period) 2.00.
    await issue(february, day(31))
    assert await apply(db, acc, "inv_jan", "12.00", day(34), period_end=day(31)) == D("12.00")
    assert await applied_by_purpose(db, acc, "inv_jan") == {"welcome": D("10.00"), "monthly": D("2.00")}
    # February: only the new monthly 15.00 is left (January's remainder 13.00 expired on 1 Feb).
    wallet = await balance(db, acc, day(34))
    assert wallet.balance == D("15.00")
    assert [(g.grantorId, g.effectiveFrom, g.remaining) for g in wallet.grants] == [
        ("plan_credits:monthly", day(31), D("15.00")),
    ]
    async with db.unit_of_work() as s:
        conn = await raw_connection(s)
        assert await conn.fetchval("SELECT count(*) FROM credit_grants WHERE account_id = $1", acc) == 3
