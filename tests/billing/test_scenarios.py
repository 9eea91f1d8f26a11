"""Billing stories driven through the MCP tools with a controllable clock, over several cycles.

Every amount is worked out by hand in the comments next to it.
"""

from __future__ import annotations

from typing import Any

from helpers import at, call, call_error, iso, tokens_meter


async def account(client: Any, account_id: str, plan_id: str | None = None, since: str | None = None,
                  currency: str = "USD") -> None:
    fields: dict[str, Any] = {"id": account_id, "name": account_id, "invoiceCurrency": currency}
    if plan_id:
        fields |= {"pricePlanId": plan_id, "effectiveFrom": since}
    await call(client, "create_customer", id=f"cust_{account_id}", name="Customer", account=fields)


async def usage(client: Any, account_id: str, when: str, tokens: str, event_id: str) -> dict[str, Any]:
    return await call(client, "ingest_event", event={
        "id": event_id, "schemaName": "llm", "timestamp": when, "accountId": account_id,
        "attributes": {"tokens": tokens}})


def tiered(meter_id: str, *slabs: tuple[str, str]) -> dict[str, Any]:
    """PER_UNIT TIERED usage card in USD: slabs (startAfter, rate)."""
    return {"usageMeterId": meter_id, "ratePlan": {"pricingModel": "TIERED", "slabs": [
        {"order": i, "startAfter": start, "priceType": "PER_UNIT"} for i, (start, _) in enumerate(slabs, start=1)]},
        "rateValues": [{"currency": "USD", "slabRates": [
            {"order": i, "rate": rate} for i, (_, rate) in enumerate(slabs, start=1)]}]}


def fee(name: str, amount: str, *, timing: str = "IN_ARREARS", prorate: bool = True) -> dict[str, Any]:
    return {"id": name, "rateValues": [{"currency": "USD", "rate": amount}], "invoiceTiming": timing,
            "enableProration": prorate}


async def invoices(client: Any, account_id: str, **filters: Any) -> list[dict[str, Any]]:
    page = await call(client, "list_invoices", accountId=account_id, pageSize=100, **filters)
    return page["data"]


