"""The three worlds of the sandbox equivalence property (test_sandbox_equivalence.py). Each replays a scenario
on the emptied test database through a real MCP client and returns its transcript:

- SANDBOX: a sandbox server; `advance_clock` moves it from step to step.
- BILL_AS_OF: a server on a FixedClock set to each step's instant, and `togai-engine bill --as-of` there
  (its own code path, mcp_server.cli.bill_run) before the step's calls.
- RUNNING: a server on a FixedClock left running: the background pass (mcp_server.serve.billing_pass, as
  serve.background_billing runs it) at every instant the clock passes (every cycle boundary and grace end,
  every instant a step names), not only at the step's own.

A bill run that cannot bill an account fails the world: three worlds failing alike would compare equal.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from mcp import Client
from sqlalchemy import text

from conftest import START, hosted
from equivalence_scenarios import (
    ACCOUNTS,
    Advance,
    ChangePlan,
    Check,
    Corrupt,
    EndPlan,
    Grant,
    Ingest,
    ReadWallet,
    Scenario,
    Step,
    instant,
    iso,
    set_up,
)
from equivalence_transcripts import Transcript, account_state, answer, id_labels, normal
from helpers import call
from mcp_server.cli import bill_run
from mcp_server.serve import billing_pass
from mcp_server.server import build_server
from togai_engine.billing.close import CloseSummary
from togai_engine.common.clock import FixedClock
from togai_engine.sandbox.service import start
from togai_engine.store.database import Database
from togai_engine.tables import metadata

SANDBOX, BILL_AS_OF, RUNNING = "sandbox advance_clock", "bill --as-of at every step", "server left running"
WORLDS = (SANDBOX, BILL_AS_OF, RUNNING)


async def empty(db: Database) -> None:
    """Every row deleted, children first: with a handful of rows ten times faster than TRUNCATE, which makes
    every events partition anew. Identity counters go on (no compared value is one: invoice numbers come from
    invoice_counters, emptied here; wallet entry ids are left out)."""
    async with db.engine.begin() as conn:
        for table in reversed(metadata.sorted_tables):
            await conn.execute(table.delete())


async def left_with_work(db: Database, now: datetime) -> list[str]:
    """Accounts whose bill run at `now` is still due: after a run at `now`, only the accounts it failed."""
    async with db.unit_of_work() as session:
        rows = await session.execute(text("SELECT account_id FROM account_billing WHERE next_run_at <= :now "
                                           "ORDER BY account_id"), {"now": now})
        return [r[0] for r in rows]


def refuse_failures(world: str, at: datetime, failed: list[Any]) -> None:
    """Three worlds failing an account alike would compare equal: a failed bill run fails the test instead."""
    assert not failed, f"{world}: the bill run at {iso(at)} could not bill {failed}"


def check_summary(world: str, at: datetime, summary: CloseSummary) -> None:
    refuse_failures(world, at, [f"{f.accountId}: {f.reason}" for f in summary.failed])


async def arrive(world: str, db: Database, client: Client, clock: FixedClock, scenario: Scenario,
                 step: Advance) -> None:
    """Brings a world to the step's instant, billing as that world bills."""
    previous, target = clock.now(), instant(step.to)
    if world == SANDBOX:
        moved = await call(client, "advance_clock", **({"by": step.by} if step.by else {"to": step.to}))
        assert moved["now"] == step.to, f"advance_clock by {step.by} from {iso(previous)} landed on {moved['now']}"
        refuse_failures(world, target, moved.get("failed", []))  # ClockAdvance.failed, once it has it
        refuse_failures(world, target, await left_with_work(db, target))
        clock.set(target)
    elif world == BILL_AS_OF:
        clock.set(target)
        summary, _, billed_at = await bill_run(db, target)
        assert billed_at == target
        check_summary(world, target, summary)
    else:
        for at in scenario.passes(previous, target):
            clock.set(at)
            check_summary(world, at, await billing_pass(db, at))


async def act(db: Database, client: Client, plan_ids: dict[str, str], step: Step) -> Any:
    match step:
        case Ingest():
            return await answer(client, "ingest_event", event={
                "id": step.event_id, "schemaName": "llm", "timestamp": step.timestamp, "accountId": step.account,
                "attributes": {"tokens": str(step.tokens)}})
        case Grant():
            return await answer(client, "grant_credit", accountId=step.account, amount=step.amount,
                                effectiveFrom=step.effective_from, effectiveUntil=step.effective_until,
                                priority=step.priority, idempotencyKey=step.key)
        case ChangePlan():
            return await answer(client, "update_account", accountId=step.account,
                                pricePlanId=plan_ids[step.plan], effectiveFrom=step.effective_from)
        case EndPlan():
            return await answer(client, "update_account", accountId=step.account,
                                effectiveUntil=step.effective_until)
        case Check():
            return await answer(client, "check_entitlement", accountId=step.account, featureId=step.feature,
                                quantity=step.quantity)
        case ReadWallet():
            return await answer(client, "get_wallet_balance", accountId=step.account)
        case Corrupt():
            async with db.unit_of_work() as session:
                await session.execute(text("UPDATE accounts SET invoice_currency = 'EUR' WHERE id = :id"),
                                      {"id": step.account})
                await session.execute(text("UPDATE invoices SET currency = 'EUR' WHERE account_id = :id"),
                                      {"id": step.account})
            return None
    raise AssertionError(f"unknown step {step!r}")


@dataclass(repr=False)
class Server:
    client: Client
    # the time the test moves: the real-clock servers' own clock; for the sandbox server (which reads its
    # clock row, and whose wall clock is far away) only where the test last advanced it
    clock: FixedClock

    def __repr__(self) -> str:  # hypothesis prints the fixtures of a failing example
        return "Server()"


@asynccontextmanager
async def servers(db: Database) -> AsyncIterator[dict[str, Server]]:
    """One server per world, kept for every example of a test (starting a client costs ~0.6 s); the
    database is emptied between worlds, which a server holds nothing of."""
    async with AsyncExitStack() as stack:
        found = {}
        for world in WORLDS:
            clock = FixedClock(START)
            # the sandbox server's wall clock is far away: a call reading it instead of the sandbox time shows
            server = (build_server(db, clock=FixedClock(datetime(2031, 7, 4, tzinfo=UTC)), sandbox=True)
                      if world == SANDBOX else build_server(db, clock=clock))
            found[world] = Server(await stack.enter_async_context(hosted(Client(server, raise_exceptions=False))),
                                  clock)
        yield found


async def run_world(world: str, db: Database, server: Server, scenario: Scenario) -> Transcript:
    await empty(db)
    client, clock = server.client, server.clock
    clock.set(START)
    if world == SANDBOX:
        async with db.unit_of_work() as session:
            await start(session, START)
    answers: list[tuple[str, Any]] = []
    plan_ids = await set_up(client)
    for step in scenario.steps:
        if isinstance(step, Advance):
            await arrive(world, db, client, clock, scenario, step)
        else:
            answers.append((repr(step), await act(db, client, plan_ids, step)))
    final = {account: await account_state(client, account) for account in ACCOUNTS}
    labels = await id_labels(db)
    return Transcript([(step, normal(value, labels)) for step, value in answers], normal(final, labels))
