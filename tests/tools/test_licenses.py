"""update_license and license (seat) rate cards through a real MCP client, with the arithmetic in comments.

The story: Acme and Globex join on 1 April 2026 (a 30-day month) with 5 seats each at 10 USD a seat; on the
10th both schedule 3 more seats from the 16th. Acme's plan prorates seats, Globex's charges the month's
highest count.
"""

from __future__ import annotations

from typing import Any

from conftest import row_counts
from helpers import at, call, call_error, iso
from togai_engine.common.clock import FixedClock

APR_1, APR_16, MAY_1, JUN_1 = iso(2026, 4, 1), iso(2026, 4, 16), iso(2026, 5, 1), iso(2026, 6, 1)


def seat_card(*, prorate: bool, model: str = "TIERED", slabs: tuple[tuple[str, str], ...] = (("0", "10"),),
              max_quantity: int | None = 20) -> dict[str, Any]:
    card: dict[str, Any] = {
        "id": "seats", "displayName": "Seats", "enableProration": prorate,
        "ratePlan": {"pricingModel": model, "slabs": [
            {"order": i, "startAfter": start, "priceType": "PER_UNIT"} for i, (start, _) in enumerate(slabs, 1)]},
        "rateValues": [{"currency": "USD", "slabRates": [{"order": i, "rate": rate}
                                                         for i, (_, rate) in enumerate(slabs, 1)]}]}
    if max_quantity is not None:
        card["config"] = {"maxQuantity": max_quantity}
    return card


def seat_plan(name: str, **card: Any) -> dict[str, Any]:
    return {"name": name, "pricingCycleConfig": {"interval": "MONTHLY", "gracePeriod": 0},
            "rateCards": {"licenseRateCards": [seat_card(**card)]}}


async def onboard(client: Any, account_id: str, plan_id: str, since: str = APR_1) -> None:
    await call(client, "create_customer", id=f"c_{account_id}", name=account_id, account={
        "id": account_id, "name": account_id, "pricePlanId": plan_id, "effectiveFrom": since})


async def draft_total(client: Any, account_id: str) -> str:
    return str((await call(client, "get_invoice", accountId=account_id))["totalAmount"])


async def april(client: Any, clock: FixedClock) -> dict[str, str]:
    clock.set(at(2026, 4, 1))
    prorated = await call(client, "create_price_plan", **seat_plan("Seats prorated", prorate=True))
    whole = await call(client, "create_price_plan", **seat_plan("Seats at the highest count", prorate=False))
    await onboard(client, "acme", prorated["id"])
    await onboard(client, "globex", whole["id"])
    return {"prorated": prorated["id"], "whole": whole["id"]}


async def test_seats_added_mid_cycle_with_and_without_proration(client, clock) -> None:
    await april(client, clock)
    for account in ("acme", "globex"):
        first = await call(client, "update_license", accountId=account, licenseId="seats", quantity=5)
        assert (first["quantity"], first["currentQuantity"], first["maxQuantity"]) == (5, 5, 20)
        assert await draft_total(client, account) == "50.00"  # 5 × 10 for the whole month so far

    clock.set(at(2026, 4, 10))  # on the 10th, 3 more seats from the 16th (RELATIVE)
    for account in ("acme", "globex"):
        more = await call(client, "update_license", accountId=account, licenseId="seats", quantity=3,
                          updateType="RELATIVE", effectiveFrom=APR_16)
        assert (more["quantity"], more["currentQuantity"]) == (8, 5)  # 8 from the 16th; still 5 now
        assert [(c["effectiveFrom"], c["updateType"], c["requestedQuantity"], c["quantity"])
                for c in more["timeline"]] == [(APR_1, "ABSOLUTE", 5, 5), (APR_16, "RELATIVE", 3, 8)]
    # The DRAFT follows at once. Acme, prorated: 5 × 10 × 15/30 = 25 + 8 × 10 × 15/30 = 40 -> 65.00
    # (= 5 × 10 + 3 × 10 × 15/30). Globex: the month's highest count, 8 × 10 = 80.00
    assert (await draft_total(client, "acme"), await draft_total(client, "globex")) == ("65.00", "80.00")

    clock.set(at(2026, 5, 1))  # April closes (no grace period)
    (acme_april,) = (await call(client, "list_invoices", accountId="acme", status="DUE"))["data"]
    invoice = await call(client, "get_invoice", invoiceId=acme_april["id"])
    (line,) = invoice["lineItems"]
    assert (invoice["totalAmount"], line["type"], line["quantity"], line["value"]) == (
        "65.00", "LICENSE_RATE_CARD_AMOUNT", "8", "65.00")
    assert [(s["type"], s["quantity"], s["value"], s["usagePeriod"]["start"]) for s in line["lineItems"]] == [
        ("LICENSE_SPAN_AMOUNT", "5", "25.0000000000", APR_1), ("LICENSE_SPAN_AMOUNT", "8", "40.0000000000", APR_16)]
    (globex_april,) = (await call(client, "list_invoices", accountId="globex", status="DUE"))["data"]
    assert globex_april["totalAmount"] == "80.00"
    # May holds 8 seats throughout: 80.00 on both plans
    assert (await draft_total(client, "acme"), await draft_total(client, "globex")) == ("80.00", "80.00")
    # REVENUE over April is the invoice's total, the seats included
    revenue = await call(client, "get_metrics", startTime=APR_1, endTime=MAY_1, metricQueries=[{
        "id": "r", "name": "REVENUE", "aggregationPeriod": "MONTH",
        "filters": [{"fieldName": "ACCOUNT_ID", "fieldValues": ["acme"]}]}])
    assert revenue["results"][0]["data"][0]["metricValues"] == ["65.00"]


