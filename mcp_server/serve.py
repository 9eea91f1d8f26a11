"""Running the server: stdio for desktop clients, streamable HTTP for shared use."""

from __future__ import annotations

import logging
import socket
import sys
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Literal

import anyio
import uvicorn
from mcp.server.transport_security import TransportSecuritySettings
from starlette.requests import Request
from starlette.responses import JSONResponse

from mcp_server import fast_json
from mcp_server.http_auth import ExplainUnauthorized, auth_options, no_client_registration
from mcp_server.server import TogaiServer, build_server
from togai_engine.billing.close import LATE_USAGE_PENDING
from togai_engine.sandbox import service as sandbox_service
from togai_engine.settings import Settings
from togai_engine.store.database import Database
from togai_engine.store.partitions import ensure_ahead

if TYPE_CHECKING:
    from togai_engine.billing.close import CloseSummary

log = logging.getLogger("togai_engine.serve")


async def sandbox_time(db: Database) -> datetime:
    async with db.unit_of_work() as session:
        return await sandbox_service.read_now(session)


@dataclass(frozen=True)
class _Failing:
    """What FailureLog keeps of a failing account: its reason, since when it fails, when it was last logged, and
    whether its failure leaves it due (any but its late usage staying pending)."""

    reason: str
    since: datetime
    logged: datetime
    due: bool


class FailureLog:
    """What the background loop has logged of the accounts its bill runs cannot bill, kept in memory across passes:
    an account that fails for good is retried every pass (its state is kept), and logging it every pass would
    flood the log. A failure is logged when the account first fails or its reason changes, then again at most
    every `every` (of the passes' time) while it keeps failing; once it bills again (in a pass, or in another run
    before one: it is then no longer due) that is logged once (INFO)."""

    def __init__(self, every: timedelta = timedelta(hours=1)) -> None:
        self.every = every
        self._failing: dict[str, _Failing] = {}

    def report(self, summary: CloseSummary) -> None:
        at = summary.asOf
        reasons: dict[str, list[str]] = {}
        for failure in summary.failed:  # an account may fail twice (its invoices, its late usage): both reasons
            reasons.setdefault(failure.accountId, []).append(failure.reason)
        billed = set(summary.accountIds) - set(reasons)
        # one whose failure left it due (any but its late usage staying pending, retried with its next invoice) and
        # absent from this pass, which has every due account, was billed by another run meanwhile (a read's
        # catch-up, `bill`)
        billed |= {a for a, kept in self._failing.items() if kept.due and a not in summary.accountIds}
        for account_id in sorted(billed & set(self._failing)):
            log.info("account %s bills again (it failed from %s)", account_id,
                     self._failing.pop(account_id).since.isoformat())
        for account_id, found in sorted(reasons.items()):
            reason = "; ".join(found)
            due = not all(r.startswith(LATE_USAGE_PENDING) for r in found)
            previous = self._failing.get(account_id)
            if previous is None or previous.reason != reason:
                log.warning("cannot bill account %s: %s", account_id, reason)
                self._failing[account_id] = _Failing(reason, at if previous is None else previous.since, at, due)
            elif at - previous.logged >= self.every or at < previous.logged:  # a clock set back (a sandbox) logs anew
                log.warning("cannot bill account %s (failing since %s): %s", account_id, previous.since.isoformat(),
                            reason)
                self._failing[account_id] = _Failing(reason, previous.since, at, due)


async def billing_pass(db: Database, now: datetime, failures: FailureLog | None = None) -> CloseSummary:
    """One pass of the background loop at `now`: partitions kept ahead (a failure there is logged, and the rest
    runs), the bill run (its CloseSummary is returned; the accounts it could not bill are logged through
    `failures`, the loop's FailureLog: when they first fail or their reason changes, then at most hourly), past
    hours' rollup stripes folded."""
    from togai_engine.billing.runs import run_bill
    from togai_engine.meters.compaction import compact_rollups

    try:
        await ensure_ahead(db.engine, now)
    except Exception:
        # not a reason to bill nobody: ingest makes a month that is still missing when an event needs it
        log.exception("background pass at %s: the event partitions ahead could not be made; billing anyway",
                      now.isoformat())
    summary = await run_bill(db, now, log_failures=False)
    (failures or FailureLog()).report(summary)
    await compact_rollups(db, now)
    return summary


