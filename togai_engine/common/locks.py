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


def advisory_locks_mixed_sql(lock_class: int, exclusive_names: str, shared_names: str) -> str:
    """SQL taking the locks of `exclusive_names` exclusive and of `shared_names` shared (set-returning SQL
    expressions of text, as advisory_locks_sql takes) in ONE ascending pass over both: a name in both, or two names
    whose hashes meet, take it exclusive. A transaction that needs some of a class exclusive and others shared takes
    them this way, never in two passes, which would wait for a lower key after holding a higher one."""
    return (f"SELECT count(CASE WHEN x THEN pg_advisory_xact_lock({lock_class}, k) "
            f"ELSE pg_advisory_xact_lock_shared({lock_class}, k) END) "
            f"FROM (SELECT hashtext(a) AS k, bool_or(x) AS x FROM (SELECT a, true FROM {exclusive_names} AS a "
            f"UNION ALL SELECT a, false FROM {shared_names} AS a) AS n(a, x) GROUP BY 1 ORDER BY 1) AS keys")
