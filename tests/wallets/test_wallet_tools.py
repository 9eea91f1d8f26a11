"""grant_credit and get_wallet_balance through a real MCP client, on real PostgreSQL."""

from __future__ import annotations

from datetime import timedelta

from conftest import row_counts
from helpers import call, call_error


async def _account(client, account_id: str = "acc_1", currency: str = "USD") -> str:
    await call(client, "create_customer", id=f"cust_{account_id}", name="Acme",
               account={"id": account_id, "name": "Main", "invoiceCurrency": currency})
    return account_id


async def test_grant_and_read_the_balance(client, clock):
    acc = await _account(client)
    first = await call(client, "grant_credit", accountId=acc, amount="25.50", purpose="PREPAID_CREDIT",
                       priority=5, idempotencyKey="topup-1")
    assert first["balance"] == "25.50" and first["currency"] == "USD" and first["replayed"] is False
    assert first["grant"]["status"] == "ACTIVE" and first["grant"]["remaining"] == "25.50"
    assert first["grant"]["effectiveFrom"].startswith("2026-01-01T00:00:00")
    second = await call(client, "grant_credit", accountId=acc, amount=10, priority=0,
                        effectiveUntil="2026-02-01T00:00:00Z", idempotencyKey="promo-1")
    # 25.50 + 10.00 = 35.50
    assert second["balance"] == "35.50"
    wallet = await call(client, "get_wallet_balance", accountId=acc)
    assert wallet["balance"] == "35.50" and wallet["availableBalance"] == "35.50" and wallet["overage"] is False
    # Burn order: priority 0 before priority 5.
    assert [g["idempotencyKey"] for g in wallet["grants"]] == ["promo-1", "topup-1"]
    clock.advance(timedelta(days=31))  # past the promo's expiry (1 Feb)
    wallet = await call(client, "get_wallet_balance", accountId=acc)
    assert wallet["balance"] == "25.50" and [g["idempotencyKey"] for g in wallet["grants"]] == ["topup-1"]
    account = await call(client, "get_account", accountId=acc)
    assert account["financial"]["wallet"]["balance"] == "25.50"
    assert account["financial"]["wallet"]["currency"] == "USD"


async def test_replaying_a_key_returns_the_same_grant(client, clock, db):
    acc = await _account(client)
    first = await call(client, "grant_credit", accountId=acc, amount="5.00", idempotencyKey="k")
    clock.advance(timedelta(hours=1))  # effectiveFrom was defaulted: a later retry still matches
    before = await row_counts(db)
    again = await call(client, "grant_credit", accountId=acc, amount="5", idempotencyKey="k")
    assert again["replayed"] is True and again["grant"] == first["grant"] and again["balance"] == "5.00"
    after = await row_counts(db)
    assert after["credit_grants"] == before["credit_grants"] == 1
    assert after["wallet_entries"] == before["wallet_entries"] == 1
    error = await call_error(client, "grant_credit", accountId=acc, amount="6.00", priority=1, idempotencyKey="k")
    assert "idempotencyKey 'k' was already used" in error and "amount, priority" in error
    # The same key on another account is another grant.
    other = await _account(client, "acc_2")
    assert (await call(client, "grant_credit", accountId=other, amount="5.00", idempotencyKey="k"))["replayed"] is False


async def test_a_key_retried_with_content_no_grant_could_have_is_a_conflict_naming_it(client, db):
    """Other content under a used key is the key's Conflict naming the fields, even content refused on its own: the
    retry hears that the key made a grant already."""
    acc = await _account(client)
    first = await call(client, "grant_credit", accountId=acc, amount="5.00", idempotencyKey="k")
    before = await row_counts(db)
    cases = [
        ({"amount": "5.001"}, "amount"),  # finer than a cent
        ({"amount": "0"}, "amount"),
        ({"amount": "5.00", "currency": "EUR"}, "currency"),  # not the wallet's
        ({"amount": "5.00", "currency": "XXY"}, "currency"),
        ({"amount": "5.00", "applicableEntityIds": []}, "applicableEntityIds"),
        ({"amount": "5.00", "effectiveUntil": "2025-12-01T00:00:00Z"}, "effectiveUntil"),
    ]
    for arguments, fields in cases:
        error = await call_error(client, "grant_credit", accountId=acc, idempotencyKey="k", **arguments)
        assert f"idempotencyKey 'k' was already used for grant '{first['grant']['id']}' with a different {fields};" \
            in error, (arguments, error)
    assert await row_counts(db) == before
    # the same content, the currency named in lower case, still replays
    again = await call(client, "grant_credit", accountId=acc, amount="5", currency="usd", idempotencyKey="k")
    assert again["replayed"] is True and again["grant"] == first["grant"]


