"""The `togai-engine` command: serve, migrate, bill, import, verify, keys, audit, demo, pricing lab."""

from __future__ import annotations

import logging
import sys
from collections.abc import Awaitable, Callable
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, TypeVar

import anyio
import typer

from togai_engine.common import validation
from togai_engine.common.gc_tuning import tune_gc
from togai_engine.errors import EngineError, InvalidInput
from togai_engine.settings import Settings, SettingsError, load_settings
from togai_engine.store import migrate
from togai_engine.store.database import Database
from togai_engine.store.runtime import data_folder_line, database_url

if TYPE_CHECKING:
    from togai_engine.billing.close import CloseSummary
    from togai_engine.meters.compaction import CompactionSummary

T = TypeVar("T")
app = typer.Typer(help="Self-hosted usage billing with an MCP server in front of it.", no_args_is_help=True,
                  pretty_exceptions_enable=False)
db_app = typer.Typer(help="Database commands.", no_args_is_help=True)
keys_app = typer.Typer(help="HTTP API keys (stored hashed; a key is shown once).", no_args_is_help=True)
import_app = typer.Typer(help="Bulk import.", no_args_is_help=True)
plans_app = typer.Typer(help="Price plans kept in files (JSON or YAML, in create_price_plan's shape).",
                        no_args_is_help=True)
app.add_typer(db_app, name="db")
app.add_typer(keys_app, name="keys")
app.add_typer(import_app, name="import")
scenario_app = typer.Typer(help="Scenario files: billing over time on a throwaway database, checked against the "
                                "invoices, wallets, entitlements and metrics they expect.", no_args_is_help=True)
app.add_typer(plans_app, name="plans")
app.add_typer(scenario_app, name="scenario")


def settings_or_exit() -> Settings:
    try:
        settings = load_settings()
    except SettingsError as exc:
        typer.echo(f"togai-engine: {exc}", err=True)
        raise typer.Exit(2) from None
    # stdout may be the MCP stdio channel: all logs go to stderr.
    logging.basicConfig(level=settings.log_level, stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s %(message)s")
    return settings


def with_database(work: Callable[[Database], Awaitable[T]]) -> T:
    """Resolves the database (embedded or configured), migrates it, runs `work`, stops what it started."""
    settings = settings_or_exit()
    with database_url(settings) as url:
        migrate.upgrade(url)

        async def main() -> T:
            db = Database(url)
            try:
                return await work(db)
            finally:
                await db.dispose()

        tune_gc()  # after the command's imports and the migration: all of that is frozen, never walked
        return anyio.run(main)


def parse_instant(value: str, option: str) -> datetime:
    """An instant option, read like every tool's times (validation.parse_instant)."""
    try:
        return validation.parse_instant(value, option)
    except InvalidInput as exc:
        raise typer.BadParameter(exc.reason, param_hint=option) from None


def as_of_instant(asked: datetime | None, now: datetime, *, sandbox: bool, consequence: str) -> datetime:
    """The instant a command works as of: its --as-of, or the call's now (a sandbox's time on a sandbox, where a
    later --as-of is refused, as `consequence` says)."""
    from togai_engine.sandbox.service import not_after_sandbox_time

    if asked is None:
        return now
    return not_after_sandbox_time(asked, now, "--as-of", consequence) if sandbox else asked


@app.command()
def serve(
    transport: Annotated[str, typer.Option(help="stdio (desktop clients) or http (streamable HTTP)")] = "stdio",
    host: Annotated[str, typer.Option(help="HTTP bind address; keep 127.0.0.1 unless behind a proxy")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="HTTP port")] = 8000,
    sandbox: Annotated[bool, typer.Option(help="keep the time in the database, moved by advance_clock (a new, "
                                               "empty database becomes a sandbox; a sandbox is reused)")] = False,
    start: Annotated[str | None, typer.Option(help="a new sandbox's starting time (ISO 8601); default now")] = None,
) -> None:
    """Run the MCP server (migrates the database to head first)."""
    if transport not in ("stdio", "http"):
        raise typer.BadParameter("use stdio or http", param_hint="--transport")
    if start is not None and not sandbox:
        raise typer.BadParameter("only a sandbox has a starting time; add --sandbox", param_hint="--start")
    from mcp_server.serve import serve as run_server

    started = parse_instant(start, "--start") if start is not None else None
    settings = settings_or_exit()
    if not settings.database_url:
        typer.echo(data_folder_line(settings.data_dir), err=True)
    with database_url(settings) as url:
        migrate.upgrade(url)
        tune_gc()
        or_exit(lambda: anyio.run(run_server, url, settings, transport, host, port, sandbox,  # type: ignore[arg-type]
                                  started))


