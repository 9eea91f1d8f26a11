"""A throwaway sandbox engine: a fresh database (cloned from the migrated template), made a sandbox at a chosen
time, with the MCP server in front of it and a client session on it. Scenario files run on one each; the
pytest plugin gives one to each test. Everything it made is dropped on the way out."""

from __future__ import annotations

import threading
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from datetime import datetime

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


# The database of the sandbox engine being entered: the server's lifespan serves it to the session.
_serving: ContextVar[Database] = ContextVar("serving")


@asynccontextmanager
async def _serve_current() -> AsyncIterator[AppContext]:
    yield AppContext(db=_serving.get(), clock=SystemClock(), sandbox=True)


# Sandbox servers not serving a session now. Building a server generates every tool's JSON schema (about 0.3 s,
# more than cloning a database), so servers are reused; but a server's resource subscriptions and notification
# bus span its sessions, so it serves one session at a time, or a write in one sandbox would be announced to a
# watcher of the same URI in another. Engines open at once each get their own server.
_idle_servers: list[TogaiServer] = []
_idle_lock = threading.Lock()  # the pytest plugin opens engines from its portal's thread


def warm_sandbox_server() -> None:
    """Builds a server ahead of the first engine, so a fresh database's start-up is timed without it."""
    with _idle_lock:
        if _idle_servers:
            return
    server = build_server(_serve_current, sandbox=True)
    with _idle_lock:
        _idle_servers.append(server)


@contextmanager
def _borrowed_server() -> Iterator[TogaiServer]:
    with _idle_lock:
        server = _idle_servers.pop() if _idle_servers else None
    if server is None:
        server = build_server(_serve_current, sandbox=True)
    try:
        yield server
    finally:
        with _idle_lock:
            _idle_servers.append(server)


@asynccontextmanager
async def sandbox_engine(server_url: str, start: datetime) -> AsyncIterator[SandboxEngine]:
    """A throwaway sandbox database with an in-memory MCP client session on a sandbox server over it.
    Tool errors come back as results (`is_error`), as a remote client sees them."""
    async with throwaway_database(server_url, start) as db:
        serving = _serving.set(db)
        try:
            with _borrowed_server() as server:
                async with Client(server, raise_exceptions=False) as client:
                    yield SandboxEngine(url=db.url, db=db, client=client)
        finally:
            _serving.reset(serving)