async def test_bad_grants_are_refused_and_write_nothing(client, db):
    acc = await _account(client)
    await _account(client, "acc_jpy", "JPY")
    before = await row_counts(db)
    cases = [
        ({"amount": "0.001"}, "amount: 0.001 has more decimals than USD allows (2); send an amount such as 0.00"),
        ({"amount": "0"}, "amount: must be greater than 0"),
        ({"amount": "-5"}, "amount: must be greater than 0"),
        ({"amount": "abc"}, "amount: 'abc' is not a decimal number"),
        ({"amount": "1", "currency": "EUR"}, "currency: account 'acc_1' has its wallet in USD"),
        ({"amount": "1", "currency": "XXY"}, "currency: 'XXY' is not an ISO 4217"),
        ({"amount": "1", "effectiveFrom": "2026-03-01T00:00:00Z", "effectiveUntil": "2026-02-01T00:00:00Z"},
         "effectiveUntil: must be after effectiveFrom"),
        ({"amount": "1", "effectiveUntil": "2025-12-01T00:00:00Z"}, "effectiveUntil: must be after effectiveFrom"),
        ({"amount": "1", "effectiveFrom": "2025-11-01T00:00:00Z", "effectiveUntil": "2025-12-01T00:00:00Z"},
         "effectiveUntil: must be in the future"),
        ({"amount": "1", "effectiveUntil": "9999-12-31T23:59:00Z"},
         "effectiveUntil: '9999-12-31T23:59:00Z' is out of the range billing computes with; send an instant from "
         "2000-01-01T00:00:00Z to 9000-01-01T00:00:00Z"),
        ({"amount": "1", "effectiveUntil": "next month"}, "effectiveUntil: 'next month' is not an ISO 8601 date"),
        ({"amount": "1", "priority": -1}, "priority"),
    ]
    for arguments, expected in cases:
        error = await call_error(client, "grant_credit", accountId=acc, **arguments)
        assert expected in error, (arguments, error)
    assert "amount: 10.5 has more decimals than JPY allows (0)" in await call_error(
        client, "grant_credit", accountId="acc_jpy", amount="10.5")
    assert "account 'nope' does not exist; list_accounts" in await call_error(
        client, "grant_credit", accountId="nope", amount="1")
    assert "list_accounts" in await call_error(client, "get_wallet_balance", accountId="nope")
    assert await row_counts(db) == before


async def test_archived_accounts_get_no_new_credit(client):
    acc = await _account(client)
    await call(client, "grant_credit", accountId=acc, amount="1.00", idempotencyKey="before")
    await call(client, "update_account", accountId=acc, status="ARCHIVED")
    assert "ARCHIVED" in await call_error(client, "grant_credit", accountId=acc, amount="1.00")
    # A retry of an earlier grant still answers with that grant.
    assert (await call(client, "grant_credit", accountId=acc, amount="1.00", idempotencyKey="before"))["replayed"]


async def test_invoice_currency_is_fixed_once_the_wallet_has_entries(client):
    acc = await _account(client)
    await call(client, "update_account", accountId=acc, invoiceCurrency="EUR")  # no wallet entries yet: allowed
    await call(client, "grant_credit", accountId=acc, amount="3.00")
    error = await call_error(client, "update_account", accountId=acc, invoiceCurrency="USD")
    assert "has credit entries in its wallet" in error and "create a new account" in error
    assert (await call(client, "get_wallet_balance", accountId=acc))["currency"] == "EUR"


async def test_scheduled_grant_is_shown_but_not_in_the_balance(client):
    acc = await _account(client)
    result = await call(client, "grant_credit", accountId=acc, amount="8.00", effectiveFrom="2026-02-01T00:00:00Z")
    assert result["grant"]["status"] == "SCHEDULED" and result["balance"] == "0.00"
    wallet = await call(client, "get_wallet_balance", accountId=acc)
    assert wallet["balance"] == "0.00" and wallet["scheduledCredits"] == "8.00"
    assert [g["status"] for g in wallet["grants"]] == ["SCHEDULED"]


async def test_the_ledger_records_an_expiry_on_its_own_read(client, clock):
    acc = await _account(client)
    empty = await call(client, "list_wallet_entries", accountId=acc)
    assert (empty["data"], empty["balance"], empty["nextToken"]) == ([], "0.00", None)  # no wallet yet
    grant = await call(client, "grant_credit", accountId=acc, amount="10.00",
                       effectiveUntil=(clock.now() + timedelta(days=1)).isoformat())
    clock.advance(timedelta(days=2))
    # listed first, before any other read: the expiry (dated at effectiveUntil) is recorded by this call
    ledger = await call(client, "list_wallet_entries", accountId=acc)
    assert [(e["kind"], e["amount"], e["grantId"]) for e in ledger["data"]] == [
        ("EXPIRY", "-10.00", grant["grant"]["id"]), ("GRANT", "10.00", grant["grant"]["id"])]
    assert ledger["data"][0]["at"] == grant["grant"]["effectiveUntil"] and ledger["balance"] == "0.00"


async def test_tool_annotations_and_descriptions(client):
    tools = {t.name: t for t in (await client.list_tools()).tools}
    grant_tool = tools["grant_credit"]
    # a retry with the same idempotencyKey grants once; without one (it is optional) twice
    assert (grant_tool.annotations.idempotent_hint, grant_tool.annotations.read_only_hint) == (False, False)
    assert "reuse" in grant_tool.description.lower() and "unique" not in grant_tool.description.lower()
    assert tools["get_wallet_balance"].annotations.read_only_hint is True
    assert "amount" in grant_tool.input_schema["required"] and "accountId" in grant_tool.input_schema["required"]
