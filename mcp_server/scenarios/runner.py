"""Running one scenario on a fresh sandbox database: setup, the steps in time, the expectations."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from mcp_server.sandbox_engine import sandbox_engine, warm_sandbox_server
from mcp_server.scenarios.calls import Calls, ScenarioFailed
from mcp_server.scenarios.compare import Difference, compare
from mcp_server.scenarios.loader import LoadedScenario, TimedStep
from mcp_server.scenarios.model import Expectations
from mcp_server.scenarios.observe import Observation, observe
from mcp_server.scenarios.times import iso

BATCH = 1000  # ingest_batch_events' largest batch
SHOWN_REJECTIONS = 3


@dataclass
class Check:
    where: tuple[str | int, ...]  # ("expect",) or ("steps", 3, "expect")
    expected: Expectations
    seen: Observation


@dataclass
class ScenarioResult:
    loaded: LoadedScenario
    seconds: float = 0.0
    startup: float = 0.0  # the fresh database and its client session, ready
    differences: list[Difference] = field(default_factory=list)
    failure: ScenarioFailed | None = None
    checks: list[Check] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return self.failure is None and not self.differences


async def run_scenario(loaded: LoadedScenario, server_url: str) -> ScenarioResult:
    result = ScenarioResult(loaded)
    warm_sandbox_server()  # built once per process: not part of a fresh database's start-up
    began = time.perf_counter()
    async with sandbox_engine(server_url, loaded.start) as engine:
        result.startup = time.perf_counter() - began
        calls = Calls(engine.client)
        try:
            await _setup(calls, loaded)
            now = loaded.start
            for step in loaded.steps:
                if step.at > now:
                    moved_by = "at" if step.step.at is not None else "advance"
                    moved = await calls.call("advance_clock", {"to": iso(step.at)}, ("steps", step.index, moved_by))
                    _require_billed(moved, ("steps", step.index, moved_by))
                    now = step.at
                await _run_step(calls, step)
                if step.step.expect is not None:
                    await _check(calls, result, ("steps", step.index, "expect"), step.step.expect)
            if loaded.expect is not None:
                await _check(calls, result, ("expect",), loaded.expect)
        except ScenarioFailed as failed:
            result.failure = failed
    result.seconds = time.perf_counter() - began
    return result


def _require_billed(moved: dict[str, Any], path: tuple[str | int, ...]) -> None:
    """An account the bill run could not bill fails the scenario with the engine's reason: its invoices would
    otherwise show up later only as a DRAFT that should have been DUE, with no why."""
    failed = moved.get("failed") or []
    if failed:
        reasons = "; ".join(f"{failure['accountId']}: {failure['reason']}" for failure in failed)
        raise ScenarioFailed(path, f"advance_clock could not bill {len(failed)} account(s): {reasons}")


async def _check(calls: Calls, result: ScenarioResult, where: tuple[str | int, ...], expected: Expectations) -> None:
    seen = await observe(calls, expected, where)
    result.checks.append(Check(where, expected, seen))
    result.differences += compare(where, expected, seen)


async def _setup(calls: Calls, loaded: LoadedScenario) -> None:
    for pricing in loaded.pricing:
        for i, meter in enumerate(pricing.meters):
            await calls.call("create_usage_meter", meter, (*pricing.path, "meters", i))
        for i, plan in enumerate(pricing.plans):
            await calls.call("create_price_plan", plan, (*pricing.path, "plans", i))
    for kind, tool, items in (("customers", "create_customer", loaded.customers),
                              ("accounts", "create_account", loaded.accounts)):
        for i, arguments in enumerate(items):
            path = ("setup", kind, i)
            await calls.call(tool, await calls.resolved(arguments, path), path)


async def _run_step(calls: Calls, step: TimedStep) -> None:
    """The step's events, then its `do` calls in order. With `expectError`, the first error must contain that
    text (the step's remaining calls are skipped), and the step must meet one."""
    expected_error = step.step.expectError
    try:
        await _ingest(calls, step)
        for action in step.actions:
            await calls.call(action.tool, await calls.resolved(action.arguments, action.path), action.path)
    except ScenarioFailed as failed:
        if expected_error is None:
            raise
        if expected_error not in failed.message:
            raise ScenarioFailed(failed.path, f"{failed.message} (the step expected an error containing "
                                              f"{expected_error!r})") from None
        return
    if expected_error is not None:
        raise ScenarioFailed(("steps", step.index, "expectError"),
                             f"expected an error containing {expected_error!r}; every call of the step succeeded")


async def _ingest(calls: Calls, step: TimedStep) -> None:
    """The step's events in batches; a rejected event fails the step, naming where it came from."""
    path = ("steps", step.index, "events")
    for first in range(0, len(step.events), BATCH):
        batch = step.events[first:first + BATCH]
        outcome: dict[str, Any] = await calls.call("ingest_batch_events", {"events": batch}, path)
        rejected = outcome.get("rejectedEvents") or []
        if rejected:
            shown = "; ".join(f"{step.event_labels[first + r['index']]}: {r.get('code')} "
                              f"{r.get('field') or ''} {r.get('message')}".replace("  ", " ")
                              for r in rejected[:SHOWN_REJECTIONS])
            more = f" (and {len(rejected) - SHOWN_REJECTIONS} more)" if len(rejected) > SHOWN_REJECTIONS else ""
            raise ScenarioFailed(path, f"ingest_batch_events rejected {len(rejected)} event(s): {shown}{more}")