async def test_tiered_and_volume_over_seats(client, clock) -> None:
    clock.set(at(2026, 4, 1))
    slabs = (("0", "10"), ("5", "6"))  # seats 1-5 at 10, above 5 at 6
    for model in ("TIERED", "VOLUME"):
        plan = await call(client, "create_price_plan", **seat_plan(model, prorate=False, model=model, slabs=slabs))
        await onboard(client, model.lower(), plan["id"])
        await call(client, "update_license", accountId=model.lower(), licenseId="seats", quantity=8)
    # TIERED: 5 × 10 = 50 + 3 × 6 = 18 -> 68.00 ; VOLUME: all 8 seats at the second slab's 6 -> 48.00
    assert (await draft_total(client, "tiered"), await draft_total(client, "volume")) == ("68.00", "48.00")


async def test_absolute_and_relative_changes_and_an_idempotent_retry(client, clock) -> None:
    await april(client, clock)
    await call(client, "update_license", accountId="acme", licenseId="seats", quantity=5)
    # changes at the same instant apply in the order they are made: 5, then +3 -> 8
    same_instant = await call(client, "update_license", accountId="acme", licenseId="seats", quantity=3,
                              updateType="RELATIVE")
    assert [c["quantity"] for c in same_instant["timeline"]] == [5, 8]
    retry = {"accountId": "acme", "licenseId": "seats", "quantity": -3, "updateType": "RELATIVE",
             "effectiveFrom": iso(2026, 4, 21), "idempotencyKey": "remove-3"}
    first = await call(client, "update_license", **retry)
    again = await call(client, "update_license", **retry)  # a retry with the key changes nothing
    assert first == again
    assert [c["quantity"] for c in again["timeline"]] == [5, 8, 5]
    reused = await call_error(client, "update_license", **{**retry, "quantity": -4})
    assert "idempotencyKey 'remove-3' was used for another change" in reused
    # an ABSOLUTE change before it: the later RELATIVE one now counts from 12 (12 - 3 = 9)
    moved = await call(client, "update_license", accountId="acme", licenseId="seats", quantity=12,
                       effectiveFrom=iso(2026, 4, 11))
    assert [(c["effectiveFrom"], c["quantity"]) for c in moved["timeline"]] == [
        (APR_1, 5), (APR_1, 8), (iso(2026, 4, 11), 12), (iso(2026, 4, 21), 9)]
    # 8 × 10 × 10/30 = 26.666.. + 12 × 10 × 10/30 = 40 + 9 × 10 × 10/30 = 30 -> 96.666.. = 96.67
    assert await draft_total(client, "acme") == "96.67"


