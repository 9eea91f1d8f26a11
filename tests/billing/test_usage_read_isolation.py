"""One account's stored events that the database cannot meter never stop another's bill run (billing README).

A bill run reads the usage of all the accounts it closes in one statement per window; the story (unreadable_usage.py)
makes acc_bad's read fail with "value overflows numeric format", an error of the whole statement, and leaves acc_good's
readable.
"""

from __future__ import annotations

from sqlalchemy import text

from helpers import at, call
from togai_engine.billing.runs import run_bill
from unreadable_usage import edit_factor, late_story, story


async def test_an_account_whose_usage_the_database_cannot_read_fails_alone(client, db, clock):
    await story(client, db, clock)
    summary = await run_bill(db, at(2026, 2, 5))  # January [00:30 1 Jan, 1 Feb) is due for both
    assert [f.accountId for f in summary.failed] == ["acc_bad"]
    assert summary.failed[0].reason.startswith("account 'acc_bad': its usage cannot be read") and "overflow" in summary.failed[0].reason
    assert summary.invoicesDue == 1 and summary.accountIds == ["acc_bad", "acc_good"]
    async with db.unit_of_work() as session:
        rows = (await session.execute(text(
            "SELECT account_id, status, total_amount FROM invoices ORDER BY account_id, period_start"))).all()
        billing = dict((await session.execute(text(
            "SELECT account_id, billed_until FROM account_billing ORDER BY account_id"))).all())
    # acc_good: 31.00 + 0.01 x 200 tokens + 0.01 x 1 power (1 ^ 2000) = 33.01, DUE; its February DRAFT opened.
    # acc_bad: as it was (its January DRAFT, nothing billed), retried by the next run.
    assert [(a, s, str(t)) for a, s, t in rows if s != "DRAFT"] == [("acc_good", "DUE", "33.01")]
    assert [(a, s) for a, s, _ in rows] == [("acc_bad", "DRAFT"), ("acc_good", "DUE"), ("acc_good", "DRAFT")]
    assert billing["acc_good"] == at(2026, 2, 1) and billing["acc_bad"] is None
    # the way out the reason names: list_events shows the event with its problem
    listed = await call(client, "list_events", accountId="acc_bad")
    assert [e["id"] for e in listed["data"] if e.get("problem")] == ["b1"]
    # every retry fails it again, and only it
    again = await run_bill(db, at(2026, 2, 5))
    assert [f.accountId for f in again.failed] == ["acc_bad"] and again.invoicesDue == 0
    # fixed by hand: the next run bills it, 31.00 + 0.01 x 100 tokens + 0.01 x 1 power = 32.01
    await edit_factor(db, "1")
    fixed = await run_bill(db, at(2026, 2, 5))
    assert fixed.failed == [] and fixed.invoicesDue == 1
    async with db.unit_of_work() as session:
        total = await session.scalar(text(
            "SELECT total_amount FROM invoices WHERE account_id = 'acc_bad' AND status = 'DUE'"))
    assert str(total) == "32.01"


async def test_an_account_whose_late_usage_the_database_cannot_read_keeps_it_pending_alone(client, db, clock):
    """Both on a BILL_ON_NEXT_INVOICE "Pro"; January is billed clean (33.01 for acc_good, 32.01 for acc_bad), then each
    sends 100 late tokens dated 10 January and acc_bad's b1 is edited: the late line recomposes January from its
    events, which the database cannot meter for acc_bad."""
    await late_story(client, db, clock)
    summary = await run_bill(db, at(2026, 3, 5))  # February is due for both
    assert [f.accountId for f in summary.failed] == ["acc_bad"]
    assert summary.failed[0].reason.startswith(
        "late usage not billed, it stays pending: account 'acc_bad': its usage cannot be read")
    assert summary.invoicesDue == 2
    async with db.unit_of_work() as session:
        totals = dict((await session.execute(text(
            "SELECT account_id, total_amount FROM invoices WHERE status = 'DUE' AND period_start >= :feb "
            "ORDER BY account_id"), {"feb": at(2026, 2, 1)})).all())
        pending = (await session.execute(text(
            "SELECT account_id FROM late_usage_events WHERE invoice_id IS NULL ORDER BY account_id"))).scalars().all()
    # acc_good: February's 31.00 + its late line: January recomposed (31.00 + 0.01 x 300 tokens + 0.01 x 2 power
    # = 34.02) minus what it billed (33.01) = 1.01: 32.01. acc_bad: February's 31.00, its late usage still pending.
    assert {a: str(t) for a, t in totals.items()} == {"acc_bad": "31.00", "acc_good": "32.01"}
    assert pending == ["acc_bad"]
