"""Rollup stripes: concurrent ingest transactions of the same (account, meter, hour) do not wait for
each other, and readers add the stripes up exactly."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

from helpers import ingest_in_two_stripes
from togai_engine.meters.rollups import verify_rollups
from togai_engine.meters.usage import meter_quantities
from togai_engine.store.database import raw_connection

JAN = datetime(2026, 1, 1, tzinfo=UTC)
FEB = datetime(2026, 2, 1, tzinfo=UTC)


async def test_two_open_transactions_on_the_same_rollup_rows_do_not_block_and_add_up(client, db, clock):
    # Without stripes the second transaction would wait for the first one's row locks: a deadlock here.
    meters = await ingest_in_two_stripes(client, db, clock)

    async with db.unit_of_work() as session:
        stripes = await (await raw_connection(session)).fetchval(
            "SELECT count(DISTINCT stripe) FROM usage_rollups WHERE meter_id = $1 AND hour = '2026-01-05 10:00+00'",
            meters["sum"])
        quantities = await meter_quantities(session, start=JAN, end=FEB)
        assert await verify_rollups(session) == []
    assert stripes == 2
    # with the priming event (1 on Jan 4): sum 1 + 5 + 7 + 11 + 2 = 26; max 11; count 5; latest: 10:59:00
    # has "a1" (7) and "b1" (2): the id that sorts last in byte order wins, "b1" > "a1", so 2.
    assert {name: quantities[("acc", meter_id)] for name, meter_id in meters.items()} == {
        "sum": Decimal(26), "max": Decimal(11), "latest": Decimal(2), "count": Decimal(5)}
