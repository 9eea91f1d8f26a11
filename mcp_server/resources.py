"""MCP resources: an account's financial picture, an invoice (markdown and JSON), a price plan, a usage meter.

Each is a URI template read through the same application layer as the matching tool (get_account,
get_invoice, get_price_plan, list_usage_meters), in one unit of work that first brings the account up to
now (catch-up-then-read), and under the same scope: over HTTP a key without `billing:read` reads no account
or invoice. resources/list also names the newest few of each kind (bounded); the templates and
completion/complete reach the rest.
"""

from __future__ import annotations

import functools
import json
import logging
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any, Literal
from urllib.parse import quote

from mcp.server.context import ServerRequestContext
from mcp.server.mcpserver import Context, MCPServer
from mcp.shared.exceptions import MCPError
from mcp.shared.uri_template import UriTemplate
from mcp_types import (
    INTERNAL_ERROR,
    INVALID_PARAMS,
    INVALID_REQUEST,
    ListResourcesResult,
    PaginatedRequestParams,
    Resource,
)
from pydantic import BaseModel
from sqlalchemy.ext.asyncio import AsyncSession

from mcp_server.app import AppContext
from mcp_server.auth import current_principal
from mcp_server.invoice_markdown import invoice_markdown
from mcp_server.registry import app_of
from togai_engine.accounts import service as account_service
from togai_engine.app import accounts as app_accounts
from togai_engine.app import invoices as app_invoices
from togai_engine.app import lookup
from togai_engine.app.unit import Unit, unit_of_work
from togai_engine.common.messages import quote as quote_sent
from togai_engine.errors import EngineError, NotFound
from togai_engine.meters import service as meters
from togai_engine.plans.versions import plan_with_versions

log = logging.getLogger("togai_engine.resources")

ACCOUNT = "togai://accounts/{accountId}"
INVOICE = "togai://invoices/{invoiceId}"
INVOICE_JSON = "togai://invoices/{invoiceId}.json"
PRICE_PLAN = "togai://price-plans/{pricePlanId}"
USAGE_METER = "togai://usage-meters/{usageMeterId}"
LISTED_PER_KIND = 20  # resources/list: the newest of each kind; templates + completion reach the others

ListedKind = Literal["account", "invoice", "price_plan", "usage_meter"]


@dataclass(frozen=True)
class ResourceKind:
    template: str
    scope: str
    tool: str  # the tool that reads the same thing, named in a refusal
    listed: ListedKind


KINDS = (
    # The JSON invoice template comes first: `{invoiceId}` alone would also match "inv_1.json".
    ResourceKind(INVOICE_JSON, "billing:read", "get_invoice", "invoice"),
    ResourceKind(INVOICE, "billing:read", "get_invoice", "invoice"),
    ResourceKind(ACCOUNT, "billing:read", "get_account", "account"),
    ResourceKind(PRICE_PLAN, "plans:read", "get_price_plan", "price_plan"),
    ResourceKind(USAGE_METER, "meters:read", "list_usage_meters", "usage_meter"),
)
PARSED = [(kind, UriTemplate.parse(kind.template)) for kind in KINDS]


def expand(template: str, value: str) -> str:
    """The URI of one resource: the template with its one variable percent-encoded (RFC 6570 simple
    expansion), e.g. expand(INVOICE, "inv_1") == "togai://invoices/inv_1"."""
    start, end = template.index("{"), template.index("}")
    return template[:start] + quote(value, safe="") + template[end + 1:]


def kind_of(uri: str) -> tuple[ResourceKind, str] | None:
    """The resource kind a concrete URI names and the id in it; None when it names none of ours."""
    for kind, parsed in PARSED:
        matched = parsed.match(uri)
        if matched is not None:
            value = next(iter(matched.values()))
            return kind, value if isinstance(value, str) else "/".join(value)
    return None


def require_scope(kind: ResourceKind, uri: str) -> None:
    """A caller without the kind's scope is refused before anything is read, naming the scope."""
    if not current_principal().allows(kind.scope):
        raise MCPError(INVALID_REQUEST, f"this API key lacks scope {kind.scope!r}, required to read {quote_sent(uri)} (as by "
                                        f"{kind.tool}); ask for a key with that scope (togai-engine keys create "
                                        f"--name ... --scopes {kind.scope})")


@asynccontextmanager
async def reading(ctx: Context, template: str, value: str) -> AsyncIterator[Unit]:
    """Scope check, then one unit of work (reads may first close due cycles, as the tools' reads do); engine
    errors become MCP errors carrying the engine's message (unknown id: invalid params, as the SDK answers
    for a resource that does not exist)."""
    uri = expand(template, value)
    require_scope(next(kind for kind in KINDS if kind.template == template), uri)
    app = app_of(ctx)
    try:
        async with unit_of_work(app.db, app.call_now(), actor=current_principal().actor) as unit:
            yield unit
    except EngineError as exc:
        raise MCPError(INVALID_PARAMS, f"{quote_sent(uri)}: {exc.message}", data={"uri": quote_sent(uri)}) from None


def as_json(model: BaseModel) -> str:
    """The same JSON the matching tool returns as structured content."""
    return json.dumps(model.model_dump(mode="json", by_alias=True), indent=2, ensure_ascii=False)


async def _account_id(session: AsyncSession, handle: str) -> str:
    account_id = await account_service.resolve_account_id(session, handle)
    if account_id is None:
        raise NotFound(f"account {quote_sent(handle)} does not exist (neither an id nor an alias); list_accounts shows them")
    return account_id


