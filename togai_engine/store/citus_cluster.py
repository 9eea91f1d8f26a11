"""Throwaway databases on a Citus cluster (the Citus tests and benchmark): a database with the extension on
every node and the workers added, as `togai-engine db distribute` expects to find it.

Citus keeps its node list per database, so a new database needs `CREATE EXTENSION citus` on the coordinator
and on each worker, and the workers added again; the workers are those the maintenance database at
`cluster_url` lists (pg_dist_node), reached with the same user and password.
"""

from __future__ import annotations

from sqlalchemy.engine import make_url

from togai_engine.store.throwaway import connect, with_database


async def create_database(cluster_url: str, name: str) -> str:
    """Creates database `name` on the coordinator and its workers, Citus ready; returns its URL."""
    conn = await connect(cluster_url)
    try:
        await conn.execute("SET citus.enable_create_database_propagation = on")
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await conn.execute(f'CREATE DATABASE "{name}"')
        workers = await conn.fetch("SELECT nodename, nodeport FROM pg_dist_node "
                                   "WHERE groupid <> 0 AND noderole = 'primary' AND isactive ORDER BY nodeid")
        coordinator = await conn.fetchrow("SELECT nodename, nodeport FROM pg_dist_node WHERE groupid = 0")
    finally:
        await conn.close()
    url = with_database(cluster_url, name)
    for host, port in workers:
        worker = await connect(make_url(url).set(host=host, port=port).render_as_string(hide_password=False))
        try:
            await worker.execute("CREATE EXTENSION IF NOT EXISTS citus")
        finally:
            await worker.close()
    conn = await connect(url)
    try:
        await conn.execute("CREATE EXTENSION IF NOT EXISTS citus")
        if coordinator is not None:
            await conn.execute("SELECT citus_set_coordinator_host($1, $2)", *coordinator)
        for host, port in workers:
            await conn.execute("SELECT citus_add_node($1, $2)", host, port)
    finally:
        await conn.close()
    return url


async def drop_database(cluster_url: str, name: str) -> None:
    """Drops database `name` on the coordinator and its workers."""
    conn = await connect(cluster_url)
    try:
        await conn.execute("SET citus.enable_create_database_propagation = on")
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await conn.close()
