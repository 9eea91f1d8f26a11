"""`togai-engine scenario run`: every file read first, then each run on its own fresh database, one after
another, one line each; the summary, the JUnit report and the exit code (0 passed, 1 a scenario failed or
differs, 2 a file could not be read)."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager
from pathlib import Path

import anyio
import typer

from mcp_server.scenarios.errors import ScenarioFileError
from mcp_server.scenarios.golden import rewrite, still_different
from mcp_server.scenarios.junit import Case, write_junit
from mcp_server.scenarios.loader import LoadedScenario, load_scenario
from mcp_server.scenarios.runner import ScenarioResult, run_scenario
from togai_engine.store.throwaway import ThrowawayError

EXIT_FAILED = 1
EXIT_UNREADABLE = 2


def _seconds(value: float) -> str:
    return f"{value:.2f} s"


def _failure_text(result: ScenarioResult) -> str | None:
    name = result.loaded.file.name
    lines = [difference.render(name) for difference in result.differences]
    if result.failure is not None:
        lines.append(f"{name} › {result.failure}")
    return "\n".join(lines) if lines else None


def _report(result: ScenarioResult, updated: int) -> None:
    word = "PASS" if result.passed else "FAIL"
    detail = f" ({updated} value(s) rewritten)" if updated else ""
    if updated and result.passed:
        word = "UPDATED"
    typer.echo(f"{word:<7} {result.loaded.file}  {result.loaded.name}  {_seconds(result.seconds)}{detail}")
    for line in (_failure_text(result) or "").splitlines():
        typer.echo(f"        {line}")


async def _run_all(scenarios: list[LoadedScenario], server_url: str, update_golden: bool,
                   cases: list[Case]) -> tuple[int, int, list[float]]:
    passed = failed = 0
    startups = []
    for loaded in scenarios:
        result = await run_scenario(loaded, server_url)
        startups.append(result.startup)
        updated = 0
        if update_golden and result.failure is None:
            updated = rewrite(loaded.file, result.checks)
            if updated:  # the file now says what the engine did, but for what no rewrite can fix
                result.differences = still_different(loaded.file, result.checks)
        _report(result, updated)
        passed += result.passed
        failed += not result.passed
        cases.append(Case(loaded.file, loaded.name, result.seconds, failure=_failure_text(result)))
    return passed, failed, startups


def run_files(files: Sequence[Path], database: Callable[[], AbstractContextManager[str]], *,
              update_golden: bool = False, junit: Path | None = None) -> int:
    """Runs the scenario files on databases of the server `database()` yields; returns the exit code."""
    began = time.perf_counter()
    cases: list[Case] = []
    scenarios = []
    for file in files:
        try:
            scenarios.append(load_scenario(file))
        except ScenarioFileError as exc:
            typer.echo(f"{'ERROR':<7} {exc}", err=True)
            cases.append(Case(file, file.name, 0.0, error=str(exc)))
    unreadable = len(cases)
    passed = failed = 0
    startups: list[float] = []
    if scenarios:
        try:
            with database() as server_url:
                passed, failed, startups = anyio.run(_run_all, scenarios, server_url, update_golden, cases)
        except ThrowawayError as exc:  # no database to run on: nothing ran
            typer.echo(f"togai-engine: {exc}", err=True)
            return EXIT_FAILED
    summary = f"{len(files)} scenario(s), {passed} passed"
    summary += f", {failed} failed" if failed else ""
    summary += f", {unreadable} unreadable" if unreadable else ""
    summary += f" in {time.perf_counter() - began:.1f} s"
    if startups:
        summary += f" (fresh database: {statistics.median(startups):.2f} s median)"
    typer.echo(summary)
    if junit is not None:
        write_junit(junit, cases)
    return EXIT_UNREADABLE if unreadable else EXIT_FAILED if failed else 0
