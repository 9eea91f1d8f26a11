"""advance_clock with an account that cannot be billed: the clock moves, the other accounts are billed, and
the failing account is named with its reason, then billed by a later advance once its data is fixed."""

from __future__ import annotations

from decimal import Decimal

import asyncpg
import pytest
from mcp import Client
from sqlalchemy import text

import test_sandbox_clock
from helpers import break_stored_version, call, scalar
from mcp_server.tools import clock as clock_tools
from test_sandbox_clock import ingest, invoices, set_up
from togai_engine.store.database import Database

sandbox = test_sandbox_clock.sandbox  # the fixture: a sandbox server at 2026-01-01


async def poison(db: Database, account_id: str, currency: str) -> None:
    """Changes the account's currency behind the engine's back (as tests/billing/test_lifecycle_edges.py
    does): its plan has no rates in that currency, so its invoices cannot be computed."""
    async with db.unit_of_work() as session:
        await session.execute(text("UPDATE accounts SET invoice_currency = :c WHERE id = :a"),
                              {"c": currency, "a": account_id})
        await session.execute(text("UPDATE invoices SET currency = :c WHERE account_id = :a"),
                              {"c": currency, "a": account_id})


async def test_a_failing_account_is_reported_and_the_clock_still_moves(sandbox: Client, db: Database) -> None:
    await set_up(sandbox)  # a1 and a2 on "Tokens": monthly from Jan 1, one day of grace, 0.50 a token
    await call(sandbox, "advance_clock", to="2026-01-10T00:00:00Z")
    await ingest(sandbox, [("a1", "e1", "8"), ("a2", "e2", "3")], "2026-01-10T00:00:00Z")
    await poison(db, "a2", "EUR")

    moved = await call(sandbox, "advance_clock", to="2026-02-02T00:00:00Z")  # January's grace ends
    assert moved["now"] == "2026-02-02T00:00:00Z"  # moved although a2 failed
    assert [failure["accountId"] for failure in moved["failed"]] == ["a2"]
    assert "does not support EUR" in moved["failed"][0]["reason"]
    # a1 alone was billed: its January became DUE and its February draft opened
    assert (moved["invoicesDue"], moved["draftsOpened"]) == (1, 1)
    assert await invoices(db) == [
        ("a1", "2026-01-01", "DUE", Decimal("4.00")),  # 8 x 0.50
        ("a1", "2026-02-01", "DRAFT", None),
        ("a2", "2026-01-01", "DRAFT", None),  # left as it was, not half-closed
    ]
    assert (await call(sandbox, "get_clock"))["now"] == "2026-02-02T00:00:00Z"

    await poison(db, "a2", "USD")  # fixed: the next advance bills it at the new time
    moved = await call(sandbox, "advance_clock", by="PT1H")
    assert (moved["failed"], moved["invoicesDue"], moved["draftsOpened"]) == ([], 1, 1)
    assert [row for row in await invoices(db) if row[0] == "a2"] == [
        ("a2", "2026-01-01", "DUE", Decimal("1.50")),  # 3 x 0.50
        ("a2", "2026-02-01", "DRAFT", None),
    ]


async def test_an_advance_with_nothing_failing_reports_no_failure(sandbox: Client) -> None:
    await set_up(sandbox)
    assert (await call(sandbox, "advance_clock", to="2026-02-02T00:00:00Z"))["failed"] == []


