"""One account's stored events that the database cannot meter never stop another's bill run (billing README).

A bill run reads the usage of all the accounts it closes in one statement per window. A meter that multiplies an
attribute by itself 2,000 times is valid: ingest stores at most 40 digits before the point, so a stored value
gives at most 40 x 2,000 = 80,000 digits, within PostgreSQL's numeric (131,072 digits before the point). A
hand-edited value of 72 nines (the longest the stored-value guard still reads, meters/compiler.py
STORED_DECIMAL_CHARS) gives 144,000 digits: "value overflows numeric format", an error of the whole statement.
Raw events are read at a period's edges when it does not start on the hour, so the periods here start at 00:30.

Story: acc_bad and acc_good are on plan "Pro" from 1 January 00:30: 31.00 a month, 0.01 a token and 0.01 a unit
of `power` (factor ^ 2000). On 1 January at 00:40 acc_bad sends 100 tokens (factor 1) and acc_good 200 tokens
(factor 1) at 00:45; then acc_bad's factor is edited to 72 nines.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import text

from helpers import at, call
from test_scenarios import account, fee, tiered
from togai_engine.billing.runs import run_bill

MONTHLY = {"interval": "MONTHLY", "startOffset": {"dayOffset": "1", "monthOffset": "NIL"}, "gracePeriod": 0}
FACTORS = 2000


async def _edit(db: Any, factor: str) -> None:
    async with db.unit_of_work() as session:  # the hand edit: only the raw row changes, not its rollups
        await session.execute(text(
            "UPDATE events SET attributes = jsonb_set(attributes, '{factor}', CAST(:v AS jsonb)) "
            "WHERE account_id = 'acc_bad' AND id = 'b1'"), {"v": f'"{factor}"'})


async def _story(client: Any, db: Any, clock: Any, *, edit: bool = True, **plan: Any) -> None:
    tokens = await call(client, "create_usage_meter", name="tokens", eventSchemaName="llm", aggregation="SUM",
                        computations=[{"order": 1, "computation": "tokens"}])
    power = await call(client, "create_usage_meter", name="power", eventSchemaName="llm", aggregation="SUM",
                       computations=[{"order": 1, "computation": {"*": [{"var": "attributes.factor"}] * FACTORS}}])
    plan = await call(client, "create_price_plan", name="Pro", pricingCycleConfig=MONTHLY, rateCards={
        "usageRateCards": [tiered(str(tokens["id"]), ("0", "0.01")), tiered(str(power["id"]), ("0", "0.01"))],
        "fixedFeeRateCards": [fee("base", "31", prorate=False)]}, **plan)
    for account_id in ("acc_bad", "acc_good"):
        await account(client, account_id, str(plan["id"]), "2026-01-01T00:30:00Z")
    clock.set(at(2026, 1, 10))
    result = await call(client, "ingest_batch_events", events=[
        {"id": event_id, "schemaName": "llm", "accountId": account_id, "timestamp": when,
         "attributes": {"tokens": tokens_used, "factor": "1"}}
        for account_id, event_id, when, tokens_used in (("acc_bad", "b1", "2026-01-01T00:40:00Z", "100"),
                                                        ("acc_good", "g1", "2026-01-01T00:45:00Z", "200"))])
    assert result["accepted"] == 2
    if edit:
        await _edit(db, "9" * 72)


async def test_an_account_whose_usage_the_database_cannot_read_fails_alone(client, db, clock):
    await _story(client, db, clock)
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
    await _edit(db, "1")
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
    await _story(client, db, clock, edit=False, lateUsage="BILL_ON_NEXT_INVOICE")
    assert (await run_bill(db, at(2026, 2, 5))).failed == []
    clock.set(at(2026, 2, 6))
    result = await call(client, "ingest_batch_events", events=[
        {"id": f"{account_id}-late", "schemaName": "llm", "accountId": account_id, "timestamp": "2026-01-10T12:00:00Z",
         "attributes": {"tokens": "100", "factor": "1"}} for account_id in ("acc_bad", "acc_good")])
    assert result["accepted"] == 0, result  # late: stored ACCEPTED_LATE, billed on the next invoice
    await _edit(db, "9" * 72)
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
