"""How a tool is declared: name, scope, annotations, and one place that maps engine errors.

A handler is a few lines: it opens a unit of work with `uow(ctx)`, calls one service and returns
its schema. The decorator checks the caller's scope first; the unit of work writes the audit
record of a mutating call in the same transaction as the change.
"""

from __future__ import annotations

import contextvars
import functools
import logging
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Any, TypeVar

from mcp.server.mcpserver import Context, MCPServer
from mcp.server.mcpserver.exceptions import ToolError
from mcp_types import ToolAnnotations
from pydantic import BaseModel, Field, ValidationError
from sqlalchemy.ext.asyncio import AsyncSession

from mcp_server.app import AppContext
from mcp_server.auth import Principal, current_principal
from togai_engine.app.unit import Unit, unit_of_work
from togai_engine.common import messages
from togai_engine.errors import EngineError, InvalidInput

log = logging.getLogger("togai_engine.tools")

PageSize = Annotated[int, Field(ge=1, le=100, description="items per page (default 20, max 100)")]
NextToken = Annotated[str | None, Field(description="nextToken from the previous page; omit for the first page")]
# How an Instant argument may be written, in every such argument's description.
AN_INSTANT = "a date (2026-12-01 = 00:00 UTC) or ISO 8601 date-time (no offset = UTC)"
F = TypeVar("F", bound=Callable[..., Awaitable[Any]])


@dataclass(frozen=True)
class ToolSpec:
    name: str
    scope: str
    mutating: bool
    fn: Callable[..., Awaitable[Any]]
    annotations: ToolAnnotations
    description: str
    audit_arguments: Callable[[dict[str, Any]], dict[str, Any]] | None = None
    checks_own_text: bool = False
    view: str | None = None
    bulk: bool = False
    # scopes needed on top of `scope`, with why (the data the tool shows that `scope` alone does not read)
    also_needs: tuple[str, ...] = ()
    also_needs_why: str = ""

    @property
    def scopes(self) -> tuple[str, ...]:
        return (self.scope, *self.also_needs)


TOOLS: list[ToolSpec] = []
SPECS: dict[str, ToolSpec] = {}
_current: contextvars.ContextVar[tuple[ToolSpec, dict[str, Any], Principal]] = contextvars.ContextVar("tool")


def tool(
    name: str,
    *,
    scope: str,
    read_only: bool = False,
    destructive: bool = False,
    idempotent: bool = False,
    title: str | None = None,
    audit_arguments: Callable[[dict[str, Any]], dict[str, Any]] | None = None,
    checks_own_text: bool = False,
    view: str | None = None,
    bulk: bool = False,
    also_needs: tuple[str, ...] = (),
    also_needs_why: str = "",
) -> Callable[[F], F]:
    """Declares an MCP tool. The function's docstring is its description (written for the agent).

    `read_only`, `destructive` (it can end, void or overwrite, not only add) and `idempotent` (the same call
    again changes nothing more) become the MCP annotations; tests/tools/test_tool_surface.py holds the table
    every tool must be in. `audit_arguments` condenses a bulky argument list for the audit record (e.g. a
    1000-event batch);
    `checks_own_text` says the tool checks its arguments item by item itself (text, numbers, shapes: a
    batch rejects one event, not the whole call), so the checks every other tool's arguments pass first
    (mcp_server/argument_checks.py) are left to it; `bulk` gives the tool the longer time limit; `view` is
    the `ui://` page (mcp_server/views) an MCP Apps host draws the result with, declared as the tool's
    `_meta.ui.resourceUri`; `also_needs` are scopes the tool needs on top of `scope` (tools/list shows it only
    to a key holding all), because of what it shows (`also_needs_why`)."""

    if view is not None and not view.startswith("ui://"):
        raise ValueError(f"tool {name}: view {view!r} must be a ui:// resource (MCP Apps)")

    def decorate(fn: F) -> F:
        @functools.wraps(fn)
        async def run(*args: Any, **kwargs: Any) -> Any:
            principal = check_scope(name)
            arguments = {k: v for k, v in kwargs.items() if not isinstance(v, Context)}
            token = _current.set((spec, arguments, principal))
            try:
                return await fn(*args, **kwargs)
            except EngineError as exc:
                raise ToolError(exc.message) from None
            except ValidationError as exc:
                raise ToolError(describe_validation_error(exc)) from None
            except ToolError:
                raise
            except Exception:
                ref = uuid.uuid4().hex[:12]
                log.exception("tool %s failed unexpectedly (ref %s)", name, ref)
                raise ToolError(f"{name} failed because of an internal error (ref {ref}); nothing was "
                                "changed. The server log has the details under that ref.") from None
            finally:
                _current.reset(token)

        description = (fn.__doc__ or "").strip()
        spec = ToolSpec(
            name=name,
            scope=scope,
            mutating=not read_only,
            fn=run,
            description=description,
            audit_arguments=audit_arguments,
            checks_own_text=checks_own_text,
            view=view,
            bulk=bulk,
            also_needs=also_needs,
            also_needs_why=also_needs_why,
            annotations=ToolAnnotations(
                title=title,
                readOnlyHint=read_only,
                destructiveHint=destructive,
                idempotentHint=idempotent,
                openWorldHint=False,
            ),
        )
        TOOLS.append(spec)
        SPECS[name] = spec
        return fn

    return decorate


