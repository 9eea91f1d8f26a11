"""REVENUE over many accounts in one query: what revenue_series works out once and shares between invoices (the
(period, full cycle) of a (cycle config, anchor, period), usage_charge per (card, currency, period, full cycle,
quantity)) never lends one account's price to another. Every bucket is worked out by hand from what each invoice
bills."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from sqlalchemy import event

from helpers import at, call

D = Decimal
JAN, MAR = datetime(2026, 1, 1, tzinfo=UTC), datetime(2026, 3, 1, tzinfo=UTC)
DAYS = [JAN + timedelta(days=i) for i in range((MAR - JAN).days)]  # the DAY buckets of [1 Jan, 1 Mar)


def iso(moment: datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")


def card(meter: str, rate: str, minimum: str | None = None, name: str = "tokens") -> dict[str, Any]:
    """A usage card on `meter`: `rate` per token, with `minimum` its minimumRate (per cycle, by time share in a
    partial period)."""
    value: dict[str, Any] = {"currency": "USD", "slabRates": [{"order": 1, "rate": rate}]}
    if minimum is not None:
        value["rateConfig"] = {"minimumRate": minimum}
    return {"name": name, "usageMeterId": meter, "ratePlan": {"pricingModel": "TIERED", "slabs": [
        {"order": 1, "startAfter": 0, "priceType": "PER_UNIT"}]}, "rateValues": [value]}


async def join(client: Any, clock: Any, account_id: str, plan: str, when: datetime, **extra: Any) -> None:
    clock.set(when)
    await call(client, "create_customer", id=f"c_{account_id}", name="C", account={
        "id": account_id, "name": account_id, "pricePlanId": plan, "effectiveFrom": iso(when), **extra})


async def tokens(client: Any, account_id: str, when: datetime, amount: str) -> None:
    result = await call(client, "ingest_event", event={
        "id": f"{account_id}-{when:%m%d}", "schemaName": "llm", "accountId": account_id, "timestamp": iso(when),
        "attributes": {"tokens": amount}})
    assert result["status"] == "ACCEPTED", result


async def revenue(client: Any, period: str) -> dict[str, list[Decimal]]:
    """REVENUE of every account over [1 Jan, 1 Mar), in `period` buckets, grouped by account: one query."""
    result = await call(client, "get_metrics", startTime=iso(JAN), endTime=iso(MAR), metricQueries=[{
        "id": "q", "name": "REVENUE", "aggregationPeriod": period, "groupBy": "ACCOUNT_ID"}])
    return {series["groupedBy"]["fieldValue"]: [D(v) for v in series["metricValues"]]
            for series in result["results"][0]["data"]}


def by_day(amounts: dict[datetime, str]) -> list[Decimal]:
    """The DAY series: `amounts` on their days, 0 elsewhere."""
    return [D(amounts.get(day, "0")) for day in DAYS]


async def totals(client: Any, account_id: str, until: datetime = MAR) -> list[Decimal]:
    """The totals of the account's invoices of periods ending by `until`, oldest period first (every one DUE; the
    DRAFT after them is past the query's range)."""
    invoices = [i for i in (await call(client, "list_invoices", accountId=account_id))["data"]
                if datetime.fromisoformat(i["endDate"]) <= until]
    assert {i["status"] for i in invoices} == {"DUE"}, invoices
    return [D(i["totalAmount"]) for i in sorted(invoices, key=lambda i: i["startDate"])]


