"""Copies of stored rows made in one SQL statement: how the scale tests and benchmarks build tens of thousands of
accounts and invoices from one real one, without billing each (tests/billing/test_revenue.py, bench/bench_revenue.py)."""

from __future__ import annotations

from typing import Any


async def clone_rows(conn: Any, table: str, source: str, replaced: dict[str, str], count: int) -> None:
    """`count` copies of the rows of `table` matching `source` (SQL over its alias `t`), the columns of `replaced`
    given by SQL over `t` and `n` (the copy's number, 1..count); identity columns take their next values.
    `conn`: an asyncpg connection. `source` and `replaced` are SQL written by the caller, never user input."""
    columns = [name for name, generated in await conn.fetch(
        "SELECT column_name, is_identity = 'YES' AND identity_generation = 'ALWAYS' FROM information_schema.columns "
        "WHERE table_name = $1 AND table_schema = current_schema() ORDER BY ordinal_position", table) if not generated]
    names = ", ".join(f'"{name}"' for name in columns)
    values = ", ".join(replaced.get(name, f't."{name}"') for name in columns)
    await conn.execute(f"INSERT INTO {table} ({names}) "
                       f"SELECT {values} FROM {table} t, generate_series(1, {count}) AS n WHERE {source}")