async def test_month_ends_grace_period_and_late_events(client, clock) -> None:
    meter = await tokens_meter(client)
    plan = await call(client, "create_price_plan", name="Pro", pricingCycleConfig={
        "interval": "MONTHLY", "startOffset": {"dayOffset": "1", "monthOffset": "NIL"}, "gracePeriod": 3},
        rateCards={"usageRateCards": [tiered(meter, ("0", "0.01"), ("10000", "0.005"))],
                   "fixedFeeRateCards": [fee("platform", "49")]},
        minimumCommitment={"rateValues": [{"currency": "USD", "rate": "100"}]})
    await account(client, "acme", plan["id"], iso(2026, 1, 1))

    # The fee is on January's DRAFT from its first instant: 49.00 + true-up 51.00 = 100.00
    draft = await call(client, "get_invoice", accountId="acme")
    assert (draft["status"], draft["startDate"], draft["endDate"]) == ("DRAFT", iso(2026, 1, 1), iso(2026, 2, 1))
    assert (draft["subTotalAmount"], draft["trueUpAmount"], draft["totalAmount"]) == ("49.00", "51.00", "100.00")

    # The last microsecond of January counts in January; midnight of 1 February starts February.
    await usage(client, "acme", "2026-01-31T23:59:59.999999Z", "12000", "e1")
    await usage(client, "acme", "2026-02-01T00:00:00Z", "5000", "e2")

    clock.set(at(2026, 2, 3, 12))  # February, and January is in its 3-day grace period (until 4 Feb 00:00)
    listed = await invoices(client, "acme")
    assert [(i["startDate"], i["status"]) for i in listed] == [(iso(2026, 2, 1), "DRAFT"), (iso(2026, 1, 1), "DRAFT")]
    late = await usage(client, "acme", "2026-01-15T10:00:00Z", "1000", "e3")  # dated in January, within grace
    assert late["status"] == "ACCEPTED"

    clock.set(at(2026, 2, 4))  # grace ends: January becomes DUE on the next read
    jan = (await invoices(client, "acme", status="DUE"))[0]
    # January: 13000 tokens = 10000 × 0.01 = 100.00 + 3000 × 0.005 = 15.00 -> 115.00; fee 49.00; subtotal 164.00
    # >= the 100.00 commitment, so the true-up is 0.00
    assert (jan["sequenceId"], jan["totalAmount"], jan["trueUpAmount"], jan["invoiceDate"]) == (
        "INV-000001", "164.00", "0.00", iso(2026, 2, 4))
    too_late = await usage(client, "acme", "2026-01-20T00:00:00Z", "999999", "e4")
    assert too_late["status"] == "NOT_BILLED_CYCLE_CLOSED"  # stored, reported, not billed
    full = await call(client, "get_invoice", invoiceId=jan["id"])
    assert full["totalAmount"] == "164.00"
    usage_line = full["lineItems"][0]
    assert (usage_line["type"], usage_line["quantity"], usage_line["value"], usage_line["usageMeterId"]) == (
        "USAGE_RATE_CARD_AMOUNT", "13000", "115.00", meter)
    assert usage_line["usagePeriod"] == {"start": iso(2026, 1, 1), "end": iso(2026, 2, 1)}
    assert [(s["quantity"], s["valuePerQuantity"], s["value"]) for s in usage_line["lineItems"]] == [
        ("10000", "0.01", "100.00"), ("3000", "0.005", "15.000")]
    assert full["usageInfo"] == [{"usageMeterId": meter, "quantity": "13000", "usagePeriod": usage_line["usagePeriod"]}]

    clock.set(at(2026, 3, 10))
    feb = (await invoices(client, "acme", status="DUE"))[0]
    # February: 5000 × 0.01 = 50.00 + 49.00 = 99.00, below the 100.00 commitment: true-up 1.00, total 100.00
    assert (feb["sequenceId"], feb["subTotalAmount"], feb["trueUpAmount"], feb["totalAmount"]) == (
        "INV-000002", "99.00", "1.00", "100.00")
    financial = (await call(client, "get_account", accountId="acme"))["financial"]
    assert financial["outstanding"] == "264.00"  # 164.00 + 100.00 DUE
    assert financial["accruedCharges"] == "100.00"  # March so far: 49.00 fee + 51.00 true-up
    assert financial["currentCycle"] == {"start": iso(2026, 3, 1), "end": iso(2026, 4, 1)}
    assert financial["pricePlan"]["name"] == "Pro"

    paid = await call(client, "update_invoice_status", invoiceId=jan["id"], status="PAID")
    assert paid["status"] == "PAID"
    assert (await call(client, "update_invoice_status", invoiceId=jan["id"], status="PAID"))["status"] == "PAID"
    assert "final" in await call_error(client, "update_invoice_status", invoiceId=jan["id"], status="VOID")
    march = await call(client, "get_invoice", accountId="acme")
    error = await call_error(client, "update_invoice_status", invoiceId=march["id"], status="PAID")
    assert "DRAFT" in error and "2026-04-04" in error
    assert "PAID or VOID" in await call_error(client, "update_invoice_status", invoiceId=feb["id"], status="DUE")
    voided = await call(client, "update_invoice_status", invoiceId=feb["id"], status="VOID")
    assert (voided["status"], voided["amountDue"]) == ("VOID", "0.00")
    financial = (await call(client, "get_account", accountId="acme"))["financial"]
    assert financial["outstanding"] == "0.00"


