"""Throwaway databases: a fresh, migrated database in a fraction of a second, for scenario files and for the
tests of pipelines that bill against the engine.

Running the migrations takes seconds; cloning a database does not. So the first database asked for on a
server migrates a template database once (`togai_template_<digest of the migrations and the code they run>`, marked
IS_TEMPLATE and closed to connections, so a stray session cannot block a clone), and every throwaway
database is `CREATE DATABASE … TEMPLATE` of it. A change to any migration file names a new template, so a
stale schema is never cloned. Building the template is serialised across processes by an advisory lock.
"""

from __future__ import annotations

import asyncio
import hashlib
import secrets
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import asyncpg
from sqlalchemy.engine import make_url

from togai_engine.store import migrate, partitions

TEMPLATE_PREFIX = "togai_template_"
THROWAWAY_PREFIX = "togai_throwaway_"
_BUILD_LOCK = 0x70_6761_7474  # pg_advisory_lock key: one template build at a time per server
_MAINTENANCE_DATABASE = "postgres"


class ThrowawayError(RuntimeError):
    """A throwaway database could not be made; the message says why and what to do."""


def with_database(url: str, name: str) -> str:
    """`url` (a SQLAlchemy asyncpg URL) naming database `name` instead."""
    return make_url(url).set(database=name).render_as_string(hide_password=False)


def database_of(url: str) -> str | None:
    return make_url(url).database


async def connect(url: str) -> asyncpg.Connection:
    """A plain asyncpg connection to the database `url` names, with every option of its query (a socket folder
    as `host`, `sslmode`, …) as libpq reads them."""
    return await asyncpg.connect(make_url(url).set(drivername="postgresql").render_as_string(hide_password=False))


# Code the migrations run besides their own files: migration 0006 makes the events partitions with it.
_SCHEMA_CODE = (Path(partitions.__file__),)


def template_name() -> str:
    """Names the schema the migrations make: a digest of every migration file and of the code they run."""
    digest = hashlib.sha256()
    for path in sorted(migrate.MIGRATIONS_DIR.rglob("*.py")):
        digest.update(path.relative_to(migrate.MIGRATIONS_DIR).as_posix().encode())
        digest.update(path.read_bytes())
    for path in _SCHEMA_CODE:
        digest.update(path.read_bytes())
    return f"{TEMPLATE_PREFIX}{digest.hexdigest()[:16]}"


def _quoted(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


@dataclass
class ThrowawayServer:
    """Makes and drops throwaway databases on the server `url` points at (any database on it; the role must be
    allowed to create databases)."""

    url: str

    @asynccontextmanager
    async def _maintenance(self) -> AsyncIterator[asyncpg.Connection]:
        """A connection to run CREATE/DROP DATABASE from: the server's `postgres` database, else (a server
        without one, or a role not allowed into it) the database the URL names."""
        conn = None
        for database in (_MAINTENANCE_DATABASE, database_of(self.url)):
            try:
                conn = await connect(with_database(self.url, database or _MAINTENANCE_DATABASE))
                break
            except (asyncpg.InvalidCatalogNameError, asyncpg.InvalidAuthorizationSpecificationError,
                    asyncpg.InsufficientPrivilegeError) as exc:
                failure: Exception = exc
            except (OSError, asyncpg.PostgresError) as exc:
                failure = exc
                break
        if conn is None:
            raise ThrowawayError(f"cannot reach the PostgreSQL server at {make_url(self.url).render_as_string()}: "
                                 f"{failure}; check TOGAI_DATABASE_URL or leave it unset for the embedded "
                                 "server") from failure
        try:
            yield conn
        finally:
            await conn.close()

    async def ensure_template(self) -> str:
        """The template's name, migrating it first if this server has none for today's migrations."""
        name = template_name()
        async with self._maintenance() as conn:
            if await self._exists(conn, name):
                return name
            await conn.execute("SELECT pg_advisory_lock($1)", _BUILD_LOCK)
            try:
                if not await self._exists(conn, name):
                    await self._build(conn, name)
            finally:
                await conn.execute("SELECT pg_advisory_unlock($1)", _BUILD_LOCK)
        return name

    async def create(self) -> str:
        """A new database with the engine's schema (no rows), and its URL."""
        template = await self.ensure_template()
        name = f"{THROWAWAY_PREFIX}{secrets.token_hex(6)}"
        async with self._maintenance() as conn:
            await self._clone(conn, template, name)
        return with_database(self.url, name)

    async def drop(self, url: str) -> None:
        """Drops a database this class made (refuses any other name: it must never drop a user's data)."""
        name = database_of(url) or ""
        if not name.startswith(THROWAWAY_PREFIX):
            raise ThrowawayError(f"{name!r} is not a throwaway database (their names start {THROWAWAY_PREFIX})")
        async with self._maintenance() as conn:
            await conn.execute(f"DROP DATABASE IF EXISTS {_quoted(name)} WITH (FORCE)")

    @staticmethod
    async def _exists(conn: asyncpg.Connection, name: str) -> bool:
        return bool(await conn.fetchval("SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)", name))

    async def _build(self, conn: asyncpg.Connection, name: str) -> None:
        # Built under another name and renamed when complete: a build cut off never leaves a half-migrated
        # template behind the real name.
        building = f"{name}_building"
        await conn.execute(f"DROP DATABASE IF EXISTS {_quoted(building)} WITH (FORCE)")
        try:
            await conn.execute(f"CREATE DATABASE {_quoted(building)}")
        except asyncpg.InsufficientPrivilegeError as exc:
            raise ThrowawayError("the database role cannot create databases, which throwaway databases need; "
                                 "grant it CREATEDB or leave TOGAI_DATABASE_URL unset for the embedded "
                                 "server") from exc
        try:
            # Alembic's environment runs its own event loop: it must not run on this one.
            await asyncio.to_thread(migrate.upgrade, with_database(self.url, building))
            await conn.execute(f"ALTER DATABASE {_quoted(building)} RENAME TO {_quoted(name)}")
        except BaseException:
            await conn.execute(f"DROP DATABASE IF EXISTS {_quoted(building)} WITH (FORCE)")
            raise
        await conn.execute(f"ALTER DATABASE {_quoted(name)} WITH IS_TEMPLATE true ALLOW_CONNECTIONS false")

    @staticmethod
    async def _clone(conn: asyncpg.Connection, template: str, name: str) -> None:
        # A small database copies faster block by block through the WAL than with FILE_COPY's checkpoints
        # (PostgreSQL 15's default; 14 has only FILE_COPY and no STRATEGY option).
        strategy = " STRATEGY WAL_LOG" if conn.get_server_version().major >= 15 else ""
        await conn.execute(f"CREATE DATABASE {_quoted(name)} TEMPLATE {_quoted(template)}{strategy}")
