"""A page of one account's wallet ledger reads that account's entries only, however large the ledger."""

from __future__ import annotations

from typing import Any

from sqlalchemy import event

from helpers import call
from togai_engine.store.database import raw_connection


async def test_a_ledger_page_is_read_from_the_account_s_own_entries(client, db):
    await call(client, "create_customer", id="c", name="C", account={"id": "acme", "name": "Acme"})
    for amount in ("10", "20", "30"):
        await call(client, "grant_credit", accountId="acme", amount=amount, currency="USD")
    await call(client, "create_customer", id="o", name="O", account={"id": "other", "name": "Other"})
    grant = await call(client, "grant_credit", accountId="other", amount="1", currency="USD")
    async with db.unit_of_work() as session:
        conn = await raw_connection(session)
        # 20,000 newer entries in another wallet (filler: GRANT rows of the other account's grant)
        await conn.execute(
            "INSERT INTO wallet_entries (account_id, grant_id, kind, amount, at) "
            "SELECT 'other', $1, 'GRANT', 1, now() FROM generate_series(1, 20000)", grant["grant"]["id"])
        await conn.execute("ANALYZE wallet_entries")

    statements: list[tuple[str, Any]] = []

    def record(_conn: Any, _cursor: Any, statement: str, parameters: Any, _context: Any, _many: bool) -> None:
        statements.append((statement, parameters))

    event.listen(db.engine.sync_engine, "before_cursor_execute", record)
    try:
        page = await call(client, "list_wallet_entries", accountId="acme", pageSize=2)
    finally:
        event.remove(db.engine.sync_engine, "before_cursor_execute", record)
    assert [e["amount"] for e in page["data"]] == ["30.00", "20.00"] and page["nextToken"]

    sql, parameters = next((s, p) for s, p in statements if "FROM wallet_entries" in s and "ORDER BY" in s)
    async with db.unit_of_work() as session:
        conn = await raw_connection(session)
        plan = "\n".join(r[0] for r in await conn.fetch(f"EXPLAIN (ANALYZE, COSTS OFF) {sql}", *parameters))
    # the (account_id, id) primary key: the page's rows and nothing else (not the whole table walked
    # backwards by id and filtered, nor every entry of the account sorted)
    assert "pk_wallet_entries" in plan, plan
    assert "Rows Removed by Filter" not in plan and "Sort" not in plan, plan
