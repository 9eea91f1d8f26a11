"""Property tests of the wallet ledger on real PostgreSQL (and of the pure burn order).

Invariants: the balance is the ledger sum; every grant keeps 0 <= remaining <= amount; an invoice
never gets more credit than its amount (amount due never below zero) and a voided one keeps none;
credit is never left unused while an invoice is unpaid; the outcome does not depend on the order
grants were inserted in.
"""

from __future__ import annotations

import secrets
from datetime import timedelta
from decimal import Decimal

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from togai_engine.billing.current import unclosed_periods
from togai_engine.store.database import raw_connection
from togai_engine.wallets import ledger
from togai_engine.wallets import service as wallets
from togai_engine.wallets.burn import Spendable, plan_burn
from wallet_helpers import T0, apply, balance, entries, grant, ledger_sum, make_account, reverse

D = Decimal
DB_SETTINGS = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])

cents = st.integers(1, 5000).map(lambda c: D(c).scaleb(-2))
grant_specs = st.fixed_dictionaries({
    "amount": cents,
    "priority": st.integers(0, 2),
    "starts_in": st.sampled_from([0, 0, 0, 2]),  # days from now; some grants are scheduled
    "lasts": st.none() | st.integers(1, 20),  # days; None = never expires
})
operations = st.lists(
    st.one_of(
        st.tuples(st.just("grant"), grant_specs),
        st.tuples(st.just("close"), st.fixed_dictionaries({
            "amount": st.integers(0, 8000).map(lambda c: D(c).scaleb(-2)),
            "period_lag": st.none() | st.integers(0, 3),  # period ended this many days ago
        })),
        st.tuples(st.just("void"), st.integers(0, 50)),
        st.tuples(st.just("wait"), st.integers(1, 9)),
    ),
    min_size=1, max_size=14,
)


async def _grant_spec(db, acc, spec, now, key):
    start = now + timedelta(days=spec["starts_in"])
    until = None if spec["lasts"] is None else start + timedelta(days=spec["lasts"])
    return await grant(db, acc, str(spec["amount"]), now=now, purpose=key, priority=spec["priority"],
                       effectiveFrom=start, effectiveUntil=until, idempotencyKey=key)


async def _grant_table(db, acc):
    async with db.unit_of_work() as s:
        conn = await raw_connection(s)
        return await conn.fetch(
            "SELECT g.priority, g.effective_from, g.effective_until, g.amount, coalesce(sum(e.amount), 0) AS remaining"
            " FROM credit_grants g LEFT JOIN wallet_entries e ON e.account_id = g.account_id AND e.grant_id = g.id"
            " WHERE g.account_id = $1"
            " GROUP BY g.account_id, g.id", acc)


async def _net_applied(db, invoice_id):
    async with db.unit_of_work() as s:
        conn = await raw_connection(s)
        total = await conn.fetchval(
            "SELECT coalesce(sum(amount), 0) FROM wallet_entries WHERE invoice_id = $1 AND kind IN "
            "('APPLICATION', 'REVERSAL')", invoice_id)
    return -D(total)


