"""Where each table lives on a Citus cluster, and the step that puts it there (`togai-engine db distribute`).

Usage-scale tables are distributed by account_id, all in one colocation group, so everything one account
touches (its events, their dedupe ids, rollups, watermark, late events and wallet) is on one worker and
an account's statements run on one shard. Catalogs and billing documents are reference tables (a copy on
every node: joins with distributed tables stay local to a worker). Engine-private bookkeeping stays a
plain table on the coordinator. README, "Scaling out", says why each table is where it is.

Every function takes a synchronous SQLAlchemy connection (Alembic's, or an async engine's run_sync) and
works in its transaction. Running `distribute` again finds nothing to do.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import text

DISTRIBUTION_COLUMN = "account_id"
# The first one distributed defines the colocation group (and its shard count); foreign keys order the rest.
DISTRIBUTED = (
    "billing_watermarks", "event_ids", "events", "usage_rollups", "usage_rollups_daily", "late_usage_events",
    "wallets", "credit_grants", "wallet_entries",
)
# The all-account totals (per meter and hour) are written by every batch: by meter, on their own.
BY_METER = {"usage_totals": "meter_id"}
# Referenced tables first: a reference table's foreign keys may only point at reference tables.
REFERENCE = (
    "customers", "price_plans", "usage_meters", "event_schemas", "invoice_counters", "accounts", "account_handles",
    "account_billing", "plan_associations", "invoices", "invoice_lines", "credit_notes", "credit_note_lines",
    "price_plan_versions", "license_updates",
)
LOCAL = ("alembic_version", "api_keys", "audit_log", "sandbox_clock")
# Foreign keys between reference and distributed tables, dropped on Citus. From a reference table to a
# distributed one Citus cannot hold a key at all. From a distributed table to a reference one it can, but
# then a transaction that read the distributed table over several shards at once may not write any
# reference table tied to it by keys (a bill run reads wallets, then writes invoices): every multi-shard
# statement would have to run one shard after another. The engine writes the rows of each key itself, in one
# transaction (a wallet for an existing account; a credit note with the grant it issues).
DROPPED_ON_CITUS = {"fk_credit_notes_account_id_grant": "credit_notes", "fk_wallets_account_id_accounts": "wallets"}

NOT_CITUS = ("this server is not a Citus coordinator (no citus extension in this database): `db distribute` needs "
             "one. Run CREATE EXTENSION citus in this database on the coordinator and add the workers "
             "(README, Scaling out), or keep using the single-node schema as it is")


# Citus refuses to write a reference table that other tables' keys point at (invoices, accounts), or a table with a
# key to one, once the transaction has read or changed a distributed table over several connections to one worker,
# which it does for speed (the usage of many accounts, a migration's DDL on every shard). A transaction that does
# both runs its multi-shard statements over one connection per worker from its start. On PostgreSQL without Citus
# this sets an unused placeholder setting, for the transaction only.
ONE_CONNECTION_PER_NODE = "SET LOCAL citus.multi_shard_modify_mode TO 'sequential'"


def citus_present(conn: Any) -> bool:
    return bool(conn.execute(text("SELECT EXISTS (SELECT FROM pg_extension WHERE extname = 'citus')")).scalar())


ON_A_WORKER = ("this server is a Citus worker node, not the coordinator: togai-engine must connect to the "
               "coordinator (TOGAI_DATABASE_URL). A worker holds the distributed and reference tables but not the "
               "coordinator's own (audit_log, api_keys, sandbox_clock, alembic_version), and the engine's advisory "
               "locks (billing fences, account locks) are the coordinator's: taken on a worker they would not "
               "see the other engine processes' (README, Scaling out -> Citus)")


def refuse_worker(conn: Any) -> None:
    """Raises on a Citus worker: the engine runs against the coordinator only (ON_A_WORKER says why)."""
    if citus_present(conn) and not conn.execute(text("SELECT citus_is_coordinator()")).scalar():
        raise RuntimeError(ON_A_WORKER)


def placements(conn: Any) -> dict[str, tuple[str, str | None, int]]:
    """Table name -> (citus table type, distribution column, colocation id) of the tables Citus knows. Read from
    Citus's catalog, not the citus_tables view: the view sizes every shard over other connections, which wait for
    the locks of the DDL a migration ran before in the same transaction (env.py places its tables after it), and
    so would wait forever. Hash-distributed: "distributed"; replicated to every node: "reference"; else "local"."""
    rows = conn.execute(text(
        "SELECT c.relname, CASE WHEN p.partmethod = 'h' THEN 'distributed' WHEN p.repmodel = 't' THEN 'reference' "
        "ELSE 'local' END, CASE WHEN p.partmethod = 'h' THEN column_to_column_name(p.logicalrelid, p.partkey) END, "
        "p.colocationid FROM pg_dist_partition p JOIN pg_class c ON c.oid = p.logicalrelid "
        "JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = current_schema()"))
    return {name: (kind, column, colocation) for name, kind, column, colocation in rows}


def is_distributed(conn: Any) -> bool:
    """The engine's schema here has been distributed (some usage table is); read as placements reads it, so it
    is safe inside a migration's transaction too."""
    return citus_present(conn) and any(
        placed[0] == "distributed" for name, placed in placements(conn).items() if name in DISTRIBUTED)