async def test_refusals_name_the_field_and_the_fix(client, clock) -> None:
    ids = await april(client, clock)
    await call(client, "update_license", accountId="acme", licenseId="seats", quantity=5)

    unknown = await call_error(client, "update_license", accountId="acme", licenseId="editors", quantity=1)
    assert "licenseId" in unknown and "no license rate card 'editors'" in unknown and "its license ids: seats" in unknown
    bare = await call(client, "create_price_plan", name="No seats", pricingCycleConfig={"interval": "MONTHLY"})
    await onboard(client, "initech", bare["id"])
    assert "it has no licenseRateCards" in await call_error(
        client, "update_license", accountId="initech", licenseId="seats", quantity=1)

    negative = await call_error(client, "update_license", accountId="acme", licenseId="seats", quantity=-6,
                                updateType="RELATIVE")
    assert "quantity" in negative and "-1 seats" in negative and "cannot be negative" in negative
    too_many = await call_error(client, "update_license", accountId="acme", licenseId="seats", quantity=21)
    assert "quantity" in too_many and "config.maxQuantity 20" in too_many and "21 seats" in too_many
    # a later change that the new one would push past the limit is named with its instant
    await call(client, "update_license", accountId="acme", licenseId="seats", quantity=10, updateType="RELATIVE",
               effectiveFrom=iso(2026, 4, 20))
    later = await call_error(client, "update_license", accountId="acme", licenseId="seats", quantity=11,
                             effectiveFrom=iso(2026, 4, 5))
    assert "21 seats of 'seats' from 2026-04-20T00:00:00+00:00 (a later change)" in later

    early = await call_error(client, "update_license", accountId="acme", licenseId="seats", quantity=1,
                             effectiveFrom=iso(2026, 3, 1))
    assert "effectiveFrom" in early and "no price plan in effect" in early
    far = await call_error(client, "update_license", accountId="acme", licenseId="seats", quantity=1,
                           effectiveFrom=iso(2027, 6, 1))
    assert "effectiveFrom" in far and "366 days" in far

    clock.set(at(2026, 5, 2))  # April is invoiced DUE: its seats are final
    invoiced = await call_error(client, "update_license", accountId="acme", licenseId="seats", quantity=7,
                                effectiveFrom=iso(2026, 4, 25))
    assert "effectiveFrom" in invoiced and "already invoiced (DUE)" in invoiced and "credit note" in invoiced
    # May's invoice is untouched by the refusals: 15 seats (5 + 10 from the 20th) all month, 150.00
    assert await draft_total(client, "acme") == "150.00"
    assert ids["prorated"]


async def test_a_plan_that_allows_fewer_seats_than_the_account_holds_is_refused(client, clock, db) -> None:
    """A license card's maxQuantity holds under every plan: switching to a plan whose card allows fewer seats
    than the account holds from the switch on is refused, not billed past its limit."""
    await april(client, clock)
    await call(client, "update_license", accountId="acme", licenseId="seats", quantity=15)
    small = await call(client, "create_price_plan", **seat_plan("Ten seats at most", prorate=True, max_quantity=10))
    counts = await row_counts(db)
    refused = await call_error(client, "update_account", accountId="acme", pricePlanId=small["id"],
                               effectiveFrom=MAY_1)
    assert "pricePlanId" in refused and "15 seats of 'seats' from 2026-05-01T00:00:00+00:00" in refused
    assert "config.maxQuantity 10" in refused and "update_license" in refused
    assert await row_counts(db) == counts  # nothing written
    # Lowering the seats from the switch first (the current plan allows 10) lets the switch through
    await call(client, "update_license", accountId="acme", licenseId="seats", quantity=10, effectiveFrom=MAY_1)
    await call(client, "update_account", accountId="acme", pricePlanId=small["id"], effectiveFrom=MAY_1)
    # April is still priced at 15 seats: 15 × 10 = 150.00
    assert await draft_total(client, "acme") == "150.00"


async def test_a_version_that_allows_fewer_seats_than_an_account_holds_is_not_finalized(client, clock, db) -> None:
    """A version migration is a plan change: it may not move an account onto a limit its seats exceed."""
    ids = await april(client, clock)
    clock.set(at(2026, 4, 10))
    await call(client, "update_license", accountId="acme", licenseId="seats", quantity=15)
    await call(client, "update_price_plan", pricePlanId=ids["prorated"],
               rateCards={"licenseRateCards": [seat_card(prorate=True, max_quantity=10)]})
    counts = await row_counts(db)
    refused = await call_error(client, "finalize_price_plan", pricePlanId=ids["prorated"], migrationMode="NEXT_CYCLE")
    assert "migrationMode" in refused and "account 'acme' holds 15 seats of 'seats' from 2026-05-01" in refused
    assert "config.maxQuantity 10" in refused and "update_price_plan" in refused
    assert await row_counts(db) == counts  # nothing written: the DRAFT is still a DRAFT
    # with the seats lowered from May (the month the migration starts), it goes through
    await call(client, "update_license", accountId="acme", licenseId="seats", quantity=10, effectiveFrom=MAY_1)
    result = await call(client, "finalize_price_plan", pricePlanId=ids["prorated"], migrationMode="NEXT_CYCLE")
    assert [(m["accountId"], m["effectiveFrom"]) for m in result["migratedAccounts"]] == [("acme", MAY_1)]
    # April keeps version 1: 0 seats for 9 days, then 15 seats for 21 of 30: 15 × 10 × 21/30 = 105.00
    assert await draft_total(client, "acme") == "105.00"