@db_app.command("upgrade")
def db_upgrade() -> None:
    """Migrate the database to the newest schema."""
    settings = settings_or_exit()
    with database_url(settings) as url:
        migrate.upgrade(url)
        typer.echo("database is at the newest schema")


@db_app.command("url")
def db_url() -> None:
    """Print the database URL in use (the embedded server's, when TOGAI_DATABASE_URL is unset)."""
    settings = settings_or_exit()
    with database_url(settings) as url:
        typer.echo(url)
        if not settings.database_url:
            typer.echo(f"(embedded PostgreSQL in {settings.data_dir}; it runs while togai-engine runs)", err=True)


@db_app.command("check")
def db_check() -> None:
    """Fail if the schema differs from the models (alembic check) or, on Citus, a table is misplaced."""
    settings = settings_or_exit()
    with database_url(settings) as url:
        migrate.upgrade(url)
        refused_or(lambda: migrate.check(url))
        typer.echo("no drift between models and migrations")


@db_app.command("distribute")
def db_distribute(
    shard_count: Annotated[int | None, typer.Option("--shard-count", min=1,
                                                    help="shards of the usage tables (default: citus.shard_count)")] = None,
) -> None:
    """On a Citus coordinator: make the catalogs reference tables and distribute the usage tables by account
    (README, Scaling out). Running it again does nothing."""
    settings = settings_or_exit()
    with database_url(settings) as url:
        migrate.upgrade(url)
        done = refused_or(lambda: migrate.distribute(url, shard_count))
        for line in done:
            typer.echo(line)
        typer.echo("every table is placed" if done else "every table was already placed; nothing to do")


@app.command()
def demo() -> None:
    """A walk-through: drives the server through a real MCP client session and prints each step."""
    from mcp_server.demo import run_demo

    with_database(run_demo)


async def bill_run(db: Database, asked: datetime | None) -> tuple[CloseSummary, CompactionSummary, datetime]:
    """`togai-engine bill [--as-of]`'s work on an open database: (the run's CloseSummary, the rollup folding,
    the instant billed at). Audited like a tool call: actor "cli", the instant billed at and the accounts it had
    work for (failed ones included), as advance_clock's; on a sandbox at its time (the clock row, read in this transaction), refusing a later `asked`."""
    from togai_engine.app.unit import call_now, unit_of_work
    from togai_engine.billing.close import close_due_cycles
    from togai_engine.meters.compaction import compact_rollups

    # The audit record is written when the block ends, so the instant is filled in once known.
    audited: dict[str, Any] = {}
    now = await call_now(db)
    async with unit_of_work(db, now, actor="cli", action="bill", arguments=audited) as unit:
        instant = as_of_instant(asked, unit.now, sandbox=now is None,
                                consequence="billing as of it would bill what has not happened yet")
        audited["asOf"] = instant.isoformat()
        summary = await close_due_cycles(unit.session, instant)
        unit.changed(*summary.accountIds)
    return summary, await compact_rollups(db, unit.now), instant


