"""`pure_read(ctx)`: the unit of work of tools whose services only read.

A `uow` costs two round trips of its own (BEGIN and COMMIT, ~0.4 ms together on a local server)
around the statements of the call. A tool that never writes — not even the catch-up bill runs that
invoice and wallet reads do — needs neither: its statements run in autocommit, each one on its own
snapshot of committed data (so a multi-statement read may see a commit land between two of them,
as two consecutive tool calls could). Read-only calls are not audited, so nothing else is lost.

Use it only for services that cannot write; everything else keeps `uow`.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from mcp.server.mcpserver import Context
from sqlalchemy.ext.asyncio import AsyncSession

from mcp_server.registry import UnitOfWork, app_of


@asynccontextmanager
async def pure_read(ctx: Context) -> AsyncIterator[UnitOfWork]:
    app = app_of(ctx)
    async with app.db.engine.connect() as connection:
        autocommit = await connection.execution_options(isolation_level="AUTOCOMMIT")
        async with AsyncSession(bind=autocommit, expire_on_commit=False, autoflush=False) as session:
            yield UnitOfWork(session=session, now=await app.now_in(session), app=app)