@DB_SETTINGS
@given(ops=operations)
async def test_ledger_invariants_hold_after_any_sequence(db, ops):
    acc = await make_account(db, f"acc_{secrets.token_hex(6)}")
    now = T0
    invoices: list[tuple[str, Decimal, bool]] = []  # (id, amount, voided)
    for i, (kind, arg) in enumerate(ops):
        if kind == "grant":
            await _grant_spec(db, acc, arg, now, f"g{i}")
        elif kind == "close":
            invoice_id = f"{acc}_inv{i}"
            period_end = None if arg["period_lag"] is None else now - timedelta(days=arg["period_lag"])
            applied = await apply(db, acc, invoice_id, str(arg["amount"]), now, period_end=period_end)
            assert D(0) <= applied <= arg["amount"]
            if applied < arg["amount"]:  # unpaid remainder: no eligible credit may be left
                async with db.unit_of_work() as s:
                    left = await ledger.spendable_grants(s, acc, "USD", now, period_end)
                assert all(g.spendable == 0 for g in left)
            invoices.append((invoice_id, arg["amount"], False))
        elif kind == "void" and invoices:
            index = arg % len(invoices)
            invoice_id, amount, _ = invoices[index]
            await reverse(db, invoice_id, now)
            invoices[index] = (invoice_id, amount, True)
        elif kind == "wait":
            now += timedelta(days=arg)

        wallet = await balance(db, acc, now)
        assert wallet.balance == await ledger_sum(db, acc, now)
        listed = await _listed_ledger(db, acc, now)  # list_wallet_entries, every page: the same ledger
        assert listed.balance == wallet.balance == sum((e.amount for e in listed.data if e.at <= now), D(0))
        everything = await ledger_sum(db, acc, now + timedelta(days=10_000))
        assert everything == wallet.balance + wallet.scheduledCredits  # only scheduled grants lie ahead
        assert sum((e.amount for e in listed.data), D(0)) == everything  # every entry listed
        for row in await _grant_table(db, acc):
            assert D(0) <= row["remaining"] <= row["amount"]
            if row["effective_until"] is not None and row["effective_until"] <= now:
                assert row["remaining"] == 0  # expired grants are settled on read
        for invoice_id, amount, voided in invoices:
            net = await _net_applied(db, invoice_id)
            assert D(0) <= net <= amount
            if voided:
                assert net == 0


@DB_SETTINGS
@given(
    specs=st.lists(grant_specs, min_size=1, max_size=6),
    closes=st.lists(st.tuples(st.integers(0, 6000).map(lambda c: D(c).scaleb(-2)), st.integers(0, 12),
                              st.booleans()), min_size=1, max_size=5),
    data=st.data(),
)
async def test_outcome_does_not_depend_on_insertion_order(db, specs, closes, data):
    order = data.draw(st.permutations(range(len(specs))))
    outcomes = []
    for permutation in (range(len(specs)), order):
        acc = await make_account(db, f"acc_{secrets.token_hex(6)}")
        for index in permutation:
            await _grant_spec(db, acc, specs[index], T0, f"g{index}")
        applied = []
        now = T0
        for n, (amount, wait, void) in enumerate(closes):
            now += timedelta(days=wait)
            applied.append(await apply(db, acc, f"{acc}_inv{n}", str(amount), now))
            if void:
                await reverse(db, f"{acc}_inv{n}", now)
        wallet = await balance(db, acc, now)
        grants = sorted(tuple(str(v) for v in row.values()) for row in await _grant_table(db, acc))
        outcomes.append((applied, wallet.balance, grants))
    assert outcomes[0] == outcomes[1]


# --- the pure burn order -------------------------------------------------------------------------

spendables = st.lists(
    st.builds(
        lambda i, p, until, amount, used: Spendable(
            grant_id=f"g{i}", priority=p, effective_from=T0,
            effective_until=None if until is None else T0 + timedelta(days=until),
            amount=amount, spendable=max(amount - used, D(0))),
        st.integers(0, 10_000), st.integers(0, 3), st.none() | st.integers(1, 5), cents, cents,
    ),
    max_size=8, unique_by=lambda s: s.grant_id,
)


@given(grants=spendables, amount=cents, data=st.data())
def test_burn_takes_exactly_what_it_can_in_a_fixed_order(grants, amount, data):
    parts = plan_burn(grants, amount)
    total = sum((g.spendable for g in grants), D(0))
    assert sum((p for _, p in parts), D(0)) == min(amount, total)
    by_id = {g.grant_id: g for g in grants}
    assert all(D(0) < part <= by_id[grant_id].spendable for grant_id, part in parts)
    # Greedy: every grant before the last one used is used up.
    assert all(part == by_id[grant_id].spendable for grant_id, part in parts[:-1])
    shuffled = data.draw(st.permutations(grants))
    assert plan_burn(shuffled, amount) == parts


async def _listed_ledger(db, account_id: str, now):
    """list_wallet_entries' pages of 3 joined (their balance: the first page's)."""
    pages, token = [], None
    while True:
        async with db.unit_of_work() as s:
            page = await wallets.list_wallet_entries(s, account_id, now, unclosed=unclosed_periods, page_size=3,
                                                     next_token=token)
        pages.append(page)
        token = page.nextToken
        if token is None:
            break
    ids = [e.id for p in pages for e in p.data]
    assert ids == sorted(set(ids), reverse=True)  # newest first, no repeat
    return pages[0].model_copy(update={"data": [e for p in pages for e in p.data]})


