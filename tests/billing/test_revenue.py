"""REVENUE and USAGE metrics agree with invoices: hand-worked buckets and a property over random usage.

REVENUE covers the whole invoice (usage amounts, fixed fees, the minimum-commitment true-up): summed over a
DUE/PAID invoice's period it equals the invoice's totalAmount, to the cent.
"""

from __future__ import annotations

import itertools
from bisect import bisect_right
from datetime import UTC, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import event, text

from helpers import at, call, call_error, clone_rows
from togai_engine.store.database import raw_connection

D = Decimal
JAN, FEB = datetime(2026, 1, 1, tzinfo=UTC), datetime(2026, 2, 1, tzinfo=UTC)
_accounts = itertools.count()


def iso(moment: datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")


async def setup(client: Any, *, timing: str = "IN_ARREARS", prorate: bool = False,
                commitment: str | None = None, overage_limit: str | None = None) -> tuple[str, str, str]:
    """Meters tokens (SUM) and requests (COUNT); a plan pricing both, with a 10 USD fixed fee "platform"
    (`timing`, prorated or not), an optional minimum commitment and, with `overage_limit`, the feature
    tokens_quota on tokens (that limit a cycle) with an overage card "tokens_overage" at 0.07 per token past it,
    at most 400 tokens. -> (plan, tokens, requests)."""
    tokens = (await call(client, "create_usage_meter", name="tokens", eventSchemaName="llm", aggregation="SUM",
                         computations=[{"computation": "tokens"}]))["id"]
    requests = (await call(client, "create_usage_meter", name="requests", eventSchemaName="llm",
                           aggregation="COUNT"))["id"]
    extra: dict[str, Any] = {"minimumCommitment": {"rateValues": [{"currency": "USD", "rate": commitment}]}} \
        if commitment else {}
    if overage_limit is not None:
        extra["billingEntitlementRateCards"] = [{"featureId": "tokens_quota", "usageMeterId": tokens,
                                                 "featureConfigs": [{"featureCreditLimit": overage_limit}]}]
        extra["entitlementOverageRateCards"] = [{
            "name": "tokens_overage", "featureId": "tokens_quota", "maxQuantity": "400",
            "ratePlan": {"pricingModel": "TIERED", "slabs": [{"order": 1, "startAfter": 0, "priceType": "PER_UNIT"}]},
            "rateValues": [{"currency": "USD", "slabRates": [{"order": 1, "rate": "0.07"}]}]}]
    plan = await call(client, "create_price_plan", name=f"Metered {timing} {prorate} {commitment} {overage_limit}",
                      pricingCycleConfig={"interval": "MONTHLY", "gracePeriod": 1}, rateCards={
        "usageRateCards": [
            {"usageMeterId": tokens, "ratePlan": {"pricingModel": "TIERED", "slabs": [
                {"order": 1, "startAfter": 0, "priceType": "PER_UNIT"},
                {"order": 2, "startAfter": 100, "priceType": "PER_UNIT"}]},
             "rateValues": [{"currency": "USD", "slabRates": [{"order": 1, "rate": "0.10"},
                                                              {"order": 2, "rate": "0.05"}]}]},
            {"usageMeterId": requests, "ratePlan": {"pricingModel": "VOLUME", "slabs": [
                {"order": 1, "startAfter": 0, "priceType": "FLAT"},
                {"order": 2, "startAfter": 2, "priceType": "PER_UNIT"}]},
             "rateValues": [{"currency": "USD", "slabRates": [{"order": 1, "rate": "5"},
                                                              {"order": 2, "rate": "0.333"}]}]}],
        "fixedFeeRateCards": [{"id": "platform", "rateValues": [{"currency": "USD", "rate": "10"}],
                               "invoiceTiming": timing, "enableProration": prorate}],
        **extra})
    return plan["id"], tokens, requests


async def metric(client: Any, name: str, start: datetime, end: datetime, period: str, account: str,
                 group: str = "USAGE_METER_ID") -> dict[str, list[Decimal]]:
    result = await call(client, "get_metrics", startTime=iso(start), endTime=iso(end), metricQueries=[{
        "id": "q", "name": name, "aggregationPeriod": period, "groupBy": group,
        "filters": [{"fieldName": "ACCOUNT_ID", "fieldValues": [account]}]}])
    return {series["groupedBy"]["fieldValue"] if group else None: [D(v) for v in series["metricValues"]]
            for series in result["results"][0]["data"]}


def group_of(line: dict[str, Any]) -> str:
    """The USAGE_METER_ID group an invoice line's amount falls in: its meter, else its rate card name."""
    return str(line["usageMeterId"] or line["rateCardName"])


async def test_revenue_buckets_by_hand(client, clock) -> None:
    plan, tokens, requests = await setup(client)
    await call(client, "create_customer", id="c", name="C", account={
        "id": "acc", "name": "A", "pricePlanId": plan, "effectiveFrom": iso(JAN)})
    for day, amount in ((2, "80"), (3, "40"), (5, "100")):
        await call(client, "ingest_event", event={"id": f"e{day}", "schemaName": "llm", "accountId": "acc",
                                                  "timestamp": iso(JAN + timedelta(days=day - 1, hours=12)),
                                                  "attributes": {"tokens": amount}})
    clock.set(datetime(2026, 2, 5, tzinfo=UTC))
    revenue = await metric(client, "REVENUE", JAN, JAN + timedelta(days=7), "DAY", "acc")
    # The fixed fee "platform" (10.00, IN_ARREARS) falls in the bucket holding the period's end: not in this week
    assert revenue["platform"] == [D(0)] * 7
    # tokens, cumulative R(t): after 2 Jan 80 × 0.10 = 8.00; after 3 Jan 120 -> 100 × 0.10 + 20 × 0.05 = 11.00;
    # after 5 Jan 220 -> 10 + 120 × 0.05 = 16.00. Daily deltas: 0, 8, 3, 0, 5, 0, 0
    assert revenue[tokens] == [D("0.00"), D("8.00"), D("3.00"), D(0), D("5.00"), D(0), D(0)]
    # requests (VOLUME): 0-2 requests pay the FLAT 5.00 (a base fee, in the first bucket); the 3rd request moves
    # all 3 to 0.333 each = 0.999 -> 1.00: on 5 Jan the amount drops by 4.00
    assert revenue[requests] == [D("5.00"), D(0), D(0), D(0), D("-4.00"), D(0), D(0)]
    month = await metric(client, "REVENUE", JAN, FEB, "MONTH", "acc")
    invoice = (await call(client, "list_invoices", accountId="acc", status="DUE"))["data"][0]
    full = await call(client, "get_invoice", invoiceId=invoice["id"])
    by_card = {group_of(line): D(line["value"]) for line in full["lineItems"]}
    assert by_card == {tokens: D("16.00"), requests: D("1.00"), "platform": D("10.00")}
    # The whole invoice: 16.00 + 1.00 + 10.00 = 27.00, each card in its own series
    assert month == {tokens: [D("16.00")], requests: [D("1.00")], "platform": [D("10.00")]}
    assert D(full["totalAmount"]) == D("27.00")
    error = await call_error(client, "get_metrics", startTime=iso(JAN), endTime=iso(FEB), metricQueries=[{
        "id": "q", "name": "REVENUE", "groupBy": "SCHEMA_NAME"}])
    assert "groupBy" in error and "USAGE_METER_ID" in error
    # configs are honoured or refused: INVOICE is what REVENUE does; BASE would need exchange rates
    invoice_currency = await call(client, "get_metrics", startTime=iso(JAN), endTime=iso(FEB), metricQueries=[{
        "id": "q", "name": "REVENUE", "aggregationPeriod": "MONTH", "configs": {"CURRENCY": "INVOICE"}}])
    assert invoice_currency["results"][0]["data"][0]["metricValues"] == ["27.00"]
    for configs, name, wrong in (({"CURRENCY": "BASE"}, "REVENUE", "configs.CURRENCY"),
                                 ({"FX": "x"}, "REVENUE", "configs.FX"), ({"CURRENCY": "INVOICE"}, "USAGE", "configs")):
        error = await call_error(client, "get_metrics", startTime=iso(JAN), endTime=iso(FEB), metricQueries=[{
            "id": "q", "name": name, "configs": configs}])
        assert f"metricQueries[0].{wrong}" in error


async def test_an_account_whose_invoice_cannot_be_priced_again_never_fails_the_others_revenue(
        client, clock, db) -> None:
    plan, _, _ = await setup(client)
    for account_id in ("bad", "good"):
        await call(client, "create_customer", id=f"c_{account_id}", name="C", account={
            "id": account_id, "name": "A", "pricePlanId": plan, "effectiveFrom": iso(JAN)})
        for day, amount in ((2, "80"), (3, "40")):
            await call(client, "ingest_event", event={
                "id": f"{account_id}{day}", "schemaName": "llm", "accountId": account_id,
                "timestamp": iso(JAN + timedelta(days=day - 1, hours=12)), "attributes": {"tokens": amount}})
    clock.set(datetime(2026, 2, 5, tzinfo=UTC))
    # Both Januaries close DUE: tokens 100 × 0.10 + 20 × 0.05 = 11.00, 2 requests = the FLAT 5.00, platform 10.00
    assert [i["totalAmount"] for i in (await call(client, "list_invoices", status="DUE"))["data"]] == ["26.00"] * 2
    # Data no policy covers: bad's January invoice says EUR, which its plan does not price.
    async with db.unit_of_work() as session:
        await session.execute(text("UPDATE invoices SET currency = 'EUR' WHERE account_id = 'bad'"))

    revenue = await revenue_by_account(client)  # every account, no filter
    # good, as usual: requests' FLAT 5.00 from the first instant, tokens 8.00 on 2 Jan (80 × 0.10) and 3.00 on
    # 3 Jan (20 × 0.10 + 20 × 0.05), the IN_ARREARS platform fee 10.00 on 31 Jan: 26.00, its invoice's total
    assert revenue["good"] == [D("5.00"), D("8.00"), D("3.00")] + [D(0)] * 27 + [D("10.00")]
    # bad's usage cannot be priced in EUR at the days' ends, so its invoice's lines fall whole on the period's last
    # day, as an arrears fee does: 11.00 + 5.00 + 10.00 = 26.00, still its invoice's total
    assert revenue["bad"] == [D(0)] * 30 + [D("26.00")]


async def revenue_by_account(client: Any) -> dict[str, list[Decimal]]:
    """REVENUE of every account over January by day, grouped by account (no filter)."""
    result = await call(client, "get_metrics", startTime=iso(JAN), endTime=iso(FEB), metricQueries=[{
        "id": "q", "name": "REVENUE", "aggregationPeriod": "DAY", "groupBy": "ACCOUNT_ID"}])
    return {series["groupedBy"]["fieldValue"]: [D(v) for v in series["metricValues"]]
            for series in result["results"][0]["data"]}


async def test_a_partial_periods_minimum_rate_counts_by_time_share_in_every_bucket(client, clock) -> None:
    tokens = (await call(client, "create_usage_meter", name="tokens", eventSchemaName="llm", aggregation="SUM",
                         computations=[{"computation": "tokens"}]))["id"]
    plan = await call(client, "create_price_plan", name="Minimum", pricingCycleConfig={
        "interval": "MONTHLY", "gracePeriod": 0}, rateCards={"usageRateCards": [{
            "usageMeterId": tokens, "ratePlan": {"pricingModel": "TIERED", "slabs": [
                {"order": 1, "startAfter": 0, "priceType": "PER_UNIT"}]},
            "rateValues": [{"currency": "USD", "slabRates": [{"order": 1, "rate": "0.10"}],
                            "rateConfig": {"minimumRate": "31"}}]}]})
    clock.set(datetime(2026, 1, 17, tzinfo=UTC))
    await call(client, "create_customer", id="c", name="C", account={
        "id": "acc", "name": "A", "pricePlanId": plan["id"], "effectiveFrom": iso(clock.now())})
    await call(client, "ingest_event", event={"id": "e", "schemaName": "llm", "accountId": "acc",
                                              "timestamp": iso(JAN + timedelta(days=25)), "attributes": {"tokens": "200"}})
    clock.set(FEB)
    (jan,) = (await call(client, "list_invoices", accountId="acc", status="DUE"))["data"]
    # [17 Jan, 1 Feb) is 15 of 31 days: minimum 31 × 15/31 = 15.00; 200 tokens × 0.10 = 20.00 above it
    assert jan["totalAmount"] == "20.00"
    daily = await metric(client, "REVENUE", JAN + timedelta(days=16), FEB, "DAY", "acc")
    # The minimum (15.00, not 31.00) from the first instant; on 26 Jan the usage passes it: +5.00
    assert daily[tokens] == [D("15.00")] + [D(0)] * 8 + [D("5.00")] + [D(0)] * 5
    assert sum(daily[tokens]) == D(jan["totalAmount"])


async def test_revenue_covers_fixed_fees_and_the_true_up_by_hand(client, clock) -> None:
    """A partial first period with an IN_ADVANCE prorated fee, an IN_ARREARS fee and a minimum commitment."""
    tokens = (await call(client, "create_usage_meter", name="tokens", eventSchemaName="llm", aggregation="SUM",
                         computations=[{"computation": "tokens"}]))["id"]
    plan = await call(client, "create_price_plan", name="Committed", pricingCycleConfig={
        "interval": "MONTHLY", "gracePeriod": 1}, rateCards={
        "usageRateCards": [{"usageMeterId": tokens, "ratePlan": {"pricingModel": "TIERED", "slabs": [
            {"order": 1, "startAfter": 0, "priceType": "PER_UNIT"}]},
            "rateValues": [{"currency": "USD", "slabRates": [{"order": 1, "rate": "0.10"}]}]}],
        "fixedFeeRateCards": [
            {"id": "platform", "invoiceTiming": "IN_ADVANCE", "enableProration": True,
             "rateValues": [{"currency": "USD", "rate": "30"}]},
            {"id": "support", "invoiceTiming": "IN_ARREARS", "rateValues": [{"currency": "USD", "rate": "12"}]}],
        "minimumCommitment": {"rateValues": [{"currency": "USD", "rate": "100"}]}})
    clock.set(datetime(2026, 1, 21, tzinfo=UTC))
    await call(client, "create_customer", id="c", name="C", account={
        "id": "acc", "name": "A", "pricePlanId": plan["id"], "effectiveFrom": iso(clock.now())})
    for event_id, day, amount in (("a", JAN + timedelta(days=21, hours=12), "50"),  # 22 Jan
                                  ("b", JAN + timedelta(days=24, hours=12), "30"),  # 25 Jan
                                  ("c", FEB + timedelta(days=1, hours=12), "200")):  # 2 Feb
        await call(client, "ingest_event", event={"id": event_id, "schemaName": "llm", "accountId": "acc",
                                                  "timestamp": iso(day), "attributes": {"tokens": amount}})
    clock.set(datetime(2026, 2, 3, tzinfo=UTC))  # January [21 Jan, 1 Feb) is DUE; February is a DRAFT
    advance, jan = sorted((await call(client, "list_invoices", accountId="acc", status="DUE"))["data"],
                          key=lambda i: i["invoiceType"], reverse=True)
    # 21 Jan, as the plan started: January's platform fee in advance, 11 of 31 days: 30 × 11/31 = 10.645... -> 10.65
    assert (advance["invoiceType"], advance["totalAmount"]) == ("STANDARD_ADVANCED", "10.65")
    # January: tokens 80 × 0.10 = 8.00; support 12.00 (not prorated); February's platform fee in advance 30.00;
    # subtotal 50.00; commitment 100 × 11/31 = 35.4838... counts January's own charges here, 20.00 (in-advance fees
    # never count towards a commitment) -> true-up 15.4838... -> 15.48; total 65.48
    assert (jan["subTotalAmount"], jan["trueUpAmount"], jan["totalAmount"]) == ("50.00", "15.48", "65.48")
    # February so far: tokens 200 × 0.10 = 20.00; support 12.00; March's platform fee in advance 30.00; subtotal
    # 62.00; true-up 100 - 32.00 (its own charges) = 68.00; total 130.00
    feb = await call(client, "get_invoice", accountId="acc")
    assert (feb["status"], feb["subTotalAmount"], feb["trueUpAmount"], feb["totalAmount"]) == \
        ("DRAFT", "62.00", "68.00", "130.00")

    # DAY, 20-26 Jan: the advance fees (January's on its advance invoice, February's) on 21 Jan (the period's first
    # day), usage as it happens; the arrears fee
    # and the true-up come at the period's end, after this week
    week = await metric(client, "REVENUE", at(2026, 1, 20), at(2026, 1, 27), "DAY", "acc")
    assert week == {tokens: [D(0), D(0), D("5.00"), D(0), D(0), D("3.00"), D(0)],  # 50 × 0.10, 30 × 0.10
                    "platform": [D(0), D("40.65"), D(0), D(0), D(0), D(0), D(0)],  # 10.65 + 30.00
                    "support": [D(0)] * 7, "minimum_commitment": [D(0)] * 7}
    # DAY, 30 Jan - 2 Feb: January's last day carries support 12.00 and the true-up 15.48; 1 Feb March's
    # advance fee 30.00 (on February's invoice); 2 Feb 200 tokens = 20.00
    turn = await metric(client, "REVENUE", at(2026, 1, 30), at(2026, 2, 3), "DAY", "acc")
    assert turn == {tokens: [D(0), D(0), D(0), D("20.00")], "platform": [D(0), D(0), D("30.00"), D(0)],
                    "support": [D(0), D("12.00"), D(0), D(0)], "minimum_commitment": [D(0), D("15.48"), D(0), D(0)]}
    assert (await metric(client, "REVENUE", at(2026, 1, 30), at(2026, 2, 3), "DAY", "acc", None))[None] == \
        [D(0), D("27.48"), D("30.00"), D("20.00")]  # 12.00 + 15.48 on 31 Jan

    # MONTH: each month's revenue is its invoices' totals (January: 65.48 + the advance invoice's 10.65 = 76.13;
    # February: the DRAFT so far, its true-up included)
    march = at(2026, 3, 1)
    assert (await metric(client, "REVENUE", JAN, march, "MONTH", "acc", None))[None] == [D("76.13"), D("130.00")]
    assert await metric(client, "REVENUE", JAN, march, "MONTH", "acc") == {
        tokens: [D("8.00"), D("20.00")], "platform": [D("40.65"), D("30.00")], "support": [D("12.00"), D("12.00")],
        "minimum_commitment": [D("15.48"), D("68.00")]}  # 76.13 and 130.00
    # A USAGE_METER_ID filter keeps that meter's usage lines only: no fee, no true-up
    filtered = await call(client, "get_metrics", startTime=iso(JAN), endTime=iso(march), metricQueries=[{
        "id": "q", "name": "REVENUE", "aggregationPeriod": "MONTH",
        "filters": [{"fieldName": "USAGE_METER_ID", "fieldValues": [tokens]}]}])
    assert [D(v) for v in filtered["results"][0]["data"][0]["metricValues"]] == [D("8.00"), D("20.00")]
    # A VOID invoice carries no revenue (the advance invoice's 10.65 stays)
    await call(client, "update_invoice_status", invoiceId=jan["id"], status="VOID")
    assert (await metric(client, "REVENUE", JAN, march, "MONTH", "acc", None))[None] == [D("10.65"), D("130.00")]


async def meter_revenue(client: Any, start: datetime, end: datetime, period: str, meters: list[str],
                        group: str | None = None, account: str | None = None) -> dict[str | None, list[Decimal]]:
    """REVENUE filtered to `meters` (a USAGE_METER_ID filter) and, if given, to `account`, by group."""
    filters = [{"fieldName": "USAGE_METER_ID", "fieldValues": meters}]
    if account is not None:
        filters.append({"fieldName": "ACCOUNT_ID", "fieldValues": [account]})
    result = await call(client, "get_metrics", startTime=iso(start), endTime=iso(end), metricQueries=[{
        "id": "q", "name": "REVENUE", "aggregationPeriod": period, "groupBy": group, "filters": filters}])
    return {series["groupedBy"]["fieldValue"] if group else None: [D(v) for v in series["metricValues"]]
            for series in result["results"][0]["data"]}


async def test_entitlement_overage_is_revenue_of_its_features_meter_as_usage_accrues(client, clock) -> None:
    """Plan "Quota": tokens at 0.10 each, requests at 1.00 each, a 10.00 fee "platform" (IN_ARREARS), and the
    feature tokens_quota on the tokens meter (100 tokens a month) with an overage card "tokens_overage" at 0.333
    per token past the limit. Overage is usage revenue of the tokens meter: under its id, kept by a tokens filter,
    accrued as the usage passes the limit (Togai bills it as usage: an event's overageInEvent)."""
    tokens = (await call(client, "create_usage_meter", name="tokens", eventSchemaName="llm", aggregation="SUM",
                         computations=[{"computation": "tokens"}]))["id"]
    requests = (await call(client, "create_usage_meter", name="requests", eventSchemaName="llm",
                           aggregation="COUNT"))["id"]
    per_unit = {"pricingModel": "TIERED", "slabs": [{"order": 1, "startAfter": 0, "priceType": "PER_UNIT"}]}
    plan = await call(client, "create_price_plan", name="Quota", pricingCycleConfig={
        "interval": "MONTHLY", "gracePeriod": 1}, rateCards={
        "usageRateCards": [
            {"usageMeterId": tokens, "ratePlan": per_unit,
             "rateValues": [{"currency": "USD", "slabRates": [{"order": 1, "rate": "0.10"}]}]},
            {"usageMeterId": requests, "ratePlan": per_unit,
             "rateValues": [{"currency": "USD", "slabRates": [{"order": 1, "rate": "1.00"}]}]}],
        "fixedFeeRateCards": [{"id": "platform", "rateValues": [{"currency": "USD", "rate": "10"}]}],
        "billingEntitlementRateCards": [{"featureId": "tokens_quota", "usageMeterId": tokens,
                                         "featureConfigs": [{"featureCreditLimit": "100"}]}],
        "entitlementOverageRateCards": [{"name": "tokens_overage", "featureId": "tokens_quota", "ratePlan": per_unit,
                                         "rateValues": [{"currency": "USD", "slabRates": [
                                             {"order": 1, "rate": "0.333"}]}]}]})
    await call(client, "create_customer", id="c", name="C", account={
        "id": "acc", "name": "A", "pricePlanId": plan["id"], "effectiveFrom": iso(JAN)})
    clock.set(at(2026, 1, 7))
    for day, amount in ((2, "60"), (5, "70"), (6, "20")):  # 60, 130, 150 tokens by the end of each day
        await call(client, "ingest_event", event={"id": f"e{day}", "schemaName": "llm", "accountId": "acc",
                                                  "timestamp": iso(JAN + timedelta(days=day - 1, hours=12)),
                                                  "attributes": {"tokens": amount}})
    week = (JAN, at(2026, 1, 8))
    # tokens, R(t) = usage amount + overage amount for the tokens so far:
    #   2 Jan: 60 × 0.10 = 6.00, below the limit: no overage                          -> +6.00
    #   5 Jan: 130 × 0.10 = 13.00 (+7.00); overage 130 - 100 = 30 × 0.333 = 9.99       -> +16.99
    #   6 Jan: 150 × 0.10 = 15.00 (+2.00); overage 50 × 0.333 = 16.65 (+6.66)          -> +8.66
    # requests: one event a day, 1.00 each; platform (IN_ARREARS) only at the period's end
    by_day = {tokens: [D(0), D("6.00"), D(0), D(0), D("16.99"), D("8.66"), D(0)],
              requests: [D(0), D("1.00"), D(0), D(0), D("1.00"), D("1.00"), D(0)], "platform": [D(0)] * 7}

    # The open period: January's DRAFT so far is 15.00 + 16.65 + 3.00 + 10.00 = 44.65
    draft = await call(client, "get_invoice", accountId="acc")
    assert (draft["status"], draft["totalAmount"]) == ("DRAFT", "44.65")
    assert await metric(client, "REVENUE", *week, "DAY", "acc") == by_day  # no "tokens_overage" series
    assert await metric(client, "REVENUE", JAN, FEB, "MONTH", "acc") == {
        tokens: [D("31.65")], requests: [D("3.00")], "platform": [D("10.00")]}  # 15.00 + 16.65 under tokens
    assert (await metric(client, "REVENUE", JAN, FEB, "MONTH", "acc", None))[None] == [D("44.65")]
    assert await meter_revenue(client, *week, "DAY", [tokens]) == {None: by_day[tokens]}

    # February 2: January is DUE (a day of grace)
    clock.set(at(2026, 2, 2))
    (summary,) = (await call(client, "list_invoices", accountId="acc", status="DUE"))["data"]
    invoice = await call(client, "get_invoice", invoiceId=summary["id"])
    lines = {(line["type"], line["rateCardName"]): line for line in invoice["lineItems"]}
    overage = lines[("ENTITLEMENT_OVERAGE_AMOUNT", "tokens_overage")]
    # 150 tokens - 100 = 50 over the limit × 0.333 = 16.65, priced on the tokens meter's usage
    assert (overage["usageMeterId"], D(overage["quantity"]), overage["value"], overage["details"]["usage"]) == (
        tokens, D(50), "16.65", "150")
    assert {key: line["value"] for key, line in lines.items()} == {
        ("USAGE_RATE_CARD_AMOUNT", tokens): "15.00", ("USAGE_RATE_CARD_AMOUNT", requests): "3.00",  # named by meter
        ("ENTITLEMENT_OVERAGE_AMOUNT", "tokens_overage"): "16.65", ("FIXED_FEE_RATE_CARD_AMOUNT", "platform"): "10.00"}
    assert invoice["totalAmount"] == "44.65"

    # Grouped by USAGE_METER_ID the overage is under tokens, where its usage accrued (5 and 6 January) ...
    assert await metric(client, "REVENUE", *week, "DAY", "acc") == by_day
    last_days = await metric(client, "REVENUE", at(2026, 1, 30), FEB, "DAY", "acc")
    assert last_days == {tokens: [D(0), D(0)], requests: [D(0), D(0)], "platform": [D(0), D("10.00")]}
    month = await metric(client, "REVENUE", JAN, FEB, "MONTH", "acc")
    assert month == {tokens: [D("31.65")], requests: [D("3.00")], "platform": [D("10.00")]}
    # ... and the groups add up to the invoice: 31.65 + 3.00 + 10.00 = 44.65, as REVENUE not grouped
    assert sum(v[0] for v in month.values()) == D(invoice["totalAmount"])
    assert (await metric(client, "REVENUE", JAN, FEB, "MONTH", "acc", None))[None] == [D("44.65")]

    # Filtered to tokens: its usage card's line and the overage line on it, 15.00 + 16.65 = 31.65
    on_tokens = sum((D(line["value"]) for line in invoice["lineItems"] if line["usageMeterId"] == tokens), D(0))
    assert on_tokens == D("31.65")
    assert await meter_revenue(client, JAN, FEB, "MONTH", [tokens]) == {None: [on_tokens]}
    assert await meter_revenue(client, *week, "DAY", [tokens], "USAGE_METER_ID") == {tokens: by_day[tokens]}
    assert await meter_revenue(client, JAN, FEB, "MONTH", [tokens], "ACCOUNT_ID") == {"acc": [D("31.65")]}
    # Filtered to requests: 3.00, no overage (it is the tokens meter's); both meters: 34.65, no fee
    assert await meter_revenue(client, JAN, FEB, "MONTH", [requests], "USAGE_METER_ID") == {requests: [D("3.00")]}
    assert await meter_revenue(client, JAN, FEB, "MONTH", [tokens, requests]) == {None: [D("34.65")]}


async def test_overage_on_a_meter_no_usage_card_prices_accrues_with_that_meters_usage(client, clock) -> None:
    """Only an overage card prices tokens (1000 a month included, 0.02 per token past it): the meter's usage is
    read for the accrual all the same, and its revenue is under the meter."""
    tokens = (await call(client, "create_usage_meter", name="tokens", eventSchemaName="llm", aggregation="SUM",
                         computations=[{"computation": "tokens"}]))["id"]
    plan = await call(client, "create_price_plan", name="Quota only", pricingCycleConfig={
        "interval": "MONTHLY", "gracePeriod": 0}, rateCards={
        "billingEntitlementRateCards": [{"featureId": "tokens_quota", "usageMeterId": tokens,
                                         "featureConfigs": [{"featureCreditLimit": "1000"}]}],
        "entitlementOverageRateCards": [{"name": "tokens_overage", "featureId": "tokens_quota", "ratePlan": {
            "pricingModel": "TIERED", "slabs": [{"order": 1, "startAfter": 0, "priceType": "PER_UNIT"}]},
            "rateValues": [{"currency": "USD", "slabRates": [{"order": 1, "rate": "0.02"}]}]}]})
    await call(client, "create_customer", id="c", name="C", account={
        "id": "acc", "name": "A", "pricePlanId": plan["id"], "effectiveFrom": iso(JAN)})
    for event_id, day, amount in (("a", 10, "800"), ("b", 20, "500")):
        await call(client, "ingest_event", event={"id": event_id, "schemaName": "llm", "accountId": "acc",
                                                  "timestamp": iso(at(2026, 1, day, 12)),
                                                  "attributes": {"tokens": amount}})
    clock.set(FEB)
    (invoice,) = (await call(client, "list_invoices", accountId="acc", status="DUE"))["data"]
    # 800 + 500 = 1300 tokens, 300 past the limit × 0.02 = 6.00
    assert invoice["totalAmount"] == "6.00"
    # ISO weeks from Monday 29 Dec: 10 Jan (800 tokens, under the limit) adds nothing; the week of 19 Jan, where
    # the usage passes the limit, has the 6.00
    weekly = [D(0), D(0), D(0), D("6.00"), D(0)]
    assert await metric(client, "REVENUE", JAN, FEB, "WEEK", "acc") == {tokens: weekly}
    assert await meter_revenue(client, JAN, FEB, "WEEK", [tokens], "USAGE_METER_ID", "acc") == {tokens: weekly}


events = st.lists(st.tuples(st.integers(0, 10**6 - 1), st.integers(0, 500)), min_size=0, max_size=12)
HOUR_CHUNK = timedelta(days=12)  # 288 HOUR buckets: a series may have at most 300 points


async def revenue_over(client: Any, start: datetime, end: datetime, period: str, account: str,
                       group: str | None = "USAGE_METER_ID") -> tuple[list[datetime], dict[str | None, list[Decimal]]]:
    """REVENUE over [start, end) -> (bucket starts, series by group), queried in 12-day parts for HOUR buckets
    (a series has at most 300 points) and joined: revenue over [a, b) and [b, c) adds up to that over [a, c)."""
    timestamps: list[datetime] = []
    joined: dict[str | None, list[Decimal]] = {}
    lower = start
    while lower < end:
        upper = min(lower + HOUR_CHUNK, end) if period == "HOUR" else end
        only = [{"fieldName": "ACCOUNT_ID", "fieldValues": [account]}]
        result = await call(client, "get_metrics", startTime=iso(lower), endTime=iso(upper), metricQueries=[
            {"id": "q", "name": "REVENUE", "aggregationPeriod": period, "groupBy": group, "filters": only},
            {"id": "all", "name": "REVENUE", "aggregationPeriod": period, "filters": only}])  # always one series
        stamps = [datetime.fromisoformat(t) for t in result["results"][1]["data"][0]["timestamps"]]
        part = {series["groupedBy"]["fieldValue"] if group else None: [D(v) for v in series["metricValues"]]
                for series in result["results"][0]["data"]}
        for key in joined.keys() | part.keys():
            joined[key] = joined.get(key, [D(0)] * len(timestamps)) + part.get(key, [D(0)] * len(stamps))
        timestamps += stamps
        lower = upper
    return timestamps, joined


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(usage=events, period=st.sampled_from(["HOUR", "DAY", "WEEK", "MONTH"]),
       timing=st.sampled_from(["IN_ADVANCE", "IN_ARREARS"]), prorate=st.booleans(),
       start_hour=st.sampled_from([0, 0, 7, 20 * 24 + 13]), commitment=st.sampled_from([None, "12.34", "35"]),
       overage_limit=st.sampled_from([None, "0", "700"]))
async def test_usage_and_revenue_over_a_closed_period_equal_the_invoice(
    client, clock, usage: list[tuple[int, int]], period: str, timing: str, prorate: bool, start_hour: int,
    commitment: str | None, overage_limit: str | None,
) -> None:
    clock.set(JAN)
    plan, tokens, requests = await setup(client, timing=timing, prorate=prorate, commitment=commitment,
                                         overage_limit=overage_limit)
    account = f"p{next(_accounts)}"
    begin = JAN + timedelta(hours=start_hour)  # the first period [begin, FEB): partial unless begin is JAN
    await call(client, "create_customer", id=f"c_{account}", name="C", account={
        "id": account, "name": "A", "pricePlanId": plan, "effectiveFrom": iso(begin)})
    moments = [begin + (FEB - begin) * share / 10**6 for share, _ in usage]
    if usage:
        await call(client, "ingest_batch_events", events=[
            {"id": f"{account}-{i}", "schemaName": "llm", "accountId": account, "attributes": {"tokens": str(amount)},
             "timestamp": iso(moment)} for i, (moment, (_, amount)) in enumerate(zip(moments, usage, strict=True))])
    clock.set(datetime(2026, 2, 3, tzinfo=UTC))  # January is DUE (1 day of grace); February is an open DRAFT
    due = (await call(client, "list_invoices", accountId=account, status="DUE"))["data"]
    # January's invoice, and with IN_ADVANCE the advance invoice of January's fee issued at `begin`
    assert sorted(i["invoiceType"] for i in due) == (
        ["STANDARD", "STANDARD_ADVANCED"] if timing == "IN_ADVANCE" else ["STANDARD"])
    assert {i["startDate"] for i in due} == {begin.isoformat().replace("+00:00", "Z")}
    invoice = next(i for i in due if i["invoiceType"] == "STANDARD")
    full = await call(client, "get_invoice", invoiceId=invoice["id"])
    issued = [await call(client, "get_invoice", invoiceId=i["id"]) for i in due]
    usage_lines = [line for line in full["lineItems"] if line["type"] == "USAGE_RATE_CARD_AMOUNT"]
    assert {line["usageMeterId"]: D(line["quantity"]) for line in usage_lines} == {
        tokens: sum((D(a) for _, a in usage), D(0)), requests: D(len(usage))}
    # The overage line bills the tokens past the limit (not prorated in a partial period), at most 400, at 0.07
    overage_lines = [line for line in full["lineItems"] if line["type"] == "ENTITLEMENT_OVERAGE_AMOUNT"]
    if overage_limit is None:
        assert overage_lines == []
    else:
        (overage,) = overage_lines
        over = min(max(sum((D(a) for _, a in usage), D(0)) - D(overage_limit), D(0)), D(400))
        assert (overage["usageMeterId"], D(overage["quantity"]), D(overage["value"])) == (
            tokens, over, (over * D("0.07")).quantize(D("0.01"), ROUND_HALF_UP))
    # USAGE: HOUR buckets over a month would exceed the 300 points a series may have: the first 12 days there
    end = JAN + HOUR_CHUNK if period == "HOUR" else FEB
    quantities = await metric(client, "USAGE", JAN, end, period, account)
    in_range = [a for moment, (_, a) in zip(moments, usage, strict=True) if moment < end]
    assert sum(quantities.get(tokens, [D(0)])) == sum((D(a) for a in in_range), D(0))
    assert sum(quantities.get(requests, [D(0)])) == len(in_range)

    # REVENUE over the closed period (in 12-day queries for HOUR) is its invoices' total, to the cent ...
    total = sum((D(i["totalAmount"]) for i in issued), D(0))
    assert D(full["totalAmount"]) == D(full["subTotalAmount"]) + D(full["trueUpAmount"])
    _, revenue = await revenue_over(client, JAN, FEB, period, account, group=None)
    assert sum(revenue[None]) == total
    _, by_account = await revenue_over(client, JAN, FEB, period, account, "ACCOUNT_ID")
    assert {g: sum(v) for g, v in by_account.items()} == {account: total}
    # ... and grouped by USAGE_METER_ID each line is its own series: usage and overage lines under their meter's
    # id, the fee and the true-up by their rate card name ("platform", "minimum_commitment")
    timestamps, grouped = await revenue_over(client, JAN, FEB, period, account)
    by_group: dict[str, D] = {}
    for line in (line for i in issued for line in i["lineItems"]):  # IN_ADVANCE: January's fee, February's
        by_group[group_of(line)] = by_group.get(group_of(line), D(0)) + D(line["value"])
    assert {g: sum(v) for g, v in grouped.items()} == by_group
    # Filtered to one meter: the lines priced on its usage (the overage lines on tokens included)
    for meter in (tokens, requests):
        on_meter = sum((D(line["value"]) for line in full["lineItems"] if line["usageMeterId"] == meter), D(0))
        assert await meter_revenue(client, JAN, FEB, "MONTH", [meter], "ACCOUNT_ID", account) == \
            {account: [on_meter]}
    # The fee (prorated by time when asked: 10 × hours on the plan / 744 hours of January) falls in one bucket:
    # the one holding the period's start (IN_ADVANCE) or its last instant (IN_ARREARS) ...
    fee = next(line for i in issued for line in i["lineItems"] if line["rateCardName"] == "platform")
    hours = D((FEB - begin) // timedelta(hours=1)) if prorate else D(744)
    assert D(fee["value"]) == (D(10) * hours / D(744)).quantize(D("0.01"), ROUND_HALF_UP)
    fee_at = begin if timing == "IN_ADVANCE" else FEB - timedelta(microseconds=1)
    expected = [D(0)] * len(timestamps)
    # IN_ADVANCE: February's 10.00, on January's invoice, comes with January's fee
    expected[bisect_right(timestamps, fee_at) - 1] = D(fee["value"]) + (D(10) if timing == "IN_ADVANCE" else D(0))
    assert grouped["platform"] == expected
    # ... and the true-up, known at the period's end, in the last bucket
    if commitment is not None:
        assert grouped["minimum_commitment"] == [D(0)] * (len(timestamps) - 1) + [D(full["trueUpAmount"])]
    else:
        assert "minimum_commitment" not in grouped

    # The open February DRAFT: REVENUE over its period is what get_invoice shows it so far
    draft = await call(client, "get_invoice", accountId=account)
    assert draft["status"] == "DRAFT"
    march = datetime(2026, 3, 1, tzinfo=UTC)
    assert sum((await metric(client, "REVENUE", FEB, march, "MONTH", account, None))[None]) \
        == D(draft["totalAmount"])
    on_tokens = sum((D(line["value"]) for line in draft["lineItems"] if line["usageMeterId"] == tokens), D(0))
    assert await meter_revenue(client, FEB, march, "MONTH", [tokens], "ACCOUNT_ID", account) == \
        {account: [on_tokens]}


async def test_every_revenue_value_is_written_in_its_currencys_minor_unit(client, clock) -> None:
    """An empty bucket of a USD series is "0.00", as the amounts beside it are, not "0"."""
    plan, tokens, _ = await setup(client)
    await call(client, "create_customer", id="c", name="C", account={
        "id": "acc_units", "name": "A", "pricePlanId": plan, "effectiveFrom": iso(JAN)})
    await call(client, "ingest_event", event={"id": "u1", "schemaName": "llm", "accountId": "acc_units",
                                              "timestamp": iso(JAN + timedelta(days=1, hours=12)),
                                              "attributes": {"tokens": "80"}})
    clock.set(datetime(2026, 2, 5, tzinfo=UTC))
    result = await call(client, "get_metrics", startTime=iso(JAN), endTime=iso(JAN + timedelta(days=4)),
                        metricQueries=[{"id": "q", "name": "REVENUE", "aggregationPeriod": "DAY",
                                        "groupBy": "USAGE_METER_ID",
                                        "filters": [{"fieldName": "ACCOUNT_ID", "fieldValues": ["acc_units"]}]}])
    values = {series["groupedBy"]["fieldValue"]: series["metricValues"] for series in result["results"][0]["data"]}
    # tokens: 80 × 0.10 = 8.00 on 2 Jan; platform (IN_ARREARS) and requests: nothing in these four days
    assert values[tokens] == ["0.00", "8.00", "0.00", "0.00"]
    assert values["platform"] == ["0.00"] * 4


async def test_an_account_stored_in_xxx_before_it_was_refused_is_still_read_and_never_fails_the_others(
        client, clock, db) -> None:
    """XXX is refused as a currency now, but an account and its plan stored in it before keep their amounts (priced
    with two decimals then): every read over many accounts (REVENUE, list_invoices) and its own get_account answer."""
    plan, _, _ = await setup(client)
    for account_id in ("bad", "good"):
        await call(client, "create_customer", id=f"c_{account_id}", name="C", account={
            "id": account_id, "name": "A", "pricePlanId": plan, "effectiveFrom": iso(JAN)})
        await call(client, "ingest_event", event={
            "id": f"{account_id}2", "schemaName": "llm", "accountId": account_id,
            "timestamp": iso(JAN + timedelta(days=1, hours=12)), "attributes": {"tokens": "80"}})
    clock.set(datetime(2026, 2, 5, tzinfo=UTC))
    # Both Januaries close DUE: tokens 80 × 0.10 = 8.00, 1 request = the FLAT 5.00, platform 10.00
    assert [i["totalAmount"] for i in (await call(client, "list_invoices", status="DUE"))["data"]] == ["23.00"] * 2
    async with db.unit_of_work() as session:  # as stored when XXX was accepted
        await session.execute(text("UPDATE invoices SET currency = 'XXX' WHERE account_id = 'bad'"))
        await session.execute(text("UPDATE accounts SET invoice_currency = 'XXX' WHERE id = 'bad'"))

    assert sorted((i["accountId"], i["totalAmount"]) for i in (await call(client, "list_invoices", status="DUE"))[
        "data"]) == [("bad", "23.00"), ("good", "23.00")]
    assert (await call(client, "get_account", accountId="bad"))["invoiceCurrency"] == "XXX"
    revenue = await revenue_by_account(client)
    # good: requests' FLAT 5.00 from the first instant, tokens 8.00 on 2 Jan (80 × 0.10), the IN_ARREARS platform
    # fee 10.00 on 31 Jan: 23.00, its invoice's total
    assert revenue["good"] == [D("5.00"), D("8.00")] + [D(0)] * 28 + [D("10.00")]
    # bad: its plan does not price XXX, so its lines fall whole on the period's last day: 8.00 + 5.00 + 10.00
    assert revenue["bad"] == [D(0)] * 30 + [D("23.00")]


async def test_revenue_over_more_closed_invoices_than_a_statement_has_parameters(client, clock, db) -> None:
    """asyncpg sends at most 32,767 parameters in a statement: REVENUE reads the lines of every closed invoice
    of its range, and the plan associations behind them, in one statement each, whatever their number."""
    plan = await call(client, "create_price_plan", name="Platform", pricingCycleConfig={
        "interval": "MONTHLY", "gracePeriod": 1}, rateCards={"fixedFeeRateCards": [
            {"id": "platform", "rateValues": [{"currency": "USD", "rate": "23"}], "invoiceTiming": "IN_ARREARS"}]})
    await call(client, "create_customer", id="c", name="C", account={
        "id": "acc", "name": "A", "pricePlanId": plan["id"], "effectiveFrom": iso(JAN)})
    clock.set(datetime(2026, 2, 5, tzinfo=UTC))
    [invoice] = (await call(client, "list_invoices", accountId="acc", status="DUE"))["data"]
    assert invoice["totalAmount"] == "23.00"  # the platform fee, its one line
    copies = 33_000  # January invoices of 33,001 accounts, each on its own plan association
    async with db.unit_of_work() as session:
        conn = await raw_connection(session)
        await clone_rows(conn, "accounts", "t.id = 'acc'", {"id": "'acc_' || n", "name": "'A' || n"}, copies)
        await clone_rows(conn, "account_handles", "t.account_id = 'acc' AND t.kind = 'ID'",
                         {"handle": "'acc_' || n", "account_id": "'acc_' || n"}, copies)
        await clone_rows(conn, "plan_associations", "t.account_id = 'acc'", {"account_id": "'acc_' || n"}, copies)
        await clone_rows(conn, "invoices", f"t.id = '{invoice['id']}'", {
            "id": "'inv_' || n", "account_id": "'acc_' || n", "sequence_number": "t.sequence_number + n",
            "association_id": "(SELECT p.id FROM plan_associations p WHERE p.account_id = 'acc_' || n)"}, copies)
        await clone_rows(conn, "invoice_lines", f"t.invoice_id = '{invoice['id']}'", {"invoice_id": "'inv_' || n"}, copies)
        await conn.execute("ANALYZE accounts, account_handles, plan_associations, invoices, invoice_lines")
    # the customer's 33,001 accounts (one list), their invoices' lines and associations (two more):
    # 33,001 × 23.00 = 759,023.00
    result = await call(client, "get_metrics", startTime=iso(JAN), endTime=iso(FEB), metricQueries=[{
        "id": "q", "name": "REVENUE", "aggregationPeriod": "MONTH",
        "filters": [{"fieldName": "CUSTOMER_ID", "fieldValues": ["c"]}]}])
    assert result["results"][0]["data"][0]["metricValues"] == ["759023.00"]

    # The list is one array parameter, and the primary key of invoice_lines still finds one account's lines
    statements: list[tuple[str, Any]] = []

    def record(_conn: Any, _cursor: Any, statement: str, parameters: Any, _context: Any, _many: bool) -> None:
        statements.append((statement, parameters))

    event.listen(db.engine.sync_engine, "before_cursor_execute", record)
    try:
        one = await call(client, "get_metrics", startTime=iso(JAN), endTime=iso(FEB), metricQueries=[{
            "id": "q", "name": "REVENUE", "aggregationPeriod": "MONTH",
            "filters": [{"fieldName": "ACCOUNT_ID", "fieldValues": ["acc_7"]}]}])
    finally:
        event.remove(db.engine.sync_engine, "before_cursor_execute", record)
    assert one["results"][0]["data"][0]["metricValues"] == ["23.00"]
    sql, parameters = next((s, p) for s, p in statements if "FROM invoice_lines" in s)
    assert "invoice_lines.invoice_id = ANY ($1::TEXT[])" in sql and parameters == (["inv_7"],), (sql, parameters)
    async with db.unit_of_work() as session:
        explained = "\n".join(r[0] for r in await (await raw_connection(session)).fetch(f"EXPLAIN {sql}", *parameters))
    assert "Index Cond: ((invoice_id)::text = ANY" in explained and "pk_invoice_lines" in explained, explained
    assert "Seq Scan" not in explained, explained
