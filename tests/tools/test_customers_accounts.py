"""Customers and accounts through a real MCP client (in memory), on real PostgreSQL."""

from __future__ import annotations

from sqlalchemy import text

from conftest import row_counts
from helpers import call, call_error


async def test_create_and_get_customer_round_trip(client):
    created = await call(
        client, "create_customer", id="cust_1", name="Acme Corp", primaryEmail="Billing@Acme.example",
        address={"line1": "1 Main St", "city": "Springfield", "country": "us"}, metadata={"tier": "gold"},
    )
    assert created["customer"]["id"] == "cust_1"
    assert created["account"] is None
    got = await call(client, "get_customer", customerId="cust_1")
    assert got["name"] == "Acme Corp"
    assert got["primaryEmail"] == "Billing@acme.example"  # domain part normalised
    assert {k: v for k, v in got["address"].items() if v} == {"line1": "1 Main St", "city": "Springfield", "country": "US"}
    assert got["metadata"] == {"tier": "gold"}
    assert got["status"] == "ACTIVE"
    assert got["accountIds"] == []


async def test_generated_customer_id(client):
    created = await call(client, "create_customer", name="No Id Inc")
    assert created["customer"]["id"].startswith("cust_")


async def test_create_customer_is_idempotent_and_conflicts_on_different_content(client, db):
    first = await call(client, "create_customer", id="c1", name="Acme", primaryEmail="a@acme.example")
    again = await call(client, "create_customer", id="c1", name="Acme", primaryEmail="a@acme.example")
    assert again["customer"] == first["customer"]
    before = await row_counts(db)
    error = await call_error(client, "create_customer", id="c1", name="Other Name")
    assert "already exists with different" in error and "name" in error and "update_customer" in error
    after = await row_counts(db)
    # the conflicting call wrote nothing but its own absence; only the audit rows of the two successes exist
    assert before == after


async def test_inline_account_and_customer_lists_its_accounts(client):
    created = await call(
        client, "create_customer", id="c2", name="Globex",
        account={"id": "acc_g1", "name": "Globex main", "invoiceCurrency": "eur", "aliases": ["globex"]},
    )
    assert created["account"]["id"] == "acc_g1"
    assert created["account"]["invoiceCurrency"] == "EUR"
    assert created["account"]["aliases"] == ["globex"]
    assert created["customer"]["accountIds"] == ["acc_g1"]


async def test_the_no_currency_code_is_refused_as_an_invoice_currency(client, db):
    """XXX is ISO 4217's code for "no currency": nothing can be invoiced in it."""
    before = await row_counts(db)
    error = await call_error(client, "create_customer", id="c4", name="Hooli",
                             account={"id": "a4", "name": "x", "invoiceCurrency": "XXX"})
    assert "account.invoiceCurrency" in error and "no currency" in error
    assert await row_counts(db) == before


async def test_failed_inline_account_leaves_no_customer(client, db):
    before = await row_counts(db)
    error = await call_error(
        client, "create_customer", id="c3", name="Initech", account={"id": "a3", "name": "x", "invoiceCurrency": "ZZZ"}
    )
    assert "account.invoiceCurrency" in error and "ISO 4217" in error
    assert await row_counts(db) == before


async def test_invalid_fields_name_the_field(client, db):
    before = await row_counts(db)
    assert "primaryEmail" in await call_error(client, "create_customer", name="X", primaryEmail="not-an-email")
    assert "address.country" in await call_error(client, "create_customer", name="X", address={"country": "XX"})
    await call(client, "create_customer", id="c", name="C")
    mid = await row_counts(db)
    assert "invoiceCurrency" in await call_error(
        client, "create_account", id="a", customerId="c", name="A", invoiceCurrency="DOLLARS")
    assert "pageSize" in await call_error(client, "list_customers", pageSize=1000)
    assert "nextToken" in await call_error(client, "list_customers", nextToken="garbage!!")
    assert await row_counts(db) == mid
    assert before["customers"] == 0


async def test_unknown_ids_say_where_to_look(client):
    error = await call_error(client, "get_customer", customerId="cust_9")
    assert error.endswith("customer 'cust_9' does not exist; list_customers shows the ids")
    assert "list_accounts" in await call_error(client, "get_account", accountId="nope")
    assert "list_customers" in await call_error(client, "create_account", id="a", customerId="nope", name="A")
    assert "does not exist" in await call_error(client, "update_customer", customerId="nope", name="N")


async def test_update_customer_touches_profile_only(client):
    await call(client, "create_customer", id="c", name="Old", primaryEmail="old@x.example", metadata={"k": "v"})
    updated = await call(client, "update_customer", customerId="c", name="New")
    assert updated["name"] == "New"
    assert updated["primaryEmail"] == "old@x.example"  # omitted fields are left alone
    assert updated["metadata"] == {"k": "v"}
    error = await call_error(client, "update_customer", customerId="c", invoiceCurrency="EUR")
    assert "invoiceCurrency" in error


