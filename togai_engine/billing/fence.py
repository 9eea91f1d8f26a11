"""The billing fence: one lock per account between closing its cycles and judging its events late.

A bill run takes an account's fence EXCLUSIVE before it moves the account's `billing_watermarks` row; ingest
and voids take it SHARED before they read that row, and hold it until their transaction ends. So a batch
either commits before the close counts usage, or reads the moved watermark (its read is a new statement,
after the lock). Transaction advisory locks write nothing (row locks FOR SHARE would create a MultiXact per
concurrent batch), and they are single-node locks even on Citus: every engine process talks to the
coordinator, which takes them itself, while the watermark rows may live on any worker (a FOR SHARE
over rows of several shards is a statement Citus refuses).

Keys are taken in ascending order, so two lockers never wait on each other in a cycle; two accounts
whose names hash alike share a lock (they wait for each other, no more). A transaction takes all the fences it
will hold in one pass, after the account locks it takes and before the invoice counter (billing README, "Lock
order"): the ingest batch that closes one account's cycle takes its other accounts' fences (shared) with that
account's (exclusive), and a finalize takes the fences of every account it may close before it closes the first.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import orjson

from togai_engine.common.locks import advisory_locks_mixed_sql, advisory_locks_sql

FENCE_LOCK_CLASS = 0x776D6B66  # "wmkf": the key space of these locks
FENCES_SQL = {
    exclusive: advisory_locks_sql(FENCE_LOCK_CLASS, "json_array_elements_text($1::json)", exclusive=exclusive)
    for exclusive in (False, True)
}
MIXED_FENCES_SQL = advisory_locks_mixed_sql(FENCE_LOCK_CLASS, "json_array_elements_text($1::json)",
                                            "json_array_elements_text($2::json)")


async def hold_fences(conn: Any, account_ids: Sequence[str], *, exclusive: bool, shared: Sequence[str] = ()) -> None:
    """Takes the accounts' fences (asyncpg connection, inside the caller's transaction); with `shared` (and
    `exclusive`), those accounts' shared in the same ascending pass. The ids go as JSON arrays (an ingest batch
    names hundreds of accounts: see advisory_locks_sql)."""
    if exclusive and shared:
        await conn.fetchval(MIXED_FENCES_SQL, orjson.dumps(account_ids).decode(),
                            orjson.dumps(shared).decode())
    elif account_ids:
        await conn.fetchval(FENCES_SQL[exclusive], orjson.dumps(account_ids).decode())
