"""The MCP server: one lifespan owns the database engine; every tool module registers itself."""

from __future__ import annotations

import contextlib
import importlib
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any

import anyio
from mcp.server.mcpserver import MCPServer
from mcp.server.mcpserver.exceptions import ToolError
from mcp_types import Tool
from pydantic import ValidationError

from mcp_server.app import AppContext
from mcp_server.argument_checks import check_arguments
from mcp_server.auth import current_principal
from mcp_server.completions import register_completions
from mcp_server.prompts import register_prompts
from mcp_server.registry import (
    SPECS,
    check_scope,
    checks_own_text,
    describe_validation_error,
    is_bulk,
    register_all,
)
from mcp_server.resource_updates import ResourceUpdates
from mcp_server.resources import register_resources
from mcp_server.views import views_extension
from togai_engine import __version__
from togai_engine.common.clock import Clock, SystemClock
from togai_engine.common.json_text import loads_checked, may_hold_inexact_number
from togai_engine.common.messages import shorten_echoes
from togai_engine.errors import InvalidInput
from togai_engine.store.database import Database

TOOL_MODULES = (
    "customers", "accounts", "events", "meters", "metrics", "plans", "invoices", "credit_notes", "wallets",
    "entitlements", "lab", "audit", "clock", "licenses",
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


def pre_parse_json(metadata: Any, arguments: dict[str, Any]) -> dict[str, Any]:
    """The SDK's pre_parse_json (a string sent for an argument that is not text, `"{...}"`, is parsed as JSON),
    with such a string read by loads_checked as the transports read a message: a number in it that a float does not
    hold becomes an InexactNumber, which check_arguments refuses by name (json.loads would make 1e-400 0.0)."""
    parsed = metadata.pre_parse_json(arguments)
    for key, value in parsed.items():
        sent = arguments[key]
        if value is not sent and isinstance(sent, str) and may_hold_inexact_number(sent):
            with contextlib.suppress(ValueError, RecursionError):  # NaN: as the SDK read it, refused later
                parsed[key] = loads_checked(sent)
    return parsed


DEFAULT_TOOL_TIMEOUT_SECONDS = 60.0
DEFAULT_BULK_TOOL_TIMEOUT_SECONDS = 300.0


class TogaiServer(MCPServer[AppContext]):
    tool_timeout_seconds = DEFAULT_TOOL_TIMEOUT_SECONDS
    bulk_tool_timeout_seconds = DEFAULT_BULK_TOOL_TIMEOUT_SECONDS

    # Awaited after a tool call succeeded (its transaction committed), e.g. to notify resource subscribers.
    after_tool_call: list[Callable[[str, dict[str, Any], Any, Any], Awaitable[None]]]

    async def list_tools(self) -> list[Tool]:
        # An HTTP key sees the tools its scopes allow (the local stdio user, every tool): an agent is not
        # offered tools that can only answer "lacks scope".
        principal = current_principal()
        return [t for t in await super().list_tools()
                if t.name not in SPECS or all(principal.allows(scope) for scope in SPECS[t.name].scopes)]

    async def call_tool(self, name: str, arguments: dict[str, Any], context: Any = None) -> Any:
        # Scope first, before argument validation: a caller without the scope learns nothing else.
        check_scope(name)
        registered = self._tool_manager.get_tool(name)
        if registered is not None:
            # The SDK parses a string sent for a non-string argument as JSON; check what the tool will see.
            arguments = pre_parse_json(registered.fn_metadata, arguments)
            try:
                if not checks_own_text(name):  # the ingest tools check each event, to reject it alone
                    check_arguments(arguments, registered.parameters)
            except InvalidInput as exc:
                raise ToolError(shorten_echoes(f"{name}: invalid input: {exc.message}", arguments)) from None
        seconds = self.bulk_tool_timeout_seconds if is_bulk(name) else self.tool_timeout_seconds
        try:
            with anyio.fail_after(seconds):
                result = await super().call_tool(name, arguments, context)
        except TimeoutError:
            raise ToolError(
                f"{name} did not finish within {seconds:g} s and was stopped; what it had done was rolled back "
                "(a write that was committing as the time ran out may have been kept: retrying it with the same id "
                "or idempotencyKey is safe). Ask for less at once: fewer items, fewer accounts, a shorter range"
            ) from None
        except ToolError as exc:
            # An UnexpectedToolError is a crash inside a tool: its text is already only a ref.
            if type(exc) is not ToolError:
                raise
            # Arguments that do not validate (the SDK raises ToolError for those): the SDK's text names
            # pydantic's model and links its docs; say it in the tool's terms.
            if isinstance(exc.__cause__, ValidationError):
                raise ToolError(shorten_echoes(
                    f"{name}: {describe_validation_error(exc.__cause__, arguments)}", arguments)) from None
            raise ToolError(shorten_echoes(str(exc), arguments)) from None
        for observer in self.after_tool_call:
            await observer(name, arguments, result, context)
        return result


def build_server(
    database: Database | Callable[[], AbstractAsyncContextManager[AppContext]],
    *,
    clock: Clock | None = None,
    sandbox: bool = False,
    tool_timeout_seconds: float = DEFAULT_TOOL_TIMEOUT_SECONDS,
    bulk_tool_timeout_seconds: float = DEFAULT_BULK_TOOL_TIMEOUT_SECONDS,
    **server_options: object,
) -> TogaiServer:
    """A server bound to a database (tests pass their own Database and a controllable clock). A tool call
    running longer than its timeout (the bulk tools' for ingest_batch_events, void_events and
    simulate_price_plan) is stopped with an error. `sandbox`: every call's time is the database's sandbox clock
    (the database must be one: togai_engine.sandbox.service.start)."""
    load_tools()

    @asynccontextmanager
    async def lifespan(_: MCPServer) -> AsyncIterator[AppContext]:
        if isinstance(database, Database):
            yield AppContext(db=database, clock=clock or SystemClock(), sandbox=sandbox)
        else:
            async with database() as app:
                yield app

    server_options.setdefault("log_level", "WARNING")  # the SDK logs every refused call at INFO
    updates = ResourceUpdates()
    server = TogaiServer(
        "togai-engine", version=__version__, instructions=INSTRUCTIONS, lifespan=lifespan,
        extensions=[views_extension()], subscriptions=updates.bus, **server_options  # type: ignore[arg-type]
    )
    server.tool_timeout_seconds = tool_timeout_seconds
    server.bulk_tool_timeout_seconds = bulk_tool_timeout_seconds
    register_all(server)
    server.after_tool_call = []
    register_prompts(server)
    register_resources(server)
    register_completions(server)
    updates.install(server)
    server.after_tool_call.append(updates.after_tool_call)
    return server