def refuse_downgrade_if_distributed(conn: Any, revision: str) -> None:
    """A downgrade below `revision` (one after 0020) refuses a distributed database before any DDL: the DDL would
    hold locks that 0020's own check waits for, and below 0020 a distributed database cannot go at all."""
    if is_distributed(conn):
        raise RuntimeError(f"this database is distributed over Citus (`togai-engine db distribute`), and downgrading "
                           f"a distributed database below {revision} is not supported (below 0020 it cannot be): "
                           "nothing was changed. To run an older engine, restore a backup taken before `db "
                           "distribute` (README, Scaling out -> Citus)")


def _tables(conn: Any) -> set[str]:
    rows = conn.execute(text(
        "SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
        "WHERE n.nspname = current_schema() AND c.relkind IN ('r', 'p') AND NOT c.relispartition"))
    return {row[0] for row in rows}


def problems(conn: Any) -> list[str]:
    """What is not where it should be on this Citus coordinator (nothing on a server without Citus)."""
    if not citus_present(conn):
        return []
    placed = placements(conn)
    tables = _tables(conn)
    found: list[str] = []
    group = placed.get(DISTRIBUTED[0], ("", None, 0))[2]
    wanted = {**{t: DISTRIBUTION_COLUMN for t in DISTRIBUTED}, **BY_METER}
    for table in sorted(tables & set(wanted)):
        kind, column, colocation = placed.get(table, ("local", None, 0))
        if kind != "distributed" or column != wanted[table]:
            found.append(f"{table} is {_kind(kind)}; it should be distributed by {wanted[table]}")
        elif table in DISTRIBUTED and colocation != group:
            found.append(f"{table} is distributed but not colocated with {DISTRIBUTED[0]}")
    for table in sorted(tables & set(REFERENCE)):
        kind = placed.get(table, ("local", None, 0))[0]
        if kind != "reference":
            found.append(f"{table} is {_kind(kind)}; it should be a reference table")
    for table in sorted(tables - set(wanted) - set(REFERENCE) - set(LOCAL)):
        found.append(f"{table} has no place on Citus yet: add it to togai_engine/store/distribution.py")
    if found:
        found.append("run `togai-engine db distribute` to place the tables")
    return found


def _kind(kind: str) -> str:
    return {"local": "a local table", "reference": "a reference table", "distributed": "distributed"}.get(kind, kind)


