"""Concurrent wallet writers on one account, each in its own session and transaction.

The wallet row lock serialises them: nothing is lost, nothing is applied twice, and a key replayed
concurrently still yields one grant.
"""

from __future__ import annotations

import asyncio
from decimal import Decimal

from sqlalchemy.exc import DBAPIError

from helpers import backend_pid, wait_until_blocked_by, wait_until_lock_waiting
from togai_engine.accounts.schemas import AccountUpdate
from togai_engine.app import accounts
from togai_engine.billing.current import unclosed_periods
from togai_engine.errors import Conflict
from togai_engine.store.database import raw_connection
from togai_engine.wallets import ledger
from togai_engine.wallets import service as wallets
from togai_engine.wallets.schemas import GrantCreditInput
from wallet_helpers import T0, apply, balance, day, entries, grant, ledger_sum, make_account

D = Decimal


async def test_many_grants_and_closes_at_once_lose_nothing_and_apply_nothing_twice(db):
    acc = await make_account(db)
    await grant(db, acc, "50.00", purpose="seed")
    # 12 grants of 1.00..12.00 (sum 78.00), 4 retries of one key (10.00, granted once),
    # 2 concurrent closes of the same invoice (100.00) and one of another (30.00).
    calls = [grant(db, acc, f"{n}.00", purpose=f"g{n}", now=day(1)) for n in range(1, 13)]
    calls += [grant(db, acc, "10.00", purpose="retry", idempotencyKey="same", now=day(1)) for _ in range(4)]
    calls += [apply(db, acc, "inv_a", "100.00", day(1)), apply(db, acc, "inv_a", "100.00", day(1)),
              apply(db, acc, "inv_b", "30.00", day(1))]
    results = await asyncio.gather(*calls)
    retries = results[12:16]
    assert len({r.grant.id for r in retries}) == 1 and sum(not r.replayed for r in retries) == 1
    applied_a1, applied_a2, applied_b = results[16:]
    assert applied_a1 == applied_a2  # the second close of inv_a returned the first one's application
    ledger = await entries(db, acc)
    applied = {inv: -sum(e["amount"] for e in ledger if e["invoice_id"] == inv) for inv in ("inv_a", "inv_b")}
    assert applied == {"inv_a": applied_a1, "inv_b": applied_b}
    assert applied_a1 <= D("100.00") and applied_b <= D("30.00")
    # Granted: 50.00 + 78.00 + 10.00 = 138.00; whatever the interleaving, balance = 138.00 - applied.
    assert sum(e["amount"] for e in ledger if e["kind"] == "GRANT") == D("138.00")
    wallet = await balance(db, acc, day(1))
    assert wallet.balance == D("138.00") - applied_a1 - applied_b == await ledger_sum(db, acc, day(1))
    # The seed (50.00) was there before all of them, so the closes got at least that much together.
    assert applied_a1 + applied_b >= D("50.00")


async def test_first_grants_racing_to_create_the_wallet(db):
    acc = await make_account(db)
    results = await asyncio.gather(*[grant(db, acc, "1.00", purpose=f"p{n}") for n in range(15)])
    assert len({r.grant.id for r in results}) == 15
    assert (await balance(db, acc, T0)).balance == D("15.00")


async def test_currency_change_racing_a_grant_never_leaves_credit_in_the_old_currency(db):
    acc = await make_account(db)

    async def change_currency():
        try:
            async with db.unit_of_work() as s:
                await accounts.update_account(s, acc, AccountUpdate(invoiceCurrency="EUR"), T0)
        except Conflict:
            return "refused"
        return "changed"

    async def add_credit():
        try:
            await grant(db, acc, "5.00", purpose="racer", currency="USD")
        except Exception as exc:  # the currency changed first: the grant is refused
            assert not isinstance(exc, DBAPIError), exc
            return "refused"
        return "granted"

    outcome = await asyncio.gather(change_currency(), add_credit())
    async with db.unit_of_work() as s:
        conn = await raw_connection(s)
        currency = await conn.fetchval("SELECT invoice_currency FROM accounts WHERE id = $1", acc)
        granted_in = await conn.fetch("SELECT DISTINCT currency FROM credit_grants WHERE account_id = $1", acc)
    assert outcome in (["changed", "refused"], ["refused", "granted"])
    assert all(row["currency"] == currency for row in granted_in)


async def test_currency_change_waits_for_an_open_grant_then_is_refused(db, database_url):
    acc = await make_account(db)
    change_pid: asyncio.Future[int] = asyncio.get_running_loop().create_future()

    async def change_currency():
        async with db.unit_of_work() as s:
            change_pid.set_result(await backend_pid(s))
            await accounts.update_account(s, acc, AccountUpdate(invoiceCurrency="EUR"), T0)

    async with db.unit_of_work() as s:
        await wallets.grant_credit(s, GrantCreditInput(accountId=acc, amount=D("5.00")), T0, unclosed=unclosed_periods)
        change = asyncio.create_task(change_currency())
        # blocked by the grant's share lock on the account
        await wait_until_lock_waiting(database_url, await change_pid)
        assert not change.done()
    error = None
    try:
        await change
    except Conflict as exc:
        error = exc
    assert error is not None and "has credit entries in its wallet" in str(error)


async def test_a_grant_waits_for_a_ledger_listing_so_page_and_balance_agree(db, database_url):
    acc = await make_account(db)
    await grant(db, acc, "10.00")
    async with db.unit_of_work() as session:
        listed = await wallets.list_wallet_entries(session, acc, day(1), unclosed=unclosed_periods)
        writer = asyncio.create_task(grant(db, acc, "5.00", now=day(1)))
        # held by the listing's share lock on the wallet row
        await wait_until_blocked_by(database_url, await backend_pid(session))
        assert not writer.done()
        # so a second read in the same transaction still sees the listed ledger: 10.00, one entry
        assert await ledger.balance(session, acc, day(1)) == listed.balance == D("10.00")
        assert [(e.kind, e.amount) for e in listed.data] == [("GRANT", D("10.00"))]
    await asyncio.wait_for(writer, timeout=10)  # and goes through once the listing has ended
    assert (await balance(db, acc, day(1))).balance == D("15.00")