async def test_accounts_on_an_anniversary_plan_with_different_anchors_in_one_query(client, clock) -> None:
    """a (anchor 10 Jan) and b (anchor 20 Jan) both have a period [10 Feb, 20 Feb): a's cancelled in the middle of
    its cycle [10 Feb, 10 Mar) (28 days), b's cut by a deal from 10 Feb in its cycle [20 Jan, 20 Feb) (31 days).
    Same plan, same cycle config, same period, other full cycle: the minimum's time share differs."""
    meter = (await call(client, "create_usage_meter", name="tokens", eventSchemaName="llm", aggregation="SUM",
                        computations=[{"computation": "tokens"}]))["id"]
    plan = (await call(client, "create_price_plan", name="Anniversary", pricingCycleConfig={
        "interval": "MONTHLY", "anniversaryCycle": True, "gracePeriod": 0},
        rateCards={"usageRateCards": [card(meter, "0.10", "31")]}))["id"]
    calendar = (await call(client, "create_price_plan", name="Calendar", pricingCycleConfig={
        "interval": "MONTHLY", "gracePeriod": 0}, rateCards={"usageRateCards": [card(meter, "0.20")]}))["id"]

    await join(client, clock, "d", calendar, JAN)  # the second plan: calendar months
    await join(client, clock, "a", plan, at(2026, 1, 10))
    await join(client, clock, "b", plan, at(2026, 1, 20))
    await join(client, clock, "c", plan, at(2026, 1, 25))
    clock.set(at(2026, 1, 26))
    # b's deal from 10 Feb: 0.05 per token, the same minimum (splits its association there, on the same anchor)
    await call(client, "update_account", accountId="b", pricePlanId=plan, effectiveFrom=iso(at(2026, 2, 10)),
               rateCardOverrides={"usageRateCards": [card(meter, "0.05", "31")]})
    await call(client, "update_account", accountId="a", effectiveUntil=iso(at(2026, 2, 20)))
    await call(client, "update_account", accountId="b", effectiveUntil=iso(at(2026, 2, 20)))
    await call(client, "update_account", accountId="c", effectiveUntil=iso(at(2026, 2, 25)))  # its cycle's end
    noon = timedelta(hours=12)
    for account_id, day, amount in (("d", at(2026, 1, 15), "100"), ("d", at(2026, 2, 10), "50"),
                                    ("a", at(2026, 1, 12), "200"), ("a", at(2026, 1, 15), "200"),
                                    ("a", at(2026, 2, 12), "100"),
                                    ("b", at(2026, 1, 22), "300"), ("b", at(2026, 2, 12), "100"),
                                    ("b", at(2026, 2, 15), "300"),
                                    ("c", at(2026, 2, 3), "350")):
        await tokens(client, account_id, day + noon, amount)
    clock.set(MAR)

    # a: [10 Jan, 10 Feb) a whole cycle: 400 × 0.10 = 40.00 over the minimum 31.00;
    #    [10 Feb, 20 Feb) cancelled, 10 of its cycle's 28 days: minimum 31 × 10/28 = 11.0714... -> 11.07 over
    #    100 × 0.10 = 10.00
    assert await totals(client, "a") == [D("40.00"), D("11.07")]
    # b: [20 Jan, 10 Feb) cut by the deal, 21 of 31 days: minimum 31 × 21/31 = 21.00 under 300 × 0.10 = 30.00;
    #    [10 Feb, 20 Feb) on the deal, 10 of 31 days: minimum 31 × 10/31 = 10.00 under 400 × 0.05 = 20.00
    assert await totals(client, "b") == [D("30.00"), D("20.00")]
    # c: [25 Jan, 25 Feb) a whole cycle: 350 × 0.10 = 35.00 over 31.00
    assert await totals(client, "c") == [D("35.00")]
    # d (calendar, no minimum): January 100 × 0.20 = 20.00, February 50 × 0.20 = 10.00
    assert await totals(client, "d") == [D("20.00"), D("10.00")]

    daily = await revenue(client, "DAY")
    # A minimum from the period's first instant; usage past it on the day it passes it; nothing else moves.
    assert daily == {
        # 31.00 on 10 Jan; 15 Jan 400 tokens = 40.00: +9.00; 10 Feb 11.07 (its own 28-day share), 12 Feb's 10.00
        # stays under it
        "a": by_day({at(2026, 1, 10): "31.00", at(2026, 1, 15): "9.00", at(2026, 2, 10): "11.07"}),
        # 21.00 on 20 Jan, 22 Jan 30.00: +9.00; 10 Feb 10.00 (its 31-day share), 15 Feb 400 × 0.05 = 20.00: +10.00
        "b": by_day({at(2026, 1, 20): "21.00", at(2026, 1, 22): "9.00", at(2026, 2, 10): "10.00",
                     at(2026, 2, 15): "10.00"}),
        # 31.00 on 25 Jan, 3 Feb 35.00: +4.00
        "c": by_day({at(2026, 1, 25): "31.00", at(2026, 2, 3): "4.00"}),
        "d": by_day({at(2026, 1, 15): "20.00", at(2026, 2, 10): "10.00"}),
    }
    monthly = await revenue(client, "MONTH")
    assert monthly == {"a": [D("40.00"), D("11.07")], "b": [D("30.00"), D("20.00")],
                       "c": [D("31.00"), D("4.00")], "d": [D("20.00"), D("10.00")]}
    # every account's buckets add up to its invoices' totals, by day and by month
    for account_id in "abcd":
        assert sum(daily[account_id]) == sum(monthly[account_id]) == sum(await totals(client, account_id))


def priced(meter: str, usd: str, eur: str) -> dict[str, Any]:
    """The tokens card at `usd` per token in USD and `eur` in EUR."""
    return {"name": "tokens", "usageMeterId": meter, "ratePlan": {"pricingModel": "TIERED", "slabs": [
        {"order": 1, "startAfter": 0, "priceType": "PER_UNIT"}]}, "rateValues": [
        {"currency": currency, "slabRates": [{"order": 1, "rate": rate}]} for currency, rate in (("USD", usd),
                                                                                                  ("EUR", eur))]}


