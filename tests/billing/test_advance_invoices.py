"""Advance invoices (invoiceType STANDARD_ADVANCED): an association's first in-advance charges are invoiced, DUE, the
instant it starts (policy: togai_engine/invoices/README.md, "Advance invoices"). Amounts worked out by hand."""

from __future__ import annotations

from typing import Any

from sqlalchemy import text

from helpers import at, call, iso
from test_fixed_fee_timing import advance_invoices, fee, lines, oldest_first, plan
from test_scenarios import account
from togai_engine.store.database import Database


async def test_a_setup_fee_in_advance_is_due_the_instant_the_account_starts_and_prepaid_credit_pays_it(
        client, clock) -> None:
    onboarding = await plan(client, "Onboarding", fee("setup", "250", type="ONE_TIME", displayName="Setup",
                                                      invoiceTiming="IN_ADVANCE"),
                            fee("base", "40", displayName="Base"))
    clock.set(at(2026, 1, 1))
    await call(client, "create_customer", id="cust_acme", name="Acme")
    await call(client, "create_account", id="acme", customerId="cust_acme", name="Acme", netTermDays=15)
    await call(client, "grant_credit", accountId="acme", amount="100", purpose="PREPAID_CREDIT")
    clock.set(at(2026, 1, 10, 9))
    await call(client, "update_account", accountId="acme", pricePlanId=onboarding,
               effectiveFrom="2026-01-10T09:00:00Z")
    # The setup fee is DUE at once, dated the start, its period empty; 100.00 of prepaid credit pays part of it
    advance = [i for i in await call_list(client, "acme") if i["invoiceType"] == "STANDARD_ADVANCED"]
    assert [(i["status"], i["invoiceDate"], i["dueDate"], i["startDate"], i["endDate"], i["totalAmount"],
             i["creditsApplied"], i["amountDue"], i["sequenceId"]) for i in advance] == [
        ("DUE", "2026-01-10T09:00:00Z", "2026-01-25T09:00:00Z", "2026-01-10T09:00:00Z", "2026-01-10T09:00:00Z",
         "250.00", "100.00", "150.00", "INV-000001")]  # 250.00 - 100.00
    assert await lines(client, advance[0]["id"]) == [
        ("Setup (in advance for 2026-01-10T09:00:00+00:00 – 2026-02-01)", "250.00")]
    account_view = await call(client, "get_account", accountId="acme")
    assert account_view["financial"]["outstanding"] == "150.00"
    # The period's own invoice carries the base fee in arrears (a partial first period, not prorated): 40.00
    clock.set(at(2026, 2, 1))
    period = await oldest_first(client, "acme")
    assert [(i["status"], i["totalAmount"], i["sequenceId"]) for i in period] == [
        ("DUE", "40.00", "INV-000002"), ("DRAFT", "40.00", None)]
    # A second read issues nothing more
    assert len([i for i in await call_list(client, "acme") if i["invoiceType"] == "STANDARD_ADVANCED"]) == 1


async def test_ending_the_plan_before_its_first_period_ends_credits_the_advance_invoice(client, clock) -> None:
    monthly = await plan(client, "Monthly", fee("platform", "31", displayName="Platform", invoiceTiming="IN_ADVANCE",
                                                enableProration=True))
    clock.set(at(2026, 1, 1))
    await account(client, "acme", monthly, iso(2026, 1, 1))
    [(_, _, total, _)] = await advance_invoices(client, "acme")
    assert total == "31.00"
    advance_id = next(i for i in await call_list(client, "acme") if i["invoiceType"] == "STANDARD_ADVANCED")["id"]
    # Cancelled on 21 January: 11 of January's 31 days unused: 31 × 11/31 = 11.00 off what is still owed
    clock.set(at(2026, 1, 15))
    await call(client, "update_account", accountId="acme", effectiveUntil="2026-01-21T00:00:00Z")
    notes = (await call(client, "list_credit_notes", accountId="acme"))["data"]
    assert [(n["invoiceId"], n["amount"], n["creditedFromDue"], n["reason"]) for n in notes] == [
        (advance_id, "11.00", "11.00", "ORDER_CHANGE")]
    credited = await call(client, "get_invoice", invoiceId=advance_id)
    assert (credited["totalAmount"], credited["amountDue"]) == ("31.00", "20.00")  # 31.00 - 11.00
    # January's own invoice [1 Jan, 21 Jan) carries nothing: February is never reached
    clock.set(at(2026, 2, 1))
    assert [(i["status"], i["totalAmount"]) for i in await oldest_first(client, "acme")] == [("DUE", "0.00")]


async def test_an_invoice_opened_before_advance_invoices_keeps_its_first_period_fee(
        client, clock, db: Database) -> None:
    """A DRAFT of an association's first period opened before migration 0021 carries that period's in-advance fee
    itself (carries_opening_fees): the upgrade neither drops it nor bills it twice."""
    monthly = await plan(client, "Legacy", fee("platform", "31", displayName="Platform", invoiceTiming="IN_ADVANCE"))
    clock.set(at(2026, 1, 1))
    await account(client, "acme", monthly, iso(2026, 1, 1))
    # As the upgrade leaves a pre-0021 database: the advance invoice never existed, the DRAFT is marked
    async with db.unit_of_work() as session:
        await session.execute(text("DELETE FROM invoice_lines WHERE invoice_id IN "
                                   "(SELECT id FROM invoices WHERE invoice_type = 'STANDARD_ADVANCED')"))
        await session.execute(text("DELETE FROM invoices WHERE invoice_type = 'STANDARD_ADVANCED'"))
        await session.execute(text("UPDATE invoices SET carries_opening_fees = true"))
    # January's DRAFT: January's 31.00 + February's 31.00 = 62.00, and it closes with both
    [january] = await oldest_first(client, "acme")
    assert january["totalAmount"] == "62.00"
    clock.set(at(2026, 2, 1))
    listed = await oldest_first(client, "acme")
    assert [(i["status"], i["totalAmount"]) for i in listed] == [("DUE", "62.00"), ("DRAFT", "31.00")]
    assert [d for d, _ in await lines(client, listed[0]["id"])] == [
        "Platform (in advance for 2026-01-01 – 2026-02-01)", "Platform (in advance for 2026-02-01 – 2026-03-01)"]
    assert await advance_invoices(client, "acme") == []


async def call_list(client: Any, account_id: str) -> list[dict[str, Any]]:
    return (await call(client, "list_invoices", accountId=account_id, pageSize=100))["data"]