async def read_account(accountId: str, ctx: Context) -> str:
    """The account (by id or alias) and its financial picture, as get_account returns it: current price plan and
    cycle, charges accrued in the open cycle, wallet balance and the outstanding (DUE) amount: in the invoiceCurrency
    (`outstanding`) and per currency (`outstandingByCurrency`); late usage owed and not invoiced yet
    (`pendingLateUsage`); why bill runs cannot bill the account, when they fail on it (`billingProblem`)."""
    async with reading(ctx, ACCOUNT, accountId) as unit:
        account_id = await _account_id(unit.session, accountId)
        account = await app_accounts.get_account(unit.session, account_id, unit.now)
    return as_json(app_of(ctx).marked(account))


async def read_invoice_markdown(invoiceId: str, ctx: Context) -> str:
    """The invoice as a document: facts, the line tree (slabs under their card) and the totals."""
    async with reading(ctx, INVOICE, invoiceId) as unit:
        invoice = await app_invoices.get_invoice(unit.session, unit.now, invoice_id=invoiceId)
    return invoice_markdown(app_of(ctx).marked(invoice))


async def read_invoice_json(invoiceId: str, ctx: Context) -> str:
    """The invoice exactly as get_invoice returns it."""
    async with reading(ctx, INVOICE_JSON, invoiceId) as unit:
        invoice = await app_invoices.get_invoice(unit.session, unit.now, invoice_id=invoiceId)
    return as_json(app_of(ctx).marked(invoice))


async def read_price_plan(pricePlanId: str, ctx: Context) -> str:
    """The price plan's ACTIVE version with every rate card and the list of versions, as get_price_plan
    returns it."""
    async with reading(ctx, PRICE_PLAN, pricePlanId) as unit:
        plan = await plan_with_versions(unit.session, pricePlanId, None)
    return as_json(plan)


async def read_usage_meter(usageMeterId: str, ctx: Context) -> str:
    """The usage meter: its event schema, aggregation and computations."""
    async with reading(ctx, USAGE_METER, usageMeterId) as unit:
        meter = await meters.get_meter(unit.session, usageMeterId)
    return as_json(meter)


READERS: list[tuple[str, str, str, str, Callable[..., Awaitable[str]]]] = [
    # (template, name, title, mime type, reader); the JSON invoice first (see KINDS)
    (INVOICE_JSON, "invoice_json", "Invoice (JSON)", "application/json", read_invoice_json),
    (INVOICE, "invoice", "Invoice", "text/markdown", read_invoice_markdown),
    (ACCOUNT, "account", "Account and its financial picture", "application/json", read_account),
    (PRICE_PLAN, "price_plan", "Price plan with its rate cards", "application/json", read_price_plan),
    (USAGE_METER, "usage_meter", "Usage meter", "application/json", read_usage_meter),
]


async def listed_resources(session: AsyncSession) -> list[Resource]:
    """The newest few resources of each kind the caller may read."""
    principal = current_principal()
    found: list[Resource] = []
    for template, name, title, mime_type, _ in READERS:
        if template == INVOICE_JSON:
            continue  # each invoice is listed once, as its document; the .json twin is in the templates
        kind = next(k for k in KINDS if k.template == template)
        if not principal.allows(kind.scope):
            continue
        for entry in await lookup.recent(session, kind.listed, LISTED_PER_KIND):
            found.append(Resource(uri=expand(template, entry.id), name=f"{name}:{entry.id}",
                                  title=f"{entry.label} ({entry.id})" if entry.label != entry.id else entry.id,
                                  description=entry.detail or title, mime_type=mime_type))
    return found


def guarded(template: str, reader: Callable[..., Awaitable[str]]) -> Callable[..., Awaitable[str]]:
    """`reader`, whose crash is answered as a tool's is (registry.tool): an error naming a ref, the traceback
    logged under it; not the SDK's bare "Error creating resource from template", which matches no log line."""

    @functools.wraps(reader)
    async def read(*args: Any, **kwargs: Any) -> str:
        try:
            return await reader(*args, **kwargs)
        except MCPError:
            raise
        except Exception:
            value = next(v for v in (*args, *kwargs.values()) if isinstance(v, str))
            uri = quote_sent(expand(template, value))
            ref = uuid.uuid4().hex[:12]
            log.exception("reading resource %s failed unexpectedly (ref %s)", uri, ref)
            raise MCPError(INTERNAL_ERROR, f"reading {uri} failed because of an internal error (ref {ref}); nothing "
                                           "was changed. The server log has the details under that ref.",
                           data={"uri": uri}) from None

    return read


def register_resources(server: MCPServer[Any]) -> None:
    for template, name, title, mime_type, reader in READERS:
        server.resource(template, name=name, title=title, mime_type=mime_type,
                        description=" ".join((reader.__doc__ or "").split()))(guarded(template, reader))

    async def list_resources(ctx: ServerRequestContext[AppContext], params: PaginatedRequestParams) -> ListResourcesResult:
        async with ctx.lifespan_context.db.unit_of_work() as session:
            dynamic = await listed_resources(session)
        return ListResourcesResult(resources=[*await server.list_resources(), *dynamic])

    # MCPServer's resources/list names only resources registered one by one (static), and its handler sees no
    # request context (no database): the low-level server's handler is replaced, keeping those first.
    server._lowlevel_server.add_request_handler("resources/list", PaginatedRequestParams, list_resources)