async def test_leap_day_cycles_and_a_prorated_first_period(client, clock) -> None:
    clock.set(at(2028, 2, 10))
    meter = await tokens_meter(client)
    plan = await call(client, "create_price_plan", name="Leap", pricingCycleConfig={
        "interval": "MONTHLY", "startOffset": {"dayOffset": "29"}, "gracePeriod": 0},
        rateCards={"usageRateCards": [tiered(meter, ("0", "0.10"))], "fixedFeeRateCards": [fee("seat", "31")]})
    await account(client, "leap", plan["id"], iso(2028, 2, 15))
    await usage(client, "leap", "2028-02-28T23:59:59Z", "10", "a")  # before the leap day: first period
    await usage(client, "leap", "2028-02-29T00:00:00Z", "20", "b")  # the leap day starts the next cycle
    clock.set(at(2028, 3, 1))
    listed = await invoices(client, "leap")
    assert [(i["startDate"], i["endDate"], i["status"]) for i in listed] == [
        (iso(2028, 2, 29), iso(2028, 3, 29), "DRAFT"), (iso(2028, 2, 15), iso(2028, 2, 29), "DUE")]
    first = listed[1]
    # [15 Feb, 29 Feb) is 14 of the cycle's 31 days (29 Jan -> 29 Feb 2028): 31 × 14/31 = 14.00 fee;
    # usage 10 × 0.10 = 1.00; total 15.00
    assert first["totalAmount"] == "15.00"
    # the second period: 20 × 0.10 = 2.00 + the full 31.00 fee = 33.00 (as of now)
    assert listed[0]["totalAmount"] == "33.00"
    clock.set(at(2028, 3, 29))
    listed = await invoices(client, "leap", status="DUE")
    assert [(i["startDate"], i["totalAmount"], i["sequenceId"]) for i in listed] == [
        (iso(2028, 2, 29), "33.00", "INV-000002"), (iso(2028, 2, 15), "15.00", "INV-000001")]


async def test_mid_cycle_plan_change(client, clock) -> None:
    meter = await tokens_meter(client)
    cycle = {"interval": "MONTHLY", "gracePeriod": 1}
    starter = await call(client, "create_price_plan", name="Starter", pricingCycleConfig=cycle, rateCards={
        "usageRateCards": [tiered(meter, ("0", "0.01"))], "fixedFeeRateCards": [fee("base", "31")]})
    scale = await call(client, "create_price_plan", name="Scale", pricingCycleConfig=cycle, rateCards={
        "usageRateCards": [tiered(meter, ("0", "0.005"))], "fixedFeeRateCards": [fee("base", "62")]})
    await account(client, "acc", starter["id"], iso(2026, 1, 1))
    await usage(client, "acc", "2026-01-10T00:00:00Z", "1000", "before")
    clock.set(at(2026, 1, 20))
    january_draft = await call(client, "get_invoice", accountId="acc")
    # Change at 16 Jan 12:00 (in the past, but in an open period): exactly half of January's 31 days
    updated = await call(client, "update_account", accountId="acc", pricePlanId=scale["id"],
                         effectiveFrom="2026-01-16T12:00:00Z")
    assert updated["id"] == "acc"
    await usage(client, "acc", "2026-01-25T00:00:00Z", "2000", "after")
    financial = (await call(client, "get_account", accountId="acc"))["financial"]
    assert financial["pricePlan"]["id"] == scale["id"]
    assert financial["currentCycle"] == {"start": "2026-01-16T12:00:00Z", "end": iso(2026, 2, 1)}
    listed = await invoices(client, "acc")
    assert [(i["pricePlanName"], i["startDate"], i["endDate"]) for i in listed] == [
        ("Scale", "2026-01-16T12:00:00Z", iso(2026, 2, 1)), ("Starter", iso(2026, 1, 1), "2026-01-16T12:00:00Z")]
    assert listed[1]["id"] == january_draft["id"]  # the old plan's DRAFT keeps its id, now ending at the change
    # Starter [1 Jan, 16 Jan 12:00): fee 31 × 1/2 = 15.50; usage 1000 × 0.01 = 10.00; total 25.50
    # Scale [16 Jan 12:00, 1 Feb): fee 62 × 1/2 = 31.00; usage 2000 × 0.005 = 10.00; total 41.00
    assert [i["totalAmount"] for i in listed] == ["41.00", "25.50"]
    # the old plan's partial period closes at the change + 1 day of grace, already passed: a read closes it
    assert [i["status"] for i in listed] == ["DRAFT", "DUE"]
    assert listed[1]["invoiceDate"] == "2026-01-17T12:00:00Z"

    error = await call_error(client, "update_account", accountId="acc", pricePlanId=starter["id"],
                             effectiveFrom="2026-01-10T00:00:00Z")
    assert "effectiveFrom" in error and "already invoiced" in error
    # Re-attaching the plan in effect (a retried call) changes nothing
    await call(client, "update_account", accountId="acc", pricePlanId=scale["id"], effectiveFrom="2026-01-16T12:00:00Z")
    assert [i["id"] for i in await invoices(client, "acc")] == [i["id"] for i in listed]