@app.command()
def bill(as_of: Annotated[str | None, typer.Option("--as-of", help="close cycles due at this instant")] = None) -> None:
    """Close every billing cycle that is due (cycle end + grace period passed): DRAFT -> DUE. Idempotent.
    Also folds past hours' rollup stripes into one row per key, as the server does after each run."""
    asked = parse_instant(as_of, "--as-of") if as_of is not None else None

    summary, folded, instant = or_exit(lambda: with_database(lambda db: bill_run(db, asked)))
    typer.echo(f"billing run as of {instant.isoformat()}: {summary.accounts} account(s) with work, "
               f"{summary.invoicesDue} invoice(s) became DUE, {summary.draftsOpened} DRAFT(s) opened, "
               f"{len(summary.failed)} failed; {folded.rows_folded} rollup row(s) of past hours folded")
    for failure in summary.failed:
        typer.echo(f"failed: {failure.model_dump_json()}", err=True)
    if summary.failed:
        raise typer.Exit(1)


@app.command()
def verify() -> None:
    """Recompute usage rollups from raw events and report any difference (exit 1 if any)."""
    from togai_engine.meters.rollups import verify_rollups

    async def work(db: Database) -> list[Any]:
        async with db.unit_of_work() as session:
            return await verify_rollups(session)

    differences = with_database(work)
    if differences:
        for diff in differences[:50]:
            typer.echo(str(diff))
        typer.echo(f"{len(differences)} rollup difference(s) found; the raw events are the truth", err=True)
        raise typer.Exit(1)
    typer.echo("rollups agree with raw events")


@import_app.command("events")
def import_events(
    file: Annotated[Path, typer.Argument(exists=True, dir_okay=False, help="a .jsonl (JSON Lines) or .csv file")],
    report: Annotated[Path | None, typer.Option(help="where rejected lines go (default FILE.rejected.jsonl)")] = None,
    batch_size: Annotated[int, typer.Option(min=1, max=1000, help="events per transaction")] = 1000,
    progress: Annotated[bool, typer.Option(help="show a progress bar")] = True,
    workers: Annotated[int | None, typer.Option(
        min=1, max=8, help="processes importing parts of a JSON Lines file at once (default: one per two cores; "
                           "files under 8 MiB and CSV files use one)")] = None,
    allow_rejected: Annotated[bool, typer.Option(
        "--allow-rejected", help="exit 0 even when lines were rejected (they are in the report)")] = False,
) -> None:
    """Import historical events from a file, in constant memory. Same validation and dedupe as the
    tools: re-running the same file is safe (its events come back as duplicates). Rejected lines go
    to the report file with their line number and reason (no report when none was rejected); any
    rejected line makes the exit code 1, unless --allow-rejected.

    CSV columns: id, schemaName, timestamp, accountId, then attr.<name>, unit.<name>, dim.<name>."""
    from togai_engine.app.unit import call_now
    from togai_engine.events.files import FileFormatError
    from togai_engine.events.importer import ImportFailed, default_workers, import_file

    report_path = report or file.with_name(file.name + ".rejected.jsonl")

    async def work(db: Database) -> Any:
        try:
            # on a sandbox each batch is ingested at its time, and an event after it is rejected (EVENT_IN_FUTURE)
            summary = await import_file(db, file, report_path, batch_size=batch_size, show_progress=progress,
                                        workers=workers or default_workers(), sandbox=await call_now(db) is None)
        except ImportFailed as exc:
            try:
                await audit_import(db, file, exc.summary, stopped=str(exc))
            except Exception as audit_exc:  # the import's own error is the one to report
                typer.echo(f"togai-engine: the stopped import could not be audited: {audit_exc}", err=True)
            raise
        await audit_import(db, file, summary)
        return summary

    try:
        summary: Any = with_database(work)
    except FileFormatError as exc:
        typer.echo(f"togai-engine: {exc}", err=True)
        raise typer.Exit(2) from None
    except ImportFailed as exc:
        typer.echo(f"togai-engine: import stopped: {exc}", err=True)
        raise typer.Exit(1) from None
    typer.echo(f"read {summary.read}: accepted {summary.accepted}, duplicates {summary.duplicates}, "
               f"stored but not billed (cycle closed) {summary.not_billed}, "
               f"metered but not billed (no plan at their time) {summary.not_billed_no_plan}, "
               f"late, billed on the next invoice {summary.accepted_late}, "
               f"rejected {summary.rejected}")
    if summary.rejected:
        typer.echo(f"rejected lines and reasons: {report_path}", err=True)
        if not allow_rejected:
            typer.echo(f"togai-engine: {summary.rejected} line(s) rejected; fix them and import the file again "
                       "(stored events come back as duplicates), or pass --allow-rejected to accept that",
                       err=True)
            raise typer.Exit(1)