async def test_a_seat_change_stays_within_every_plan_it_reaches(client, clock) -> None:
    """A change under one plan that carries into a later plan is checked against that plan's limit too."""
    await april(client, clock)
    small = await call(client, "create_price_plan", **seat_plan("Ten seats at most", prorate=True, max_quantity=10))
    await call(client, "update_license", accountId="acme", licenseId="seats", quantity=5)
    await call(client, "update_account", accountId="acme", pricePlanId=small["id"], effectiveFrom=MAY_1)
    # 15 seats from the 16th is within April's plan (20) but carries into May's (10)
    refused = await call_error(client, "update_license", accountId="acme", licenseId="seats", quantity=15,
                               effectiveFrom=APR_16)
    assert "quantity" in refused and "15 seats of 'seats' from 2026-05-01T00:00:00+00:00" in refused
    assert "'Ten seats at most'" in refused and "config.maxQuantity 10" in refused
    # ...and a later change back within the limit by May makes it fit
    await call(client, "update_license", accountId="acme", licenseId="seats", quantity=10, effectiveFrom=MAY_1)
    fits = await call(client, "update_license", accountId="acme", licenseId="seats", quantity=15,
                      effectiveFrom=APR_16, idempotencyKey="more-then-less")
    assert [c["quantity"] for c in fits["timeline"]] == [5, 15, 10]
    # April: 5 × 10 × 15/30 = 25 + 15 × 10 × 15/30 = 75 -> 100.00
    assert await draft_total(client, "acme") == "100.00"


async def test_an_inline_plan_with_unsupported_license_fields_is_refused(client) -> None:
    advance = seat_plan("Advance", prorate=True)
    advance["rateCards"]["licenseRateCards"][0]["invoiceTiming"] = "IN_ADVANCE"
    message = await call_error(client, "create_price_plan", **advance)
    assert "rateCards.licenseRateCards[0].invoiceTiming" in message and "IN_ARREARS" in message
    refund = seat_plan("Refund", prorate=True)
    refund["rateCards"]["licenseRateCards"][0]["proratedRefundMode"] = "CREDITS"
    assert "rateCards.licenseRateCards[0].proratedRefundMode" in await call_error(
        client, "create_price_plan", **refund)


async def test_the_lab_prices_seats_as_the_invoices_do(client, clock) -> None:
    ids = await april(client, clock)
    await call(client, "update_license", accountId="acme", licenseId="seats", quantity=5)
    await call(client, "update_license", accountId="acme", licenseId="seats", quantity=3, updateType="RELATIVE",
               effectiveFrom=APR_16)
    clock.set(at(2026, 5, 10))
    await call(client, "list_invoices", accountId="acme")  # a read catches up: April becomes DUE
    candidate = seat_plan("Candidate at the highest count", prorate=False)
    result = await call(client, "simulate_price_plan", candidates=[ids["prorated"], candidate], accountIds=["acme"],
                        startTime=APR_1, endTime=JUN_1)
    rows = [(c["startDate"], c["status"], c["actual"], [a["amount"] for a in c["candidates"]])
            for c in result["accounts"][0]["cycles"]]
    # Its own plan reproduces April's DUE 65.00 and May's DRAFT (8 seats: 80.00); the candidate charges
    # April's highest count, 8 × 10 = 80.00, and May 80.00
    assert rows == [(APR_1, "DUE", "65.00", ["65.00", "80.00"]), (MAY_1, "DRAFT", "80.00", ["80.00", "80.00"])]
    quote = await call(client, "calculate_revenue", pricePlanId=ids["prorated"], usage={}, licenses={"seats": 8})
    assert (quote["total"], quote["licenseRateCards"][0]["quantity"], quote["licenseRateCards"][0]["amount"]) == (
        "80.00", 8, "80.00")


async def test_a_quote_for_more_seats_than_the_card_allows_is_refused(client, clock) -> None:
    """update_license never lets an account hold more than config.maxQuantity seats, so no invoice prices more:
    a quote for more is refused, naming the license and its limit, rather than pricing seats it ignores the
    limit of."""
    ids = await april(client, clock)
    at_limit = await call(client, "calculate_revenue", pricePlanId=ids["prorated"], usage={}, licenses={"seats": 20})
    assert at_limit["total"] == "200.00"  # 20 seats × 10 for the whole cycle
    error = await call_error(client, "calculate_revenue", pricePlanId=ids["prorated"], usage={},
                             licenses={"seats": 21})
    assert "licenses.seats" in error and "config.maxQuantity 20" in error and "21" in error
    inline = await call_error(client, "calculate_revenue", usage={}, licenses={"seats": 30},
                              pricePlan=seat_plan("Inline seats", prorate=False, max_quantity=25))
    assert "licenses.seats" in inline and "config.maxQuantity 25" in inline


async def test_list_price_plans_counts_license_cards_as_list_rate_cards_lists_them(client, clock) -> None:
    ids = await april(client, clock)
    cards = await call(client, "list_rate_cards", pricePlanId=ids["prorated"])
    assert [(c["type"], c["licenseId"]) for c in cards["data"]] == [("LICENSE", "seats")]
    listed = {p["id"]: p["rateCardCount"] for p in (await call(client, "list_price_plans"))["data"]}
    assert listed == {ids["prorated"]: 1, ids["whole"]: 1}
