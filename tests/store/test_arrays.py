"""any_of (store/arrays.py): a list of any length is one array parameter, matched exactly."""

from __future__ import annotations

from sqlalchemy import Integer, String, column, select, values

from togai_engine.store.arrays import any_of


async def test_any_of_takes_more_values_than_a_statement_has_parameters(db) -> None:
    ids = values(column("id", String(50)), column("n", Integer), name="ids").data([("a" * 50, 1), ("b", 2)])
    longer = [f"x{i}" for i in range(40_000)]  # an IN list of these is 40,000 parameters (asyncpg: 32,767 at most)
    async with db.unit_of_work() as session:
        assert list(await session.scalars(select(ids.c.n).where(any_of(ids.c.id, [*longer, "b"])))) == [2]
        # a value longer than the column's varchar(50) is compared whole, never cut down to one that matches
        assert list(await session.scalars(select(ids.c.n).where(any_of(ids.c.id, ["a" * 50 + "z"])))) == []
        assert list(await session.scalars(select(ids.c.n).where(any_of(ids.c.n, range(2, 40_002))))) == [2]
        assert list(await session.scalars(select(ids.c.n).where(any_of(ids.c.id, [])))) == []