async def test_account_idempotency_and_conflict(client):
    await call(client, "create_customer", id="c", name="C")
    first = await call(client, "create_account", id="a1", customerId="c", name="A", aliases=["x1", "x2"])
    again = await call(client, "create_account", id="a1", customerId="c", name="A", aliases=["x2", "x1"])
    assert again == first
    error = await call_error(client, "create_account", id="a1", customerId="c", name="A", aliases=["x1", "x2"],
                             invoiceCurrency="EUR")
    assert "invoiceCurrency: account 'a1' already exists with a different invoiceCurrency (stored 'USD', sent " \
           "'EUR')" in error and "update_account" in error


async def test_alias_collisions(client, db):
    await call(client, "create_customer", id="c", name="C")
    await call(client, "create_account", id="a1", customerId="c", name="A", aliases=["shared"])
    before = await row_counts(db)
    error = await call_error(client, "create_account", id="a2", customerId="c", name="B", aliases=["shared"])
    assert "aliases[0]" in error and "'shared' is already an alias of account 'a1'" in error
    error = await call_error(client, "create_account", id="a3", customerId="c", name="B", aliases=["a1"])
    assert "'a1' is the id of account 'a1'" in error
    error = await call_error(client, "create_account", id="shared", customerId="c", name="B")
    assert "'shared' is already an alias of account 'a1'" in error
    assert await row_counts(db) == before
    error = await call_error(client, "create_account", id="a4", customerId="c", name="B", aliases=["z", "z"])
    assert "listed twice" in error


async def test_update_account_aliases_status_and_archived_filter(client):
    await call(client, "create_customer", id="c", name="C")
    await call(client, "create_account", id="a1", customerId="c", name="A", aliases=["old"])
    await call(client, "create_account", id="a2", customerId="c", name="B")
    updated = await call(client, "update_account", accountId="a1", aliases=["new1", "new2"], status="ARCHIVED")
    assert updated["aliases"] == ["new1", "new2"] and updated["status"] == "ARCHIVED"
    # the released alias can now be claimed by another account
    await call(client, "update_account", accountId="a2", aliases=["old"])
    archived = await call(client, "list_accounts", status="ARCHIVED")
    assert [a["id"] for a in archived["data"]] == ["a1"]
    active = await call(client, "list_accounts", status="ACTIVE", customerId="c")
    assert [a["id"] for a in active["data"]] == ["a2"]


async def test_get_account_has_financial_section_with_nulls(client):
    await call(client, "create_customer", id="c", name="C", account={"id": "a", "name": "A"})
    account = await call(client, "get_account", accountId="a")
    financial = account["financial"]
    assert set(financial) >= {"pricePlan", "currentCycle", "accruedCharges", "wallet", "outstanding"}
    assert financial["pricePlan"] is None and financial["accruedCharges"] is None


async def test_pagination_has_no_duplicates_or_gaps_and_is_stable_under_inserts(client):
    for i in range(7):
        await call(client, "create_customer", id=f"c{i:02d}", name=f"Customer {i}")
    seen: list[str] = []
    page = await call(client, "list_customers", pageSize=3)
    seen += [c["id"] for c in page["data"]]
    # a customer created mid-listing appears at the end, not shifting the pages already read
    await call(client, "create_customer", id="a_new", name="Inserted meanwhile")
    while page["nextToken"]:
        page = await call(client, "list_customers", pageSize=3, nextToken=page["nextToken"])
        seen += [c["id"] for c in page["data"]]
    assert seen == [f"c{i:02d}" for i in range(7)] + ["a_new"]
    assert len(seen) == len(set(seen))


async def test_list_accounts_pagination_by_customer(client):
    await call(client, "create_customer", id="c1", name="C1")
    await call(client, "create_customer", id="c2", name="C2")
    for i in range(5):
        await call(client, "create_account", id=f"a{i}", customerId="c1" if i % 2 == 0 else "c2", name=f"A{i}")
    page = await call(client, "list_accounts", customerId="c1", pageSize=2)
    ids = [a["id"] for a in page["data"]]
    page2 = await call(client, "list_accounts", customerId="c1", pageSize=2, nextToken=page["nextToken"])
    ids += [a["id"] for a in page2["data"]]
    assert ids == ["a0", "a2", "a4"] and page2["nextToken"] is None


async def test_tools_have_annotations_and_output_schemas(client):
    tools = {t.name: t for t in (await client.list_tools()).tools}
    for name in ("create_customer", "get_customer", "update_customer", "list_customers",
                 "create_account", "get_account", "update_account", "list_accounts"):
        tool = tools[name]
        assert tool.description and len(tool.description) > 30
        assert tool.output_schema is not None
        assert tool.annotations is not None
        assert tool.annotations.read_only_hint == name.startswith(("get_", "list_"))