# --- the ledger sum in any currency, with credit notes -------------------------------------------

MINOR_UNITS = {"USD": 2, "JPY": 0, "BHD": 3}  # ISO 4217 decimals


def _in(currency: str, minor: int) -> Decimal:
    """`minor` units of the currency's smallest unit: 1234 -> 12.34 USD, 1234 JPY, 1.234 BHD."""
    return D(minor).scaleb(-MINOR_UNITS[currency])


def _exact_in(currency: str, amount: Decimal) -> bool:
    return amount == amount.quantize(D(1).scaleb(-MINOR_UNITS[currency]))


async def _refund(db, acc: str, currency: str, amount: Decimal, now, note_id: str) -> str:
    """What a credit note does with the part its invoice no longer owed: the wallet's expiries first, then the grant."""
    async with db.unit_of_work() as s:
        await wallets.settle_wallet(s, acc, now, unclosed_periods)
        return await wallets.grant_from_credit_note(s, account_id=acc, currency=currency, amount=amount,
                                                    credit_note_id=note_id, purpose="credit note", at=now)


wallet_operations = st.lists(
    st.one_of(
        st.tuples(st.just("grant"), st.tuples(st.integers(1, 50_000), st.none() | st.integers(1, 12))),
        st.tuples(st.just("close"), st.tuples(st.integers(0, 80_000), st.none() | st.integers(0, 3))),
        st.tuples(st.just("refund"), st.integers(1, 20_000)),
        st.tuples(st.just("void"), st.integers(0, 50)),
        st.tuples(st.just("wait"), st.integers(1, 9)),
    ),
    min_size=1, max_size=10,
)


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(currency=st.sampled_from(sorted(MINOR_UNITS)), ops=wallet_operations)
async def test_the_balance_is_the_ledger_sum_through_grants_closes_expiries_notes_and_voids(db, currency, ops):
    """After any sequence of grants (some expiring), invoices closed with credit, credit notes crediting the wallet and
    voided invoices giving their credit back, in a currency of 0, 2 or 3 decimals: the balance is the sum of the
    ledger, every amount is exact in the currency's minor unit, and the credit applied to an invoice never exceeds it
    (none once it is voided)."""
    acc = await make_account(db, f"acc_{secrets.token_hex(6)}", currency=currency)
    now = T0
    invoices: list[tuple[str, Decimal]] = []
    voided: set[str] = set()
    for i, (kind, arg) in enumerate(ops):
        if kind == "grant":
            minor, lasts = arg
            result = await grant(db, acc, str(_in(currency, minor)), now=now, idempotencyKey=f"g{i}",
                                 effectiveUntil=None if lasts is None else now + timedelta(days=lasts))
            assert result.grant.amount == _in(currency, minor)
        elif kind == "close":
            minor, lag = arg
            amount = _in(currency, minor)
            invoice_id = f"{acc}_inv{i}"
            applied = await apply(db, acc, invoice_id, str(amount), now, currency=currency,
                                  period_end=None if lag is None else now - timedelta(days=lag))
            assert D(0) <= applied <= amount and _exact_in(currency, applied)
            invoices.append((invoice_id, amount))
        elif kind == "refund":
            await _refund(db, acc, currency, _in(currency, arg), now, f"note_{acc}_{i}")
        elif kind == "void" and invoices:
            invoice_id, _ = invoices[arg % len(invoices)]
            given_back = await reverse(db, invoice_id, now)
            assert _exact_in(currency, given_back)
            voided.add(invoice_id)
        elif kind == "wait":
            now += timedelta(days=arg)

        wallet = await balance(db, acc, now)
        assert wallet.balance == await ledger_sum(db, acc, now)
        assert wallet.currency == currency and wallet.balance.as_tuple().exponent == -MINOR_UNITS[currency]
        assert all(_exact_in(currency, e["amount"]) for e in await entries(db, acc))
        for invoice_id, amount in invoices:
            net = await _net_applied(db, invoice_id)
            assert D(0) <= net <= amount
            if invoice_id in voided:
                assert net == 0