STOPPED_REASON_CHARS = 300  # an audit row names why an import stopped; the whole message may quote SQL


async def audit_import(db: Database, file: Path, summary: Any, *, stopped: str | None = None) -> None:
    """An import runs one transaction per batch, so its audit row has its own: the file and its totals
    (those of the batches that settled when it stopped, if any did)."""
    from togai_engine.app.unit import call_now, unit_of_work

    arguments: dict[str, Any] = {"file": str(file)}
    if summary is not None:
        arguments |= {"read": summary.read, "accepted": summary.accepted, "duplicates": summary.duplicates,
                      "rejected": summary.rejected, "notBilled": summary.not_billed,
                      "notBilledNoPlan": summary.not_billed_no_plan, "acceptedLate": summary.accepted_late}
    if stopped is not None:
        arguments["stopped"] = (stopped.splitlines() or ["stopped"])[0][:STOPPED_REASON_CHARS]
    async with unit_of_work(db, await call_now(db), actor="cli", action="import events", arguments=arguments):
        pass


@keys_app.command("create")
def keys_create(
    name: Annotated[str, typer.Option(help="who or what uses the key")],
    scopes: Annotated[str, typer.Option(help="comma-separated scopes, or * for all")],
) -> None:
    """Create an API key for the HTTP transport; the key is printed once."""
    from togai_engine.app.keys import create_audited_key
    from togai_engine.app.unit import call_now

    asked = scopes.split(",")

    async def work(db: Database) -> Any:
        return await create_audited_key(db, await call_now(db), actor="cli", name=name, scopes=asked)

    created = or_exit(lambda: with_database(work))
    typer.echo(created.key)
    typer.echo(f"key id {created.apiKey.id}, scopes {', '.join(created.apiKey.scopes)} — store it now; "
               "it cannot be shown again", err=True)


@keys_app.command("list")
def keys_list() -> None:
    """List API keys (ids, names, scopes; never the secrets)."""
    from togai_engine.apikeys.service import list_keys

    async def work(db: Database) -> Any:
        async with db.unit_of_work() as session:
            return await list_keys(session)

    for key in with_database(work):
        state = f"revoked {key.revokedAt.isoformat()}" if key.revokedAt else "active"
        typer.echo(f"{key.id}\t{key.name}\t{','.join(key.scopes)}\t{state}")


@keys_app.command("revoke")
def keys_revoke(key_id: Annotated[str, typer.Argument(help="the key id from `keys list`")]) -> None:
    """Revoke an API key; requests with it get HTTP 401 from then on."""
    from togai_engine.apikeys.service import revoke_key
    from togai_engine.app.unit import call_now, unit_of_work

    async def work(db: Database) -> Any:
        async with unit_of_work(db, await call_now(db), actor="cli", action="keys revoke",
                                arguments={"keyId": key_id}) as unit:
            revoked = await revoke_key(unit.session, key_id, unit.now)
            unit.changed(revoked.id)
            return revoked

    typer.echo(f"revoked {or_exit(lambda: with_database(work)).id}")