async def test_argument_errors_name_the_field_in_plain_words(client):
    missing = await call_error(client, "create_account", id="a", name="A")
    assert missing == "Error executing tool create_account: create_account: invalid input: customerId: Field required" \
        or missing.endswith("create_account: invalid input: customerId: Field required")
    unknown = await call_error(client, "update_customer", customerId="c", invoiceCurrency="EUR")
    assert "invoiceCurrency: Extra inputs are not permitted" in unknown
    assert "errors.pydantic.dev" not in unknown
    too_big = await call_error(client, "list_accounts", pageSize=1000)
    assert "pageSize: Input should be less than or equal to 100" in too_big


async def test_a_customer_whose_accounts_are_all_archived_is_archived(client):
    """A customer's status (get_customer, list_customers) is ARCHIVED once it has accounts and every one is
    ARCHIVED, ACTIVE again when one is set ACTIVE or a new account is created (customers/README.md; Togai archives a
    customer with its accounts, DELETE /customers/{id})."""
    await call(client, "create_customer", id="c9", name="Initech", account={"id": "i1", "name": "Initech main"})
    await call(client, "create_account", id="i2", customerId="c9", name="Initech labs")

    async def statuses() -> tuple[str, list[str]]:
        got = await call(client, "get_customer", customerId="c9")
        listed = [c["status"] for c in (await call(client, "list_customers", pageSize=100))["data"] if c["id"] == "c9"]
        return got["status"], listed

    await call(client, "update_account", accountId="i1", status="ARCHIVED")
    assert await statuses() == ("ACTIVE", ["ACTIVE"])  # i2 is still ACTIVE
    await call(client, "update_account", accountId="i2", status="ARCHIVED")
    assert await statuses() == ("ARCHIVED", ["ARCHIVED"])
    updated = await call(client, "update_customer", customerId="c9", name="Initech Ltd")
    assert updated["status"] == "ARCHIVED"
    await call(client, "update_account", accountId="i1", status="ACTIVE")
    assert await statuses() == ("ACTIVE", ["ACTIVE"])
    await call(client, "update_account", accountId="i1", status="ARCHIVED")
    await call(client, "create_account", id="i3", customerId="c9", name="Initech new")
    assert await statuses() == ("ACTIVE", ["ACTIVE"])
    # a customer with no account is ACTIVE
    await call(client, "create_customer", id="c10", name="Empty")
    assert (await call(client, "get_customer", customerId="c10"))["status"] == "ACTIVE"


async def test_a_hand_edited_profile_field_fails_no_listing(client, db) -> None:
    """A stored metadata or address that no longer validates (a hand edit) is shown as null with a `problem` naming
    it and the call that sets it again: list_accounts and list_customers still answer for every other row."""
    for name in ("a", "b"):
        await call(client, "create_customer", id=f"cust_{name}", name=name, metadata={"tier": "gold"},
                   account={"id": name, "name": name, "metadata": {"tier": "gold"}, "address": {"city": "Oslo"}})
    async with db.unit_of_work() as session:
        await session.execute(text("""UPDATE accounts SET metadata = '{"tier": 1}', address = '{"town": "Oslo"}' """
                                   "WHERE id = 'a'"))
        await session.execute(text("""UPDATE customers SET metadata = '["gold"]' WHERE id = 'cust_a'"""))
    listed = {a["id"]: a for a in (await call(client, "list_accounts", pageSize=100))["data"]}
    assert (listed["b"]["metadata"], listed["b"]["address"]["city"], listed["b"]["problem"]) == (
        {"tier": "gold"}, "Oslo", None)
    assert (listed["a"]["metadata"], listed["a"]["address"]) == (None, None)
    problem = listed["a"]["problem"]
    assert "account 'a'" in problem and "metadata.tier" in problem and "address.town" in problem
    assert "update_account(address, metadata)" in problem
    assert (await call(client, "get_account", accountId="a"))["problem"] == problem
    customers = {c["id"]: c for c in (await call(client, "list_customers", pageSize=100))["data"]}
    assert (customers["cust_b"]["metadata"], customers["cust_b"]["problem"]) == ({"tier": "gold"}, None)
    assert customers["cust_a"]["metadata"] is None
    assert "customer 'cust_a'" in customers["cust_a"]["problem"] and "update_customer(metadata)" in customers["cust_a"]["problem"]
    # the way out the problem names
    await call(client, "update_account", accountId="a", metadata={"tier": "1"}, address={"city": "Oslo"})
    fixed = await call(client, "get_account", accountId="a")
    assert (fixed["metadata"], fixed["address"]["city"], fixed["problem"]) == ({"tier": "1"}, "Oslo", None)
