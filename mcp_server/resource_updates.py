"""Resource subscriptions: a subscriber of an account or of its DRAFT invoice hears when a write changes it.

After a tool call that changes an account's open charges commits (ingest_event, ingest_batch_events, void_event,
void_events, check_entitlement with consume: the accounts whose billable usage moved; grant_credit, update_account and update_license: that
account, by the id the result names and by the handle the call named, which may be an alias the call took away;
finalize_price_plan: the accounts it moved to the new version), the server sends notifications/resources/updated
for those accounts' resources that someone watches:
togai://accounts/{id or alias} and togai://invoices/{id}[.json] of their DRAFT invoices. create_credit_note and
update_invoice_status change an issued invoice (its amount due, status, notes) and what its account shows (outstanding,
wallet): they notify the account and that invoice, not the DRAFTs. Nobody watching costs
an ingest nothing: the accounts are only looked up while some account or invoice URI is watched.

Two protocol eras, both served:
- 2026-07-28 clients listen (`subscriptions/listen` with resourceSubscriptions). The SDK serves the stream and
  filters it by URI; the server publishes on the bus it gave the SDK (`CallerBus`). A middleware
  around the listen request records which URIs are listened to, and refuses a URI the caller's key may not read.
- 2025 clients send `resources/subscribe`. MCPServer does not serve it, so the handlers are registered on the
  low-level server (which then advertises `resources.subscribe`), and each subscribed connection is sent the
  notification on its standalone stream. A closed connection's subscriptions go with it.

Writes made outside this server process (the CLI's import, another replica) and DRAFT -> DUE closes by bill runs
notify nobody.

An API key is checked when each request arrives, and a listen stream or a 2025 subscription outlives the request
that opened it: so before notifying, the keys of the open streams and subscriptions are looked up again. A revoked
key's listen streams end with an error saying so, its subscriptions are dropped, and neither hears the update.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable, Iterable
from typing import Any

import anyio
import anyio.lowlevel
from mcp.server.connection import Connection
from mcp.server.context import CallNext, HandlerResult, ServerRequestContext
from mcp.server.mcpserver import Context, MCPServer
from mcp.shared.exceptions import MCPError
from mcp.shared.subscriptions import ResourceUpdated, ServerEvent
from mcp_types import (
    INVALID_PARAMS,
    INVALID_REQUEST,
    CallToolResult,
    EmptyResult,
    SubscribeRequestParams,
    SubscriptionsListenRequestParams,
    UnsubscribeRequestParams,
)
from pydantic import ValidationError

from mcp_server.app import AppContext
from mcp_server.auth import Principal, current_principal
from mcp_server.resources import ACCOUNT, INVOICE, INVOICE_JSON, expand, kind_of, require_scope
from togai_engine.apikeys.service import live_key_ids
from togai_engine.app import lookup

log = logging.getLogger("togai_engine.resource_updates")

WATCHED_PREFIXES = ("togai://accounts/", "togai://invoices/")
# check_entitlement records usage when called with consume (and entitled): usage like ingest_event's
USAGE_TOOLS = {"ingest_event", "ingest_batch_events", "void_event", "void_events", "check_entitlement"}
ACCOUNT_TOOLS = {"grant_credit", "update_account", "update_license"}
# moving an account to a plan's new version changes its plan as update_account(pricePlanId) does
PLAN_TOOLS = {"finalize_price_plan"}
INVOICE_TOOLS = {"create_credit_note", "update_invoice_status"}


def issued_invoice(name: str, result: dict[str, Any]) -> tuple[str, str] | None:
    """(account id, invoice id) a successful create_credit_note or update_invoice_status changed; None for a
    replayed credit note (the first call changed it)."""
    if name == "create_credit_note":
        note = result["creditNote"]
        return None if result.get("replayed") else (note["accountId"], note["invoiceId"])
    return result["accountId"], result["id"]
NOT_BILLABLE_EVENT = {"DUPLICATE", "NOT_BILLED_CYCLE_CLOSED", "NOT_BILLED_NO_PLAN"}
BATCH_NOT_BILLABLE = ("duplicateIndexes", "notBilledIndexes", "notBilledNoPlanIndexes")


def account_of(name: str, result: dict[str, Any]) -> str:
    """The id of the account a successful grant_credit, update_account or update_license changed."""
    if name == "grant_credit":
        return str(result["grant"]["accountId"])
    return str(result["id"] if name == "update_account" else result["accountId"])


def requested_uris(params: Any) -> list[str]:
    """The resourceSubscriptions of a raw subscriptions/listen request, read as the SDK reads them (it takes
    the snake_case spelling too: a URI checked under one spelling and honoured under the other would skip
    the scope check). Params the SDK would not take are refused here."""
    try:
        parsed = SubscriptionsListenRequestParams.model_validate(params if params is not None else {})
    except ValidationError:
        raise MCPError(INVALID_PARAMS, "params: not a subscriptions/listen request's params") from None
    return list(parsed.notifications.resource_subscriptions or [])


def check_readable(uri: str) -> None:
    """A subscription needs what reading needs: one of our resources, and the scope to read it."""
    found = kind_of(uri)
    if found is None:
        raise MCPError(INVALID_PARAMS, f"uri: {uri!r} is not a resource of this server; resources/templates/list "
                                       "names the templates (e.g. togai://invoices/{invoiceId})")
    require_scope(found[0], uri)


def touched_accounts(name: str, arguments: dict[str, Any], result: dict[str, Any]) -> set[str]:
    """The accounts (ids or aliases) whose open charges a successful call of tool `name` changed."""
    if name == "ingest_event":
        return set() if result.get("status") in NOT_BILLABLE_EVENT else {result["accountId"]}
    if name == "ingest_batch_events":
        events = arguments.get("events")
        if not isinstance(events, list):
            return set()
        skipped = {rejected["index"] for rejected in result.get("rejectedEvents", [])}
        for key in BATCH_NOT_BILLABLE:
            skipped.update(result.get(key, []))
        return {event["accountId"] for i, event in enumerate(events)
                if i not in skipped and isinstance(event, dict) and isinstance(event.get("accountId"), str)}
    if name == "void_event":
        return {result["accountId"]}
    if name == "check_entitlement":  # a plain check, a refused consume and a replay (DUPLICATE) record nothing
        recorded = result.get("consumed") is True and result.get("eventStatus") not in NOT_BILLABLE_EVENT
        return {result["accountId"]} if recorded else set()
    if name == "void_events":
        return {record["accountId"] for record in result.get("data", [])}
    if name in ACCOUNT_TOOLS:
        account = arguments.get("accountId")
        return {account_of(name, result)} | ({account} if isinstance(account, str) else set())
    if name in PLAN_TOOLS:
        return {moved["accountId"] for moved in result.get("migratedAccounts", [])}
    if name in INVOICE_TOOLS:
        issued = issued_invoice(name, result)
        return set() if issued is None else {issued[0]}
    return set()


REVOKED = ("this stream's API key was revoked, so it hears no more updates; listen again with a live key "
           "(togai-engine keys list shows them)")


class CallerBus:
    """The SDK's subscription bus (in-process fan-out to the listen streams, as its InMemorySubscriptionBus),
    remembering who opened each stream: `publish` reaches only the streams whose caller `allowed` admits."""

    def __init__(self) -> None:
        self._listeners: dict[object, tuple[Callable[[ServerEvent], None], Principal]] = {}

    def subscribe(self, listener: Callable[[ServerEvent], None]) -> Callable[[], None]:
        # called by the listen handler, in the listen request's context: its caller is the stream's
        token = object()
        self._listeners[token] = (listener, current_principal())

        def unsubscribe() -> None:
            self._listeners.pop(token, None)

        return unsubscribe

    async def publish(self, event: ServerEvent, allowed: Callable[[Principal], bool] = lambda _: True) -> None:
        for listener, principal in list(self._listeners.values()):
            if not allowed(principal):
                continue
            try:
                listener(event)
            except Exception:  # as the SDK's bus: one bad listener must not starve the others
                log.exception("subscription listener raised; continuing")
        await anyio.lowlevel.checkpoint()  # lets the streams drain between events (as the SDK's bus does)


class ResourceUpdates:
    def __init__(self) -> None:
        self.bus = CallerBus()
        self._listened: Counter[str] = Counter()
        self._streams: dict[object, tuple[Principal, anyio.CancelScope]] = {}
        self._subscribers: dict[str, dict[int, tuple[Connection, Principal]]] = {}
        self._connections_seen: set[int] = set()

    def watched(self) -> set[str]:
        return set(self._listened) | set(self._subscribers)

    # --- 2026-07-28: subscriptions/listen -------------------------------------------------------------

    async def track_listen(self, ctx: ServerRequestContext[Any, Any], call_next: CallNext) -> HandlerResult:
        """Server middleware: records the URIs a listen stream asks for while the stream is open."""
        if ctx.method != "subscriptions/listen" or ctx.request_id is None:
            return await call_next(ctx)
        uris = requested_uris(ctx.params)
        for uri in uris:
            check_readable(uri)
        self._listened.update(uris)
        token = object()
        try:
            with anyio.CancelScope() as stream:
                self._streams[token] = (current_principal(), stream)
                return await call_next(ctx)
        finally:
            self._streams.pop(token, None)
            self._listened.subtract(uris)
            for uri in uris:
                if self._listened[uri] <= 0:
                    del self._listened[uri]
        # cancelled by _drop_revoked: the stream's key was revoked
        raise MCPError(INVALID_REQUEST, REVOKED)

    # --- 2025: resources/subscribe ----------------------------------------------------------------------

    async def subscribe(self, ctx: ServerRequestContext[AppContext], params: SubscribeRequestParams) -> EmptyResult:
        uri = str(params.uri)
        check_readable(uri)
        connection = self._connection(ctx)
        self._subscribers.setdefault(uri, {})[id(connection)] = (connection, current_principal())
        if id(connection) not in self._connections_seen:
            self._connections_seen.add(id(connection))
            connection.exit_stack.callback(self._forget, connection)
        return EmptyResult()

    async def unsubscribe(self, ctx: ServerRequestContext[AppContext], params: UnsubscribeRequestParams) -> EmptyResult:
        uri = str(params.uri)
        subscribers = self._subscribers.get(uri, {})
        subscribers.pop(id(self._connection(ctx)), None)
        if not subscribers:
            self._subscribers.pop(uri, None)
        return EmptyResult()

    @staticmethod
    def _connection(ctx: ServerRequestContext[Any, Any]) -> Connection:
        # The low-level request context carries the per-request ServerSession, which holds the connection but
        # exposes no accessor for it (mcp 2.3); the connection is what outlives the request.
        return ctx.session._connection  # type: ignore[no-any-return]

    def _forget(self, connection: Connection) -> None:
        self._connections_seen.discard(id(connection))
        for uri in list(self._subscribers):
            self._subscribers[uri].pop(id(connection), None)
            if not self._subscribers[uri]:
                del self._subscribers[uri]

    # --- after a write ------------------------------------------------------------------------------------

    async def after_tool_call(self, name: str, arguments: dict[str, Any], result: Any, context: Any) -> None:
        """Notifies the watchers of the resources a committed tool call changed. Never fails the call: the
        change is committed whatever happens here."""
        if name not in USAGE_TOOLS | ACCOUNT_TOOLS | PLAN_TOOLS | INVOICE_TOOLS or not isinstance(context, Context):
            return
        watched = self.watched()
        if not any(uri.startswith(WATCHED_PREFIXES) for uri in watched):
            return
        if not isinstance(result, CallToolResult) or result.is_error or not isinstance(result.structured_content, dict):
            return
        try:
            handles = touched_accounts(name, arguments, result.structured_content)
            if not handles:
                return
            app: AppContext = context.request_context.lifespan_context
            async with app.db.unit_of_work() as session:
                found = await lookup.accounts_and_drafts(session, handles)
                # a grant changes the account's wallet, not what its DRAFT invoices charge; a note or a status
                # change changes the invoice it names
                issued = issued_invoice(name, result.structured_content) if name in INVOICE_TOOLS else None
                uris = self._uris(found.values(), drafts=name != "grant_credit" and name not in INVOICE_TOOLS)
                if issued is not None:
                    uris += [expand(INVOICE, issued[1]), expand(INVOICE_JSON, issued[1])]
                if name in ACCOUNT_TOOLS:
                    # the handle the call named: found above unless the call took that alias away, and its URI
                    # changed all the same (it now names no account)
                    uris += [expand(ACCOUNT, handle) for handle in handles]
                changed = [uri for uri in dict.fromkeys(uris) if uri in watched]
                if not changed:  # a write nobody watches sends nothing, so no key needs looking up
                    return
                # only the keys asked about can be found revoked: a stream opened during the lookup is not among
                # them, and its key was checked live as its request arrived
                asked = self._key_ids()
                revoked = asked - await live_key_ids(session, asked)
            self._drop_revoked(revoked)

            def allowed(principal: Principal) -> bool:
                return principal.key_id not in revoked

            for uri in changed:
                # a stream _drop_revoked cancelled may not have unsubscribed yet: its caller is not allowed
                await self.bus.publish(ResourceUpdated(uri=uri), allowed)
                for connection, _ in list(self._subscribers.get(uri, {}).values()):
                    await connection.send_resource_updated(uri)
        except Exception:  # the write is committed; a failed notification must not turn it into an error
            log.exception("notifying subscribers after %s failed", name)

    def _key_ids(self) -> set[str]:
        """The stored keys of the open listen streams and subscriptions (local and the environment's key have
        none: they cannot be revoked). A stream on the bus is in _streams too: track_listen holds it there for as
        long as the listen request runs, and the SDK subscribes and unsubscribes it within that request."""
        principals = [*(principal for principal, _ in self._streams.values()),
                      *(principal for subscribers in self._subscribers.values() for _, principal in subscribers.values())]
        return {principal.key_id for principal in principals if principal.key_id is not None}

    def _drop_revoked(self, revoked: set[str]) -> None:
        """Ends the listen streams and drops the subscriptions of the `revoked` keys."""
        for principal, stream in list(self._streams.values()):
            if principal.key_id in revoked:
                stream.cancel()
        for uri in list(self._subscribers):
            subscribers = self._subscribers[uri]
            for connection_id, (_, principal) in list(subscribers.items()):
                if principal.key_id in revoked:
                    del subscribers[connection_id]
            if not subscribers:
                del self._subscribers[uri]

    @staticmethod
    def _uris(accounts: Iterable[lookup.AccountHandles], *, drafts: bool) -> list[str]:
        uris: list[str] = []
        for account in accounts:
            uris += [expand(ACCOUNT, handle) for handle in account.handles]
            for invoice_id in account.draft_invoice_ids if drafts else ():
                uris += [expand(INVOICE, invoice_id), expand(INVOICE_JSON, invoice_id)]
        return uris

    def install(self, server: MCPServer[Any]) -> None:
        server.middleware.append(self.track_listen)
        lowlevel = server._lowlevel_server  # MCPServer has no hook for resources/subscribe (see module docstring)
        lowlevel.add_request_handler("resources/subscribe", SubscribeRequestParams, self.subscribe)
        lowlevel.add_request_handler("resources/unsubscribe", UnsubscribeRequestParams, self.unsubscribe)