def checks_own_text(tool_name: str) -> bool:
    spec = SPECS.get(tool_name)
    return spec is not None and spec.checks_own_text


def check_scope(tool_name: str) -> Principal:
    """The caller, if it may call this tool; a tool error naming the missing scope otherwise."""
    principal = current_principal()
    spec = SPECS.get(tool_name)
    if spec is not None and not principal.allows(spec.scope):
        raise ToolError(f"this API key lacks scope {spec.scope!r}, required by {tool_name}; ask for a key "
                        f"with that scope (togai-engine keys create --name ... --scopes {','.join(spec.scopes)})")
    for scope in spec.also_needs if spec is not None else ():
        if not principal.allows(scope):
            raise ToolError(f"this API key lacks scope {scope!r}, required by {tool_name} on top of {spec.scope} "
                            f"({spec.also_needs_why}); ask for a key with both (togai-engine keys create --name ... "
                            f"--scopes {','.join(spec.scopes)})")
    return principal


def require_scope(tool_name: str, scope: str, use: str) -> None:
    """A tool error naming the missing scope when the caller lacks `scope`, which `use` of the tool needs on
    top of the tool's own scope (check_entitlement's consume writes events: events:write)."""
    if not current_principal().allows(scope):
        raise ToolError(f"this API key lacks scope {scope!r}, required by {tool_name} with {use}; ask for a key "
                        f"with that scope too (togai-engine keys create --name ... --scopes {SPECS[tool_name].scope},"
                        f"{scope}), or call it without {use}")


def is_bulk(tool_name: str) -> bool:
    spec = SPECS.get(tool_name)
    return spec is not None and spec.bulk


def describe_validation_error(exc: ValidationError, *root: Any) -> str:
    """pydantic's errors in the request's terms (see togai_engine.common.messages); `root`, when given, is
    the input that was validated."""
    return "invalid input: " + messages.describe_validation_error(exc, *root)


def register_all(server: MCPServer) -> None:
    for spec in TOOLS:
        meta = {"ui": {"resourceUri": spec.view}} if spec.view else None
        server.add_tool(spec.fn, name=spec.name, description=spec.description, annotations=spec.annotations, meta=meta)
        # An argument the tool does not take is an error, not silently dropped: an agent that sends
        # invoiceCurrency to update_customer must learn that it belongs to update_account.
        registered = server._tool_manager.get_tool(spec.name)
        if registered is not None:
            arg_model = registered.fn_metadata.arg_model
            arg_model.model_config["extra"] = "forbid"
            arg_model.model_rebuild(force=True)
            registered.parameters = arg_model.model_json_schema(by_alias=True)


def app_of(ctx: Context) -> AppContext:
    return ctx.request_context.lifespan_context  # type: ignore[no-any-return]


@dataclass
class UnitOfWork:
    session: AsyncSession
    now: datetime
    app: AppContext
    unit: Unit | None = None

    def changed(self, *ids: str) -> None:
        assert self.unit is not None, "only a write's unit of work records changed ids"
        self.unit.changed(*ids)


@asynccontextmanager
async def uow(ctx: Context, *, moves_clock: bool = False) -> AsyncIterator[UnitOfWork]:
    """One tool call = one transaction (the application layer's unit of work); a mutating call's audit
    record commits with it. `moves_clock`: the call advances the sandbox clock (locks it for update)."""
    app = app_of(ctx)
    spec, arguments, principal = _current.get()
    if spec.mutating and spec.audit_arguments is not None:
        arguments = spec.audit_arguments(arguments)
    async with unit_of_work(app.db, app.call_now(), actor=principal.actor,
                            action=spec.name if spec.mutating else None, arguments=arguments,
                            moves_clock=moves_clock) as unit:
        yield UnitOfWork(session=unit.session, now=unit.now, app=app, unit=unit)


def model_input(model: type[BaseModel], field: str, value: Any) -> Any:
    """Validates a nested argument into an engine schema, naming the field's path from the tool's argument
    on error (account.effectiveFrom)."""
    try:
        return model.model_validate(value)
    except ValidationError as exc:
        described = messages.describe_errors(exc, value)
        raise InvalidInput("", "; ".join(f"{messages.join_path(field, path)}: {message}"
                                         for path, message in described)) from None
