"""completion/complete for the id arguments of the prompts and resource templates, from the store.

accountId (ids and aliases), customerId, invoiceId (an account's own, newest first, when the request's context
names its accountId), pricePlanId, usageMeterId and featureId (of the plan versions the context account has been
on, when named and the caller has entitlements:read, as get_entitlements shows an account's features; else of every
plan's ACTIVE versions) are prefix
searches, at most COMPLETION_LIMIT values, each one indexed range scan (togai_engine/app/lookup.py).
month and day offer the recent ones from the clock. A caller without the scope that lists those ids gets no
values (over HTTP; stdio is the local user), so completion reveals nothing the tools would not.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from dateutil.relativedelta import relativedelta
from mcp.server.context import ServerRequestContext
from mcp.server.mcpserver import MCPServer
from mcp.shared.exceptions import MCPError
from mcp.shared.uri_template import UriTemplate
from mcp_types import INVALID_PARAMS, CompleteRequestParams, CompleteResult, Completion, PromptReference
from sqlalchemy.ext.asyncio import AsyncSession

from mcp_server.app import AppContext
from mcp_server.auth import current_principal
from mcp_server.resources import KINDS
from togai_engine.app import lookup
from togai_engine.common.messages import encodable

COMPLETION_LIMIT = 20
RECENT_MONTHS = 13  # this month and the twelve before it
RECENT_DAYS = 14


@dataclass(frozen=True)
class Completable:
    kind: str
    scopes: frozenset[str]  # any one of them lets the caller see these ids


ARGUMENTS = {
    "accountId": Completable("account", frozenset({"customers:read", "billing:read"})),
    "customerId": Completable("customer", frozenset({"customers:read"})),
    "invoiceId": Completable("invoice", frozenset({"billing:read"})),
    "pricePlanId": Completable("price_plan", frozenset({"plans:read"})),
    "usageMeterId": Completable("usage_meter", frozenset({"meters:read"})),
    "featureId": Completable("feature", frozenset({"plans:read", "entitlements:read"})),
}
# Which features an account's plans have, and so whether it exists, is get_entitlements' answer: plans:read alone
# (every plan's features, list_price_plans) completes featureId without looking the context's account up.
ACCOUNT_FEATURES_SCOPE = "entitlements:read"
TEMPLATE_VARIABLES = {kind.template: set(UriTemplate.parse(kind.template).variable_names) for kind in KINDS}
NOTHING = Completion(values=[], total=0, has_more=False)


def _recent(values: list[str], prefix: str) -> Completion:
    found = [v for v in values if v.startswith(prefix)][:COMPLETION_LIMIT]
    return Completion(values=found, total=len(found), has_more=False)


async def complete_value(session: AsyncSession, argument: str, prefix: str, context: dict[str, str],
                         app: AppContext) -> Completion:
    """The values for one argument; `context` holds the arguments already given (e.g. accountId)."""
    if any(not _storable(text) for text in (prefix, *context.values())):
        return NOTHING  # a NUL or a lone surrogate matches no id, and PostgreSQL would refuse it
    if argument == "month":
        now = await app.now_in(session)
        return _recent([f"{now - relativedelta(months=i):%Y-%m}" for i in range(RECENT_MONTHS)], prefix)
    if argument == "day":
        now = await app.now_in(session)
        return _recent([f"{now - relativedelta(days=i):%Y-%m-%d}" for i in range(RECENT_DAYS)], prefix)
    completable = ARGUMENTS.get(argument)
    if completable is None or not any(current_principal().allows(scope) for scope in completable.scopes):
        return NOTHING
    account = context.get("accountId") or None
    if completable.kind == "feature":
        by_account = account if current_principal().allows(ACCOUNT_FEATURES_SCOPE) else None
        matches = await lookup.feature_ids(session, prefix, COMPLETION_LIMIT, account=by_account)
    elif completable.kind == "invoice" and account is not None:
        matches = await lookup.account_invoice_ids(session, account, prefix, COMPLETION_LIMIT)
    else:
        matches = await lookup.ids_with_prefix(session, completable.kind, prefix, COMPLETION_LIMIT)  # type: ignore[arg-type]
    return Completion(values=matches.values, total=None if matches.has_more else len(matches.values),
                      has_more=matches.has_more)


async def arguments_of(server: MCPServer[Any], params: CompleteRequestParams) -> set[str]:
    """The argument names of the prompt or template the request refers to; an unknown one is an error."""
    ref = params.ref
    if isinstance(ref, PromptReference):
        for prompt in await server.list_prompts():
            if prompt.name == ref.name:
                return {argument.name for argument in prompt.arguments or []}
        raise MCPError(INVALID_PARAMS, f"ref.name: no prompt named {ref.name!r}; prompts/list names them")
    if ref.uri in TEMPLATE_VARIABLES:
        return TEMPLATE_VARIABLES[ref.uri]
    raise MCPError(INVALID_PARAMS, f"ref.uri: {ref.uri!r} is not a resource template of this server; "
                                   "resources/templates/list names them")


def register_completions(server: MCPServer[Any]) -> None:
    async def complete(ctx: ServerRequestContext[AppContext], params: CompleteRequestParams) -> CompleteResult:
        if params.argument.name not in await arguments_of(server, params):
            return CompleteResult(completion=NOTHING)
        context = (params.context.arguments if params.context else None) or {}
        app = ctx.lifespan_context
        async with app.db.unit_of_work() as session:
            completion = await complete_value(session, params.argument.name, params.argument.value, context, app)
        return CompleteResult(completion=completion)

    # MCPServer.completion() calls its handler with (ref, argument, context) only, without the request context
    # that holds the database, so the handler goes on the low-level server, as that decorator would put it.
    server._lowlevel_server.add_request_handler("completion/complete", CompleteRequestParams, complete)


def _storable(text: object) -> bool:
    return isinstance(text, str) and "\x00" not in text and encodable(text) == text