async def test_accounts_with_other_deals_and_currencies_never_share_a_charge_for_the_same_quantity(
        client, clock) -> None:
    """Four accounts on one plan, one period, 100 tokens each: the plan's price, two deals (rateCardOverrides), and
    the plan's price in EUR. Each bucket is priced with its own account's card and currency."""
    meter = (await call(client, "create_usage_meter", name="tokens", eventSchemaName="llm", aggregation="SUM",
                        computations=[{"computation": "tokens"}]))["id"]
    plan = (await call(client, "create_price_plan", name="Deals", supportedCurrencies=["USD", "EUR"],
                       pricingCycleConfig={"interval": "MONTHLY", "gracePeriod": 0},
                       rateCards={"usageRateCards": [priced(meter, "0.10", "0.09")]}))["id"]
    await join(client, clock, "list", plan, JAN)
    await join(client, clock, "cheap", plan, JAN, rateCardOverrides={"usageRateCards": [priced(meter, "0.05", "0.04")]})
    await join(client, clock, "dear", plan, JAN, rateCardOverrides={"usageRateCards": [priced(meter, "0.30", "0.27")]})
    await join(client, clock, "euro", plan, JAN, invoiceCurrency="EUR")
    for account_id in ("list", "cheap", "dear", "euro"):
        await tokens(client, account_id, at(2026, 1, 5, 12), "100")
    clock.set(at(2026, 2, 1))

    # 100 tokens: list 100 × 0.10 = 10.00 USD, cheap 100 × 0.05 = 5.00 USD, dear 100 × 0.30 = 30.00 USD,
    # euro 100 × 0.09 = 9.00 EUR
    expected = {"list": D("10.00"), "cheap": D("5.00"), "dear": D("30.00"), "euro": D("9.00")}
    for account_id, total in expected.items():
        assert await totals(client, account_id, at(2026, 2, 1)) == [total]
    result = await call(client, "get_metrics", startTime=iso(JAN), endTime=iso(at(2026, 2, 1)), metricQueries=[
        {"id": "day", "name": "REVENUE", "aggregationPeriod": "DAY", "groupBy": "ACCOUNT_ID"},
        {"id": "month", "name": "REVENUE", "aggregationPeriod": "MONTH", "groupBy": "ACCOUNT_ID"}])
    daily, monthly = ({series["groupedBy"]["fieldValue"]: (series["currency"], [D(v) for v in series["metricValues"]])
                       for series in query["data"]} for query in result["results"])
    # each account's amount on 5 Jan (the day of its 100 tokens), nothing on the other 30 days
    assert daily == {account_id: ("EUR" if account_id == "euro" else "USD",
                                  [D(0)] * 4 + [total] + [D(0)] * 26) for account_id, total in expected.items()}
    assert monthly == {account_id: ("EUR" if account_id == "euro" else "USD", [total])
                       for account_id, total in expected.items()}


async def test_a_draft_dropped_between_revenues_two_reads_of_invoices_never_fails_the_query(client, clock, db) -> None:
    """get_metrics reads in autocommit (each statement its own snapshot), and REVENUE reads the invoices' columns,
    then the DRAFTs' whole rows in a second statement. A DRAFT a plan change drops (or a bill run closes) between
    the two is gone from the second: it counts nothing in this read, and every other account's REVENUE stands."""
    meter = (await call(client, "create_usage_meter", name="tokens", eventSchemaName="llm", aggregation="SUM",
                        computations=[{"computation": "tokens"}]))["id"]
    plan = (await call(client, "create_price_plan", name="Plain", pricingCycleConfig={
        "interval": "MONTHLY", "gracePeriod": 0}, rateCards={"usageRateCards": [card(meter, "0.10")]}))["id"]
    for account_id in ("kept", "dropped"):
        await join(client, clock, account_id, plan, JAN)
        await tokens(client, account_id, at(2026, 1, 5, 12), "100")
    clock.set(at(2026, 1, 20))  # both Januaries are open DRAFTs: 100 × 0.10 = 10.00 so far
    (dropped,) = (await call(client, "list_invoices", accountId="dropped"))["data"]
    assert (dropped["status"], dropped["totalAmount"]) == ("DRAFT", "10.00")
    fired: list[str] = []

    def concurrent_drop(_conn: Any, cursor: Any, statement: str, *_: Any) -> None:
        # just before the DRAFTs' whole rows are read (the only invoice read with every column), another session's
        # commit drops dropped's DRAFT, as update_account(pricePlanId, effectiveFrom) from its period's start does
        if not fired and "FROM invoices" in statement and "invoices.sequence_number" in statement:
            fired.append(statement)
            cursor.execute(f"DELETE FROM invoices WHERE id = '{dropped['id']}'")

    event.listen(db.engine.sync_engine, "before_cursor_execute", concurrent_drop)
    try:
        result = await call(client, "get_metrics", startTime=iso(JAN), endTime=iso(at(2026, 2, 1)), metricQueries=[
            {"id": "q", "name": "REVENUE", "aggregationPeriod": "MONTH", "groupBy": "ACCOUNT_ID"}])
    finally:
        event.remove(db.engine.sync_engine, "before_cursor_execute", concurrent_drop)
    assert fired
    series = {s["groupedBy"]["fieldValue"]: [D(v) for v in s["metricValues"]] for s in result["results"][0]["data"]}
    # kept's DRAFT so far: 100 × 0.10 = 10.00; dropped's DRAFT is gone, it counts nothing
    assert series["kept"] == [D("10.00")]
    assert series.get("dropped", [D(0)]) == [D(0)]