async def background_billing(db: Database, interval_seconds: int, sandbox: bool = False) -> None:
    """Closes due cycles periodically, so DUE invoices appear even when nobody reads them; also keeps
    the events table's partitions a few months ahead of the clock, and folds past hours' rollup
    stripes into one row per key. A sandbox server does all that at its sandbox time."""
    from togai_engine.common.clock import SystemClock

    clock = SystemClock()
    failures = FailureLog()
    while True:
        try:
            await billing_pass(db, await sandbox_time(db) if sandbox else clock.now(), failures)
        except Exception:  # the loop must survive a bad run; the next read catches up anyway
            log.exception("background billing run failed")
        await anyio.sleep(interval_seconds)


async def health(_: Request) -> JSONResponse:
    """Liveness for container healthchecks; carries no data, so it needs no key."""
    return JSONResponse({"status": "ok"})


def listening_socket(config: uvicorn.Config) -> socket.socket:
    """The bound socket, already listening: a client that connects once the address is printed waits in
    the backlog until the server accepts, instead of being refused."""
    sock = config.bind_socket()
    sock.listen(config.backlog)
    return sock


async def serve_http(server: TogaiServer, settings: Settings, host: str, port: int) -> None:
    """The SDK's streamable HTTP app under uvicorn, as the SDK's run_streamable_http_async runs it, plus the
    401 that explains keys and one line on stderr saying where it listens (port 0 picks a free one)."""
    security = TransportSecuritySettings(
        allowed_hosts=[h.strip() for h in settings.http_allowed_hosts.split(",") if h.strip()],
        allowed_origins=[o.strip() for o in settings.http_allowed_origins.split(",") if o.strip()],
    )
    fast_json.install_http()  # a number a float does not hold is refused by name, not read as that float
    app = server.streamable_http_app(
        transport_security=security, max_request_body_size=settings.http_max_request_bytes, host=host
    )
    config = uvicorn.Config(ExplainUnauthorized(app), host=host, port=port, log_level=settings.log_level.lower())
    sock = listening_socket(config)
    shown_host = f"[{host}]" if ":" in host else host
    print(f"listening on http://{shown_host}:{sock.getsockname()[1]}/mcp", file=sys.stderr, flush=True)
    await uvicorn.Server(config).serve(sockets=[sock])


def time_limits(settings: Settings) -> dict[str, float]:
    return {"tool_timeout_seconds": settings.tool_timeout_seconds,
            "bulk_tool_timeout_seconds": settings.bulk_tool_timeout_seconds}


async def open_clock(db: Database, sandbox: bool, start: datetime | None) -> datetime:
    """The server's time at start. With `sandbox`, the database becomes a sandbox at `start` (now when
    absent) or is one already (its own time then; a database holding real data is refused). Without it, a
    sandbox database is refused: its data was made at sandbox times, not real ones."""
    async with db.unit_of_work() as session:
        if sandbox:
            now, _ = await sandbox_service.start(session, start or datetime.now(UTC))
            return now
        if await sandbox_service.is_sandbox(session):
            raise sandbox_service.IsASandbox(
                "this database is a sandbox (its time is kept in it and moved by advance_clock); start the "
                "server with --sandbox to use it, or point TOGAI_DATABASE_URL at a real database")
    return datetime.now(UTC)


async def serve(
    url: str,
    settings: Settings,
    transport: Literal["stdio", "http"],
    host: str = "127.0.0.1",
    port: int = 8000,
    sandbox: bool = False,
    start: datetime | None = None,
) -> None:
    db = Database(url)
    try:
        now = await open_clock(db, sandbox, start)
        if sandbox:
            print(f"sandbox: this database is a sandbox at {now.isoformat().replace('+00:00', 'Z')} "
                  "(advance_clock moves its time)", file=sys.stderr, flush=True)
        # Partitions for this month and the next ones exist before the first event arrives (ingest
        # would make a missing one on demand, but not in the middle of a burst).
        await ensure_ahead(db.engine, now)
        async with anyio.create_task_group() as tg:
            if settings.billing_interval_seconds > 0:
                tg.start_soon(background_billing, db, settings.billing_interval_seconds, sandbox)
            if transport == "stdio":
                server = build_server(db, log_level=settings.log_level, sandbox=sandbox, **time_limits(settings))
                await fast_json.run_stdio(server, max_chars=settings.http_max_request_bytes)
            else:
                server = build_server(db, log_level=settings.log_level, sandbox=sandbox, **time_limits(settings),
                                      **auth_options(db, host, port, settings.api_key))
                server.custom_route("/healthz", methods=["GET"])(health)
                server.custom_route("/register", methods=["POST"])(no_client_registration)
                await serve_http(server, settings, host, port)
            tg.cancel_scope.cancel()
    finally:
        await db.dispose()