async def test_an_advance_that_committed_is_reported_even_when_partitions_ahead_cannot_be_made(
        sandbox: Client, db: Database, monkeypatch: pytest.MonkeyPatch) -> None:
    # Partitions ahead are made after the advance commits (their DDL would wait for this very transaction). When
    # that fails (here a lock timeout, as another partition change holding the events table would give), the
    # clock has moved and the bills were run: an error answer would make the caller retry `by` and move it twice.
    async def lock_timeout(*_: object, **__: object) -> list[str]:
        raise asyncpg.exceptions.LockNotAvailableError("canceling statement due to lock timeout")

    await set_up(sandbox)  # a1 and a2 on "Tokens": monthly from Jan 1, one day of grace, 0.50 a token
    await ingest(sandbox, [("a1", "e1", "8")], "2026-01-01T00:00:00Z")
    monkeypatch.setattr(clock_tools, "ensure_ahead", lock_timeout)
    moved = await call(sandbox, "advance_clock", by="P5M1D")  # past the months made ahead at the start (Jan-Apr)
    assert (moved["previous"], moved["now"]) == ("2026-01-01T00:00:00Z", "2026-06-02T00:00:00Z")
    # January to May DUE for both accounts, June's two drafts opened
    assert (moved["invoicesDue"], moved["draftsOpened"], moved["failed"]) == (10, 2, [])
    billed = await invoices(db)
    assert billed[0] == ("a1", "2026-01-01", "DUE", Decimal("4.00"))  # 8 x 0.50
    assert [row[2] for row in billed] == ["DUE"] * 5 + ["DRAFT"] + ["DUE"] * 5 + ["DRAFT"]
    monkeypatch.undo()
    # June, which has no partition yet, gets one from the ingest that needs it
    await ingest(sandbox, [("a1", "e2", "2")], "2026-06-02T00:00:00Z")
    assert await scalar(db, "SELECT count(*) FROM events_p202606") == 1
    assert (await call(sandbox, "get_clock"))["now"] == "2026-06-02T00:00:00Z"


async def test_a_credit_grant_that_cannot_be_issued_fails_only_its_account(
        sandbox: Client, db: Database, monkeypatch: pytest.MonkeyPatch) -> None:
    # A credit-grant card whose CUSTOM expiry means "forever" to its author: P9999Y from any cycle start ends after
    # the year 9999, which no instant reaches. create_price_plan refuses it now (at most 100 years); a plan stored
    # before that, or edited by hand, still has it. Its grant is issued as each period starts, so that account
    # cannot be billed, and the others must be.
    await set_up(sandbox)  # a1 and a2 on "Tokens": monthly from Jan 1, one day of grace, 0.50 a token
    plan = await call(sandbox, "create_price_plan", name="Forever credits", pricingCycleConfig={
        "interval": "MONTHLY", "startOffset": {"dayOffset": "1"}, "gracePeriod": 1}, rateCards={
        "creditGrantRateCards": [{"id": "welcome", "grantDetails": {"expiryType": "CUSTOM", "expiryDuration": "P31D"},
                                  "rateDetails": {"currencySlabRateDetails": [{"currency": "USD",
                                                                                "creditAmount": "10"}]}}]})
    await break_stored_version(db, monkeypatch, plan["id"], 1,
                               "{rateCards,creditGrantRateCards,0,grantDetails,expiryDuration}", '"P9999Y"')
    await call(sandbox, "create_customer", id="c_a3", name="C", account={
        "id": "a3", "name": "a3", "invoiceCurrency": "USD", "pricePlanId": plan["id"],
        "effectiveFrom": "2026-01-15T00:00:00Z"})  # its first period starts after the clock: nothing issued yet
    await ingest(sandbox, [("a1", "e1", "8")], "2026-01-01T00:00:00Z")

    moved = await call(sandbox, "advance_clock", to="2026-02-02T00:00:00Z")  # January's grace ends
    assert moved["now"] == "2026-02-02T00:00:00Z"
    assert [failure["accountId"] for failure in moved["failed"]] == ["a3"]
    reason = moved["failed"][0]["reason"]
    assert "creditGrantRateCards[0].grantDetails.expiryDuration" in reason and "'P9999Y'" in reason, reason
    assert "NO_EXPIRY" in reason and plan["id"] in reason, reason
    assert (moved["invoicesDue"], moved["draftsOpened"]) == (2, 2)  # a1 and a2: January DUE, February opened
    assert await invoices(db) == [
        ("a1", "2026-01-01", "DUE", Decimal("4.00")),  # 8 x 0.50
        ("a1", "2026-02-01", "DRAFT", None),
        ("a2", "2026-01-01", "DUE", Decimal("0.00")),  # no usage
        ("a2", "2026-02-01", "DRAFT", None),
    ]  # a3 as it was: no invoice, no grant
    assert await scalar(db, "SELECT count(*) FROM credit_grants") == 0