async def test_attach_checks_currency_and_plan(client) -> None:
    plan = await call(client, "create_price_plan", name="UsdOnly", pricingCycleConfig={"interval": "MONTHLY"},
                      rateCards={"fixedFeeRateCards": [fee("f", "1")]})
    error = await call_error(client, "create_customer", id="c", name="C", account={
        "id": "eur", "name": "E", "invoiceCurrency": "EUR", "pricePlanId": plan["id"]})
    assert "account.pricePlanId" in error and "does not support EUR" in error
    error = await call_error(client, "create_customer", id="c", name="C", account={
        "id": "x", "name": "X", "pricePlanId": "pp_missing"})
    assert "pp_missing" in error and "list_price_plans" in error
    await account(client, "usd")
    assert "effectiveFrom: '1999-12-31T23:59:59' is out of the range billing computes with" in await call_error(
        client, "update_account", accountId="usd", pricePlanId=plan["id"], effectiveFrom="1999-12-31T23:59:59")
    assert "no open billing period" in await call_error(client, "get_invoice", accountId="usd")
    assert "list_invoices" in await call_error(client, "get_invoice", invoiceId="inv_nope")
    assert "either invoiceId" in await call_error(client, "get_invoice")


async def test_a_server_that_was_down_bills_every_missed_cycle_on_read(client, clock) -> None:
    plan = await call(client, "create_price_plan", name="Weekly", pricingCycleConfig={
        "interval": "WEEKLY", "startOffset": {"dayOffset": "1"}, "gracePeriod": 0},
        rateCards={"fixedFeeRateCards": [fee("w", "7")]})
    await account(client, "w", plan["id"], iso(2026, 1, 5))  # a Monday
    clock.set(at(2026, 2, 2, 9))  # four weeks later, nothing ran in between
    listed = await invoices(client, "w")
    assert [(i["startDate"], i["status"], i["sequenceId"]) for i in listed] == [
        (iso(2026, 2, 2), "DRAFT", None), (iso(2026, 1, 26), "DUE", "INV-000004"),
        (iso(2026, 1, 19), "DUE", "INV-000003"), (iso(2026, 1, 12), "DUE", "INV-000002"),
        (iso(2026, 1, 5), "DUE", "INV-000001")]
    page = await call(client, "list_invoices", accountId="w", pageSize=2)
    rest = await call(client, "list_invoices", accountId="w", pageSize=2, nextToken=page["nextToken"])
    assert [i["id"] for i in page["data"] + rest["data"]] == [i["id"] for i in listed[:4]]
    window = await call(client, "list_invoices", startTime=iso(2026, 1, 13), endTime=iso(2026, 1, 20))
    assert [i["startDate"] for i in window["data"]] == [iso(2026, 1, 19), iso(2026, 1, 12)]
    by_customer = await call(client, "list_invoices", customerId="cust_w", status="DRAFT")
    assert [i["startDate"] for i in by_customer["data"]] == [iso(2026, 2, 2)]


async def test_credit_grant_cards_pay_part_of_the_invoice(client, clock) -> None:
    plan = await call(client, "create_price_plan", name="WithCredits", pricingCycleConfig={
        "interval": "MONTHLY", "gracePeriod": 2}, rateCards={
        "fixedFeeRateCards": [fee("base", "50")],
        "creditGrantRateCards": [{"id": "welcome_credit", "type": "ONE_TIME",
                                  "grantDetails": {"priority": 0, "expiryType": "NO_EXPIRY"},
                                  "rateDetails": {"currencySlabRateDetails": [{"currency": "USD", "creditAmount": "20"}]}}]})
    await account(client, "cr", plan["id"], iso(2026, 1, 1))
    clock.set(at(2026, 2, 3))  # January is DUE
    jan = (await invoices(client, "cr", status="DUE"))[0]
    # total 50.00; the 20.00 welcome credit (granted when the first period opened) pays part: 30.00 left to pay
    assert (jan["totalAmount"], jan["creditsApplied"], jan["amountDue"]) == ("50.00", "20.00", "30.00")
    financial = (await call(client, "get_account", accountId="cr"))["financial"]
    assert financial["outstanding"] == "30.00"
    voided = await call(client, "update_invoice_status", invoiceId=jan["id"], status="VOID")
    assert (voided["creditsApplied"], voided["amountDue"]) == ("0.00", "0.00")  # the credit went back
