"""What a test holds: a throwaway sandbox engine behind plain synchronous calls (`Togai`), the same calls as
coroutines for async tests (`AsyncTogai`), and the error a failing tool call raises (`ToolCallError`).

The engine lives in an event loop of its own, on a thread (anyio's blocking portal): a sync test calls into
it without an asyncio plugin, and an async test on any loop (pytest-asyncio's, anyio's, trio) awaits it from a
worker thread, so the two can share one engine whatever loop the test runs on."""

from __future__ import annotations

import functools
from collections.abc import Mapping
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

import anyio.to_thread
from anyio.from_thread import BlockingPortal
from mcp import Client

from mcp_server.sandbox_engine import SandboxEngine
from togai_engine.common import validation

# The SDK's prefix on an error raised inside a tool; the rest is the engine's own message.
_SDK_PREFIX = "Error executing tool {tool}: "


class ToolCallError(Exception):
    """A tool call answered with an error: `tool` is the tool's name, `message` the engine's message (it names
    the field and the fix), `arguments` what was sent (as JSON)."""

    def __init__(self, tool: str, message: str, arguments: Mapping[str, Any]) -> None:
        super().__init__(f"{tool} failed: {message}")
        self.tool = tool
        self.message = message
        self.arguments = dict(arguments)


class BillingFailed(Exception):
    """advance moved the clock, but the bill run could not bill some accounts: `failed` lists them
    (`accountId`, `reason`), `result` is advance_clock's whole answer. Raised so a test never reads such an
    account's invoices as if they were right (they would still be DRAFT); pass `allow_failures=True` to a test
    that means to look at a failure."""

    def __init__(self, result: Mapping[str, Any]) -> None:
        self.result = dict(result)
        self.failed: list[dict[str, Any]] = list(result.get("failed") or [])
        reasons = "; ".join(f"{failure['accountId']}: {failure['reason']}" for failure in self.failed)
        super().__init__(f"the clock moved to {result.get('now')} but {len(self.failed)} account(s) could not be "
                         f"billed: {reasons}")


def jsonable(value: Any) -> Any:
    """Arguments as JSON sends them: a datetime as ISO 8601 UTC text (`...Z`; one without an offset is UTC, as
    the tools read it), a date as `YYYY-MM-DD`, a Decimal as its exact text, inside dicts and lists too;
    everything else as given."""
    if isinstance(value, datetime):
        return validation.instant_text(value.replace(tzinfo=UTC) if value.utcoffset() is None else value)
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, Mapping):
        return {key: jsonable(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [jsonable(item) for item in value]
    return value


async def call_tool(client: Client, tool: str, arguments: Mapping[str, Any]) -> dict[str, Any]:
    """The tool's structured result; ToolCallError when it answers with an error."""
    sent = jsonable(arguments)
    result = await client.call_tool(tool, sent)
    if result.is_error:
        text = "".join(getattr(block, "text", "") for block in result.content)
        raise ToolCallError(tool, text.removeprefix(_SDK_PREFIX.format(tool=tool)), sent)
    # Every tool declares an output schema, so a successful call always has structured content.
    assert result.structured_content is not None, f"{tool} returned no structured content"
    return result.structured_content


def clock_arguments(by: str | None, to: str | datetime | date | None) -> dict[str, Any]:
    if (by is None) == (to is None):
        raise TypeError("advance takes exactly one of by= (an ISO 8601 duration such as 'P1M') or to= (an instant)")
    return {"by": by} if by is not None else {"to": to}


class Togai:
    """A clean sandbox engine for one test, called synchronously.

    `call(tool, **arguments)` returns the tool's structured result; `advance(by=... | to=...)` moves the
    sandbox clock (running every bill run in between); `now` is the sandbox time; `url` the database's URL.
    `client` is the raw MCP client session, which lives on `portal`'s event loop: call it through the portal,
    e.g. `togai.portal.call(togai.client.list_tools)`."""

    def __init__(self, portal: BlockingPortal, engine: SandboxEngine) -> None:
        self.portal = portal
        self.engine = engine
        self.client = engine.client
        self.url = engine.url

    def call(self, tool: str, /, **arguments: Any) -> dict[str, Any]:
        return self.portal.call(call_tool, self.client, tool, arguments)

    def advance(self, *, by: str | None = None, to: str | datetime | date | None = None,
                allow_failures: bool = False) -> dict[str, Any]:
        """Moves the clock forward (never back); returns advance_clock's `{now, previous, invoicesDue,
        draftsOpened, failed}`. Raises BillingFailed when an account could not be billed (the clock has
        moved), unless `allow_failures`."""
        result = self.call("advance_clock", **clock_arguments(by, to))
        if result.get("failed") and not allow_failures:
            raise BillingFailed(result)
        return result

    @property
    def now(self) -> datetime:
        return validation.parse_instant(self.call("get_clock")["now"], "now")


class AsyncTogai:
    """The same engine as `Togai` (the same database), for async tests: `await call(...)`, `await
    advance(...)`, `await now()`. Each call runs the synchronous one on a worker thread, so it works from
    any event loop and never blocks the test's own."""

    def __init__(self, sync: Togai) -> None:
        self.sync = sync
        self.url = sync.url

    async def call(self, tool: str, /, **arguments: Any) -> dict[str, Any]:
        return await anyio.to_thread.run_sync(functools.partial(self.sync.call, tool, **arguments))

    async def advance(self, *, by: str | None = None, to: str | datetime | date | None = None,
                      allow_failures: bool = False) -> dict[str, Any]:
        return await anyio.to_thread.run_sync(
            functools.partial(self.sync.advance, by=by, to=to, allow_failures=allow_failures))

    async def now(self) -> datetime:
        return validation.parse_instant((await self.call("get_clock"))["now"], "now")
