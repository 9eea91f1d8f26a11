"""The MCP server: one lifespan owns the database engine; every tool module registers itself."""

from __future__ import annotations

import importlib
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any

from mcp.server.mcpserver import MCPServer
from mcp.server.mcpserver.exceptions import ToolError
from mcp_types import Tool
from pydantic import ValidationError

from mcp_server.app import AppContext
from mcp_server.auth import current_principal
from mcp_server.completions import register_completions
from mcp_server.prompts import register_prompts
from mcp_server.registry import (
    SPECS,
    check_scope,
    checks_own_text,
    describe_validation_error,
    register_all,
    reject_unstorable_text,
)
from mcp_server.resource_updates import ResourceUpdates
from mcp_server.resources import register_resources
from mcp_server.views import views_extension
from togai_engine import __version__
from togai_engine.common.clock import Clock, SystemClock
from togai_engine.store.database import Database

TOOL_MODULES = (
    "customers", "accounts", "events", "meters", "metrics", "plans", "invoices", "credit_notes", "wallets",
    "entitlements", "lab", "audit",
)

INSTRUCTIONS = """\
togai-engine: usage billing on a local PostgreSQL. Typical flow: create_customer (with an inline
account) -> create_usage_meter -> create_price_plan -> update_account(pricePlanId) -> ingest_event /
ingest_batch_events -> get_metrics, list_invoices, get_wallet_balance, check_entitlement.
Money is returned as decimal strings. When retrying a write, reuse the same id / idempotency key.
"""


def load_tools() -> None:
    for module in TOOL_MODULES:
        importlib.import_module(f"mcp_server.tools.{module}")


class TogaiServer(MCPServer[AppContext]):
    # Awaited after a tool call succeeded (its transaction committed), e.g. to notify resource subscribers.
    after_tool_call: list[Callable[[str, dict[str, Any], Any, Any], Awaitable[None]]]

    async def list_tools(self) -> list[Tool]:
        # An HTTP key sees the tools its scopes allow (the local stdio user, every tool): an agent is not
        # offered tools that can only answer "lacks scope".
        principal = current_principal()
        return [t for t in await super().list_tools() if t.name not in SPECS or principal.allows(SPECS[t.name].scope)]

    async def call_tool(self, name: str, arguments: dict[str, Any], context: Any = None) -> Any:
        # Scope first, before argument validation: a caller without the scope learns nothing else.
        check_scope(name)
        if not checks_own_text(name):
            reject_unstorable_text(arguments)
        try:
            result = await super().call_tool(name, arguments, context)
        except ToolError as exc:
            # Arguments that do not validate (the SDK raises ToolError for those; an UnexpectedToolError
            # is a crash inside a tool and stays the SDK's): the SDK's text names pydantic's model and
            # links its docs; say it in the tool's terms.
            if type(exc) is ToolError and isinstance(exc.__cause__, ValidationError):
                raise ToolError(f"{name}: {describe_validation_error(exc.__cause__)}") from None
            raise
        for observer in self.after_tool_call:
            await observer(name, arguments, result, context)
        return result


def build_server(
    database: Database | Callable[[], AbstractAsyncContextManager[AppContext]],
    *,
    clock: Clock | None = None,
    **server_options: object,
) -> TogaiServer:
    """A server bound to a database (tests pass their own Database and a controllable clock)."""
    load_tools()

    @asynccontextmanager
    async def lifespan(_: MCPServer) -> AsyncIterator[AppContext]:
        if isinstance(database, Database):
            yield AppContext(db=database, clock=clock or SystemClock())
        else:
            async with database() as app:
                yield app

    server_options.setdefault("log_level", "WARNING")  # the SDK logs every refused call at INFO
    server = TogaiServer(
        "togai-engine", version=__version__, instructions=INSTRUCTIONS, lifespan=lifespan,
        extensions=[views_extension()], **server_options  # type: ignore[arg-type]
    )
    register_all(server)
    server.after_tool_call = []
    register_prompts(server)
    register_resources(server)
    register_completions(server)
    updates = ResourceUpdates()
    updates.install(server)
    server.after_tool_call.append(updates.after_tool_call)
    return server