@app.command()
def audit(
    tool: Annotated[str | None, typer.Option(help="only calls of this tool or CLI command ('plans apply')")] = None,
    actor: Annotated[str | None, typer.Option(help="'local', key:<id> or cli")] = None,
    entity: Annotated[str | None, typer.Option(help="only records that created or changed this id")] = None,
    limit: Annotated[int, typer.Option(min=1, max=100)] = 20,
) -> None:
    """Show the audit log, newest first."""
    import json

    from togai_engine.audit.service import list_audit

    async def work(db: Database) -> Any:
        async with db.unit_of_work() as session:
            return await list_audit(session, tool=tool, actor=actor, entity_id=entity, page_size=limit)

    for rec in with_database(work).data:
        typer.echo(f"{rec.at.isoformat()}\t{rec.actor}\t{rec.tool}\t{','.join(rec.changedIds)}\t"
                   f"{json.dumps(rec.arguments, sort_keys=True)}")


def or_exit(work: Callable[[], T]) -> T:
    """Runs `work`; an engine error (a wrong field, an unknown id) is one line on stderr and exit code 1."""
    try:
        return work()
    except EngineError as exc:
        typer.echo(f"togai-engine: {exc.message}", err=True)
        raise typer.Exit(1) from None


def refused_or(work: Callable[[], T]) -> T:
    """Runs `work`; a refusal of the database step (a server without Citus, misplaced tables) is its message
    on stderr and exit code 1."""
    try:
        return work()
    except RuntimeError as exc:
        typer.echo(f"togai-engine: {exc}", err=True)
        raise typer.Exit(1) from None


class NothingApplied(Exception):
    """Rolls back a `plans apply` that created nothing and found a plan that differs: it changed nothing and
    failed, so, like a tool call that fails, it leaves no audit row."""

    def __init__(self, meters: list[Any], applied: list[Any]) -> None:
        super().__init__("nothing applied")
        self.meters = meters
        self.applied = applied


@plans_app.command("apply")
def plans_apply(
    file: Annotated[Path, typer.Argument(exists=True, dir_okay=False,
                                         help="JSON or YAML: a list of plans, or {meters: [...], plans: [...]}")],
) -> None:
    """Create the usage meters and price plans in FILE that do not exist yet, in one transaction.
    Re-applying is safe: existing ones are reported as "exists" ("differs", exit 1, when the latest version of
    the plan of that name has other content: a plan changes through update_price_plan + finalize_price_plan, and
    the file follows it). Give meters ids so the plans can name them (usageMeterId)."""
    from togai_engine.app.unit import call_now, unit_of_work
    from togai_engine.lab.plan_files import load_pricing_file
    from togai_engine.lab.report import print_applied
    from togai_engine.lab.service import apply_meters, apply_plans

    meter_specs, specs = or_exit(lambda: load_pricing_file(file))

    async def work(db: Database) -> Any:
        # audited like a tool call, with the ids this run created (not those that already existed; a plan
        # that differs is left as stored and is not among them)
        try:
            async with unit_of_work(db, await call_now(db), actor="cli", action="plans apply",
                                    arguments={"file": str(file)}) as unit:
                meters = await apply_meters(unit.session, meter_specs, unit.now)
                applied = await apply_plans(unit.session, specs)
                unit.changed(*(meter.usageMeterId for meter in meters if meter.status == "created"),
                             *(plan.pricePlanId for plan in applied if plan.status == "created"))
                if not unit.changed_ids and any(plan.status == "differs" for plan in applied):
                    raise NothingApplied(meters, applied)
                return meters, applied
        except NothingApplied as nothing:
            return nothing.meters, nothing.applied

    meters, applied = or_exit(lambda: with_database(work))
    print_applied(applied, meters=meters)
    if any(plan.status == "differs" for plan in applied):
        raise typer.Exit(1)