def distribute(conn: Any, shard_count: int | None = None) -> list[str]:
    """Places every table (reference tables first, then the distributed ones); returns what it did, nothing
    when everything is in place. Refuses on a server without Citus, or a table placed otherwise by hand."""
    if not citus_present(conn):
        raise RuntimeError(NOT_CITUS)
    refuse_worker(conn)
    done: list[str] = []
    for constraint, table in DROPPED_ON_CITUS.items():
        if conn.execute(text("SELECT EXISTS (SELECT FROM pg_constraint WHERE conname = :c)"), {"c": constraint}).scalar():
            conn.execute(text(f'ALTER TABLE "{table}" DROP CONSTRAINT "{constraint}"'))
            done.append(f"{table}: dropped foreign key {constraint} (between a reference and a distributed table)")
    tables = _tables(conn)
    placed = placements(conn)
    if shard_count is None and placed.get(DISTRIBUTED[0], ("",))[0] == "distributed":
        # a table placed later (a newer migration's) gets the shard count the first placement chose
        shard_count = conn.execute(text("SELECT count(*) FROM pg_dist_shard WHERE logicalrelid = CAST(:t AS regclass)"),
                                   {"t": DISTRIBUTED[0]}).scalar()
    # Citus distributes no table a local table points at, and a table pointing at a reference table becomes
    # a "Citus local" one that can no longer drop a key: keys between usage tables are set aside first.
    keys = _keys_between(conn, [t for t in DISTRIBUTED if t in tables and placed.get(t, ("",))[0] != "distributed"])
    for table, constraint, _ in keys:
        conn.execute(text(f'ALTER TABLE "{table}" DROP CONSTRAINT "{constraint}"'))
    for table in REFERENCE:
        kind = placed.get(table, ("local", None, 0))[0]
        if table not in tables or kind == "reference":
            continue
        _refuse_if_distributed(table, kind)
        conn.execute(text("SELECT create_reference_table(:t)"), {"t": table})
        done.append(f"{table}: reference table")
    for table in DISTRIBUTED:
        kind = placed.get(table, ("local", None, 0))[0]
        if table not in tables or kind == "distributed":
            continue
        _refuse_if_distributed(table, kind)
        if table == DISTRIBUTED[0]:
            conn.execute(text("SELECT create_distributed_table(:t, :c, colocate_with => 'none'"
                              + (", shard_count => :n)" if shard_count else ")")),
                         {"t": table, "c": DISTRIBUTION_COLUMN, "n": shard_count})
        else:
            conn.execute(text("SELECT create_distributed_table(:t, :c, colocate_with => :g)"),
                         {"t": table, "c": DISTRIBUTION_COLUMN, "g": DISTRIBUTED[0]})
        done.append(f"{table}: distributed by {DISTRIBUTION_COLUMN}")
    for table, constraint, definition in keys:
        conn.execute(text(f'ALTER TABLE "{table}" ADD CONSTRAINT "{constraint}" {definition}'))
    for table, column in BY_METER.items():
        if table in tables and placed.get(table, ("local", None, 0))[0] != "distributed":
            _refuse_if_distributed(table, placed.get(table, ("local", None, 0))[0])
            conn.execute(text("SELECT create_distributed_table(:t, :c, colocate_with => 'none'"
                              + (", shard_count => :n)" if shard_count else ")")),
                         {"t": table, "c": column, "n": shard_count})
            done.append(f"{table}: distributed by {column}")
    return done


def _keys_between(conn: Any, tables: list[str]) -> list[tuple[str, str, str]]:
    """(table, constraint, definition) of the foreign keys from `tables` to other usage tables."""
    if not tables:
        return []
    rows = conn.execute(text(
        "SELECT c.conrelid::regclass::text, c.conname, pg_get_constraintdef(c.oid) FROM pg_constraint c "
        "WHERE c.contype = 'f' AND c.conrelid <> c.confrelid AND c.conrelid::regclass::text = ANY(:t) "
        "AND c.confrelid::regclass::text = ANY(:all) ORDER BY c.conname"), {"t": tables, "all": list(DISTRIBUTED)})
    return [(table, name, definition) for table, name, definition in rows]


def _refuse_if_distributed(table: str, kind: str) -> None:
    if kind != "local":
        raise RuntimeError(f"{table} is already {_kind(kind)}, not where the engine puts it; undo that "
                           f"(SELECT undistribute_table('{table}')) and run `togai-engine db distribute` again")
