"""The story of an account whose stored events the database cannot meter, shared by the tests of every read that
meters many accounts at once (test_usage_read_isolation.py: the bill run; test_draft_usage_read_isolation.py: the
DRAFTs of list_invoices and get_metrics REVENUE).

A meter that multiplies an attribute by itself 2,000 times is valid: ingest stores at most 40 digits before the point,
so a stored value gives at most 40 x 2,000 = 80,000 digits, within PostgreSQL's numeric (131,072 digits before the
point). A hand-edited value of 72 nines (the longest the stored-value guard still reads, meters/compiler.py
STORED_DECIMAL_CHARS) gives 144,000 digits: "value overflows numeric format", an error of the whole statement.
Raw events are read at a period's edges when it does not start on the hour, so the periods here start at 00:30.

Story: acc_bad and acc_good are on plan "Pro" from 1 January 00:30: 31.00 a month, 0.01 a token and 0.01 a unit
of `power` (factor ^ 2000). On 1 January at 00:40 acc_bad sends 100 tokens (factor 1) and acc_good 200 tokens
(factor 1) at 00:45; then (unless edit=False) acc_bad's factor is edited to 72 nines. The clock is left at 10 January.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import text

from helpers import at, call
from test_scenarios import account, fee, tiered
from togai_engine.billing.runs import run_bill

MONTHLY = {"interval": "MONTHLY", "startOffset": {"dayOffset": "1", "monthOffset": "NIL"}, "gracePeriod": 0}
FACTORS = 2000


async def edit_factor(db: Any, factor: str) -> None:
    async with db.unit_of_work() as session:  # the hand edit: only the raw row changes, not its rollups
        await session.execute(text(
            "UPDATE events SET attributes = jsonb_set(attributes, '{factor}', CAST(:v AS jsonb)) "
            "WHERE account_id = 'acc_bad' AND id = 'b1'"), {"v": f'"{factor}"'})


async def story(client: Any, db: Any, clock: Any, *, edit: bool = True, **plan: Any) -> None:
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
        await edit_factor(db, "9" * 72)


async def late_story(client: Any, db: Any, clock: Any) -> None:
    """Both on a BILL_ON_NEXT_INVOICE "Pro"; January billed clean (33.01 for acc_good, 32.01 for acc_bad); on 6
    February each sends 100 late tokens dated 10 January (stored ACCEPTED_LATE, billed on the next invoice); then
    acc_bad's b1 is edited to a factor the database cannot meter."""
    await story(client, db, clock, edit=False, lateUsage="BILL_ON_NEXT_INVOICE")
    assert (await run_bill(db, at(2026, 2, 5))).failed == []
    clock.set(at(2026, 2, 6))
    result = await call(client, "ingest_batch_events", events=[
        {"id": f"{account_id}-late", "schemaName": "llm", "accountId": account_id, "timestamp": "2026-01-10T12:00:00Z",
         "attributes": {"tokens": "100", "factor": "1"}} for account_id in ("acc_bad", "acc_good")])
    assert result["accepted"] == 0, result
    await edit_factor(db, "9" * 72)