@app.command()
def simulate(
    plans: Annotated[Path, typer.Option(exists=True, dir_okay=False,
                                        help="JSON or YAML list of candidate plans (inline, or stored plan ids)")],
    accounts: Annotated[str | None, typer.Option(help="comma-separated account ids (default: every account)")] = None,
    customer: Annotated[str | None, typer.Option(help="instead of --accounts: the accounts of this customer")] = None,
    start: Annotated[str | None, typer.Option(help="with --end: the billing periods overlapping [start, end)")] = None,
    end: Annotated[str | None, typer.Option(help="exclusive end of the range")] = None,
    last_cycles: Annotated[int | None, typer.Option(
        "--last-cycles", min=1, help="instead of --start/--end: each account's last N periods, the open one included "
                                    "(default 3)")] = None,
    as_of: Annotated[str | None, typer.Option("--as-of", help="simulate as of this instant (default now)")] = None,
    csv_file: Annotated[Path | None, typer.Option("--csv", help="write every account and period to this CSV")] = None,
    plot: Annotated[Path | None, typer.Option(help="draw revenue per period per plan to this PNG (plot extra)")] = None,
) -> None:
    """Price real usage under candidate plans: per account and billing period, what it was charged and what
    each candidate would charge. Reads only; inline plans are never stored."""
    from togai_engine.app.unit import call_now, unit_of_work
    from togai_engine.lab import report
    from togai_engine.lab.plan_files import load_plan_file
    from togai_engine.lab.service import simulate_price_plans

    if plot is not None:
        try:
            report.require_matplotlib()
        except report.PlotUnavailable as exc:
            typer.echo(f"togai-engine: {exc}", err=True)
            raise typer.Exit(2) from None
    candidates = or_exit(lambda: load_plan_file(plans))
    asked = parse_instant(as_of, "--as-of") if as_of is not None else None

    async def work(db: Database) -> Any:
        now = await call_now(db)
        async with unit_of_work(db, now, actor="cli") as unit:  # no action: it writes nothing, so no audit row
            instant = as_of_instant(asked, unit.now, sandbox=now is None,
                                    consequence="simulating as of it would price usage that has not happened yet")
            return await simulate_price_plans(
                unit.session, candidates, now=instant, candidates_field="plans",
                account_ids=[a.strip() for a in accounts.split(",") if a.strip()] if accounts else None,
                customer_id=customer, start_time=parse_instant(start, "--start") if start else None,
                end_time=parse_instant(end, "--end") if end else None, last_cycles=last_cycles)

    result = or_exit(lambda: with_database(work))
    report.print_simulation(result)
    if csv_file is not None:
        typer.echo(f"wrote {report.write_csv(result, csv_file)} row(s) to {csv_file}")
    if plot is not None:
        report.plot_revenue(result, plot)
        typer.echo(f"wrote the revenue plot to {plot}")


@scenario_app.command("run")
def scenario_run(
    files: Annotated[list[Path], typer.Argument(help="scenario files (YAML); each runs on its own fresh database")],
    update_golden: Annotated[bool, typer.Option(
        "--update-golden", help="rewrite the files' expectations from the results (comments are kept)")] = False,
    junit: Annotated[Path | None, typer.Option(help="write a JUnit XML report here (one testcase per file)")] = None,
) -> None:
    """Run scenario files: setup, steps in time on a sandbox clock, expectations. Exit 1 when a scenario fails
    or differs (each difference printed), 2 when a file cannot be read. Databases are made on the server of
    TOGAI_DATABASE_URL, or on the embedded PostgreSQL, and dropped afterwards."""
    from mcp_server.scenarios.suite import run_files

    settings = settings_or_exit()
    code = run_files(files, lambda: database_url(settings), update_golden=update_golden, junit=junit)
    raise typer.Exit(code)


def main() -> None:
    try:
        app()
    except SettingsError as exc:
        typer.echo(f"togai-engine: {exc}", err=True)
        sys.exit(2)
