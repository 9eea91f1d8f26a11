"""Transaction advisory locks keyed by names (accounts), in one form for every lock class of the engine.

Each name's lock is (class, hashtext(name)); a transaction takes its names' locks in ascending key order, so
two lockers never wait on each other in a cycle; two names whose hashes meet share a lock (they wait for each
other, no more). Held until the transaction ends. On Citus they are the coordinator's own locks (every engine
process talks to the coordinator), and unlike a row lock on a reference table they hold nothing on the workers.
"""

from __future__ import annotations


def advisory_lock_sql(lock_class: int, name: str, *, exclusive: bool) -> str:
    """SQL taking the lock of one name (an SQL text expression: ":a", "'INVOICE'"); the same key as
    advisory_locks_sql gives that name."""
    function = "pg_advisory_xact_lock" if exclusive else "pg_advisory_xact_lock_shared"
    return f"SELECT {function}({lock_class}, hashtext({name}))"


def advisory_locks_sql(lock_class: int, names: str, *, exclusive: bool) -> str:
    """SQL taking the locks of `names`, a set-returning SQL expression of text: "unnest(CAST(:ids AS text[]))",
    or "json_array_elements_text($1::json)" (a JSON array of names: a few hundred cost ~4x less to send
    than a text[], whose elements asyncpg encodes one by one)."""
    function = "pg_advisory_xact_lock" if exclusive else "pg_advisory_xact_lock_shared"
    return (f"SELECT count({function}({lock_class}, k)) "
            f"FROM (SELECT DISTINCT hashtext(a) AS k FROM {names} AS a ORDER BY k) AS keys")
