"""The lab prices an association's first period with its advance invoice (the in-advance fees charged as it
started), and compares it with the advance invoice that stands: after a version moved in place the replaced one
was credited whole, so only the newest counts. Monthly from the 1st, gracePeriod 2 (lab_helpers.MONTHLY)."""

from __future__ import annotations

from helpers import at, call, iso
from lab_helpers import MONTHLY, account, fee


def in_advance(rate: str) -> dict[str, object]:
    return {**fee("base", {"USD": rate}), "invoiceTiming": "IN_ADVANCE"}


async def test_a_version_moved_in_place_counts_only_the_advance_invoice_that_stands(client, clock) -> None:
    plan = await call(client, "create_price_plan", name="Ahead", pricingCycleConfig=MONTHLY,
                      rateCards={"fixedFeeRateCards": [in_advance("31")]})
    clock.set(at(2026, 1, 1))
    await account(client, "acme", plan["id"], iso(2026, 1, 1))
    clock.set(at(2026, 1, 10))
    await call(client, "update_price_plan", pricePlanId=plan["id"],
               rateCards={"fixedFeeRateCards": [in_advance("40")]})
    # version 2 from 1 January: the 31.00 advance invoice is credited whole, a 40.00 one issued
    await call(client, "finalize_price_plan", pricePlanId=plan["id"], migrationMode="START_OF_CURRENT_CYCLE")
    clock.set(at(2026, 2, 3))  # January DUE (2 days of grace)
    advance = [(i["totalAmount"], i["creditNotesTotal"]) for i in
               (await call(client, "list_invoices", accountId="acme", pageSize=100))["data"]
               if i["invoiceType"] == "STANDARD_ADVANCED"]
    assert advance == [("40.00", "0.00"), ("31.00", "31.00")]
    result = await call(client, "simulate_price_plan", candidates=[plan["id"]], accountIds=["acme"],
                        startTime=iso(2026, 1, 1), endTime=iso(2026, 3, 1))
    january = result["accounts"][0]["cycles"][0]
    # January's invoice: February's fee in advance, 40.00; with the advance invoice that stands, 40.00: 80.00
    # (not 111.00 with the replaced one); version 2 prices the same
    assert (january["status"], january["actual"]) == ("DUE", "80.00")
    assert [(c["amount"], c["difference"]) for c in january["candidates"]] == [("80.00", "0.00")]
