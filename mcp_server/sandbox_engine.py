"""A throwaway sandbox engine: a fresh database (cloned from the migrated template), made a sandbox at a chosen
time, with the MCP server in front of it and a client session on it. Scenario files run on one each; the
pytest plugin gives one to each test. Everything it made is dropped on the way out."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from datetime import datetime
from functools import cache

import anyio
from mcp import Client

from mcp_server.app import AppContext
from mcp_server.server import TogaiServer, build_server
from togai_engine.common.clock import SystemClock
from togai_engine.sandbox import service as sandbox_service
from togai_engine.store.database import Database
from togai_engine.store.partitions import ensure_ahead
from togai_engine.store.throwaway import ThrowawayServer


@dataclass(frozen=True)
class SandboxEngine:
    url: str  # the throwaway database (SQLAlchemy asyncpg URL), for code that reads it or serves it over HTTP
    db: Database
    client: Client  # an MCP client session, in memory, on a sandbox server


@asynccontextmanager
async def throwaway_database(server_url: str, start: datetime) -> AsyncIterator[Database]:
    """A fresh database on the server `server_url` points at, a sandbox at `start`; dropped afterwards."""
    server = ThrowawayServer(server_url)
    url = await server.create()
    db = Database(url, pool_size=4)
    try:
        async with db.unit_of_work() as session:
            await sandbox_service.start(session, start)
        await ensure_ahead(db.engine, start)
        yield db
    finally:
        # Shielded: in a cancelled scope (a timeout around the engine) every await would raise at once, and
        # the database would be left on the server.
        with anyio.CancelScope(shield=True):
            await db.dispose()
            await server.drop(url)


# The database of the sandbox engine being entered: the shared server's lifespan serves it to the session.
_serving: ContextVar[Database] = ContextVar("serving")


@asynccontextmanager
async def _serve_current() -> AsyncIterator[AppContext]:
    yield AppContext(db=_serving.get(), clock=SystemClock(), sandbox=True)


@cache
def shared_sandbox_server() -> TogaiServer:
    """One sandbox server for every throwaway engine of this process: building a server generates every
    tool's JSON schema (about 0.3 s), far more than cloning a database. Each client session gets the database
    that was current when it was opened (the session's tasks inherit the context)."""
    return build_server(_serve_current, sandbox=True)


@asynccontextmanager
async def sandbox_engine(server_url: str, start: datetime) -> AsyncIterator[SandboxEngine]:
    """A throwaway sandbox database with an in-memory MCP client session on a sandbox server over it.
    Tool errors come back as results (`is_error`), as a remote client sees them."""
    async with throwaway_database(server_url, start) as db:
        serving = _serving.set(db)
        try:
            async with Client(shared_sandbox_server(), raise_exceptions=False) as client:
                yield SandboxEngine(url=db.url, db=db, client=client)
        finally:
            _serving.reset(serving)
