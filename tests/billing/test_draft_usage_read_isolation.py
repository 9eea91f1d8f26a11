"""One account's stored events that the database cannot meter never fail another's DRAFT reads (invoices README).

DRAFTs are composed with one usage read over all the accounts listed (list_invoices without accountId, get_metrics
REVENUE); the story (unreadable_usage.py) makes acc_bad's read fail with "value overflows numeric format", an error of
the whole statement. Both Januaries [00:30 1 Jan, 1 Feb) are open DRAFTs on 10 January; its late usage, recomposing
January for the February DRAFT, fails the same way.
"""

from __future__ import annotations

from decimal import Decimal as D
from typing import Any

from helpers import at, call
from togai_engine.billing.runs import run_bill
from unreadable_usage import edit_factor, late_story, story


async def test_list_invoices_shows_every_other_draft_and_the_bad_ones_problem(client, db, clock):
    await story(client, db, clock)
    drafts = {i["accountId"]: i for i in (await call(client, "list_invoices"))["data"]}
    assert {a: i["status"] for a, i in drafts.items()} == {"acc_bad": "DRAFT", "acc_good": "DRAFT"}
    # acc_good: 31.00 + 0.01 x 200 tokens + 0.01 x 1 power (1 ^ 2000) = 33.01
    assert drafts["acc_good"]["totalAmount"] == "33.01" and drafts["acc_good"].get("problem") is None
    # acc_bad: no amounts, the reason and the way out
    bad = drafts["acc_bad"]
    assert bad["totalAmount"] is None
    assert bad["problem"].startswith("this invoice cannot be computed: account 'acc_bad': its usage cannot be read")
    assert "overflow" in bad["problem"] and "list_events" in bad["problem"]
    # its own listing says the same, and get_invoice names it (a DRAFT that cannot be computed raises its problem)
    (own,) = (await call(client, "list_invoices", accountId="acc_bad"))["data"]
    assert own["problem"] == bad["problem"]
    # fixed by hand: 31.00 + 0.01 x 100 tokens + 0.01 x 1 power = 32.01
    await edit_factor(db, "1")
    drafts = {i["accountId"]: i for i in (await call(client, "list_invoices"))["data"]}
    assert {a: (i["totalAmount"], i.get("problem")) for a, i in drafts.items()} == {
        "acc_bad": ("32.01", None), "acc_good": ("33.01", None)}


async def test_revenue_counts_every_other_draft_and_nothing_of_the_bad_one(client, db, clock):
    await story(client, db, clock)
    result = await call(client, "get_metrics", startTime="2026-01-01T00:00:00Z", endTime="2026-02-01T00:00:00Z",
                        metricQueries=[{"id": "q", "name": "REVENUE", "aggregationPeriod": "MONTH",
                                        "groupBy": "ACCOUNT_ID"}])
    series = {s["groupedBy"]["fieldValue"]: [D(v) for v in s["metricValues"]] for s in result["results"][0]["data"]}
    # acc_good's DRAFT: 33.01 as above; acc_bad's cannot be computed: it counts nothing in this read
    assert series["acc_good"] == [D("33.01")]
    assert series.get("acc_bad", [D(0)]) == [D(0)]


async def test_late_usage_the_database_cannot_read_stays_pending_on_the_bad_accounts_draft_alone(client, db, clock):
    """Both on a BILL_ON_NEXT_INVOICE "Pro"; January is billed clean (33.01 for acc_good, 32.01 for acc_bad), then each
    sends 100 late tokens dated 10 January and acc_bad's b1 is edited: the late line of its February DRAFT recomposes
    January from its events, which the database cannot meter for acc_bad."""
    await late_story(client, db, clock)
    drafts = {i["accountId"]: i for i in (await call(client, "list_invoices", status="DRAFT"))["data"]}
    # acc_good: February's 31.00 + its late line: January recomposed (31.00 + 0.01 x 300 tokens + 0.01 x 2 power
    # = 34.02) minus what it billed (33.01) = 1.01: 32.01
    assert (drafts["acc_good"]["totalAmount"], drafts["acc_good"].get("problem")) == ("32.01", None)
    # acc_bad: February's 31.00 without its late line (it stays pending), and why
    bad = drafts["acc_bad"]
    assert bad["totalAmount"] == "31.00"
    assert bad["problem"].startswith("its account's late usage cannot be priced, so this invoice does not bill it yet "
                                     "(it stays pending): account 'acc_bad': its usage cannot be read")
    result = await call(client, "get_metrics", startTime="2026-02-01T00:00:00Z", endTime="2026-03-01T00:00:00Z",
                        metricQueries=[{"id": "q", "name": "REVENUE", "aggregationPeriod": "MONTH",
                                        "groupBy": "ACCOUNT_ID"}])
    series = {s["groupedBy"]["fieldValue"]: [D(v) for v in s["metricValues"]] for s in result["results"][0]["data"]}
    assert series == {"acc_bad": [D("31.00")], "acc_good": [D("32.01")]}


async def _daily(client: Any) -> dict[str, list[D]]:
    result = await call(client, "get_metrics", startTime="2026-01-01T00:00:00Z", endTime="2026-02-01T00:00:00Z",
                        metricQueries=[{"id": "q", "name": "REVENUE", "aggregationPeriod": "DAY",
                                        "groupBy": "ACCOUNT_ID"}])
    return {s["groupedBy"]["fieldValue"]: [D(v) for v in s["metricValues"]] for s in result["results"][0]["data"]}


async def test_daily_revenue_reads_usage_between_the_period_bounds_and_never_fails_the_others(client, db, clock):
    """DAY buckets cut January [00:30 1 Jan, 1 Feb) at every midnight: REVENUE reads each account's usage over
    [00:30 1 Jan, midnight), raw events at 00:30's hour, acc_bad's edited b1 among them."""
    await story(client, db, clock)
    daily = await _daily(client)
    # acc_good's DRAFT: its 200 tokens and 1 power on 1 January (2.00 + 0.01), the 31.00 fee (not prorated, an
    # arrears fee) in the bucket holding the period's last instant (31 January): 33.01 in all; acc_bad's DRAFT
    # cannot be computed: nothing
    assert daily["acc_good"] == [D("2.01")] + [D(0)] * 29 + [D("31.00")]
    assert sum(daily.get("acc_bad", [])) == 0
    # both Januaries billed before the edit (acc_bad 31.00 + 1.00 + 0.01 = 32.01), then the edit: acc_bad's DUE
    # invoice keeps its stored lines, but its usage can no longer be read between the period's bounds, so its usage
    # lines fall whole in the last bucket as an arrears fee does (the period still adds up to 32.01)
    await edit_factor(db, "1")
    assert (await run_bill(db, at(2026, 2, 5))).failed == []
    await edit_factor(db, "9" * 72)
    daily = await _daily(client)
    assert daily["acc_good"] == [D("2.01")] + [D(0)] * 29 + [D("31.00")]
    assert daily["acc_bad"] == [D(0)] * 30 + [D("32.01")]
