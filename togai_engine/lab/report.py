"""Showing a simulation to a person: rich tables, a CSV of every account and cycle, a revenue plot.

matplotlib is an optional extra (`pip install 'togai-engine[plot]'`); it is imported only to plot.
"""

from __future__ import annotations

import csv
import sys
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from togai_engine.common.numbers import EXACT_MONEY_CONTEXT
from togai_engine.lab.schemas import AppliedMeter, AppliedPlan, SimulationResult

ZERO = Decimal(0)
PLOT_HINT = "--plot needs matplotlib, an optional extra: pip install 'togai-engine[plot]'"


class PlotUnavailable(Exception):
    pass


@dataclass(frozen=True)
class CycleRevenue:
    """Revenue of one billing period start, in one currency: actual and per candidate (None: not priced)."""

    currency: str
    start: datetime
    actual: Decimal
    candidates: list[Decimal | None]


def revenue_by_cycle(result: SimulationResult) -> list[CycleRevenue]:
    """Sums over accounts per (currency, period start). A candidate sums only the accounts it prices."""
    count = len(result.candidates)
    actual: dict[tuple[str, datetime], Decimal] = defaultdict(Decimal)
    amounts: dict[tuple[str, datetime], list[Decimal | None]] = defaultdict(lambda: [None] * count)
    for account in result.accounts:
        for cycle in account.cycles:
            key = (cycle.currency, cycle.startDate)
            actual[key] = EXACT_MONEY_CONTEXT.add(actual[key], cycle.actual)  # exact past 28 digits
            row = amounts[key]
            for priced in cycle.candidates:
                row[priced.candidate] = EXACT_MONEY_CONTEXT.add(row[priced.candidate] or ZERO, priced.amount)
    return [CycleRevenue(currency, start, actual[(currency, start)], amounts[(currency, start)])
            for currency, start in sorted(actual)]


def _console() -> Console:
    # Piped to a file or a CI log, rich would assume 80 columns and cut names short.
    return Console() if sys.stdout.isatty() else Console(width=200)


def _money(value: Decimal | None) -> str:
    return "—" if value is None else f"{value:,}"


def print_simulation(result: SimulationResult, console: Console | None = None) -> None:
    console = console or _console()
    names = [c.name for c in result.candidates]
    totals = Table(title="Candidates against what the accounts were charged")
    for column in ("candidate", "currency", "accounts", "cycles", "actual", "candidate amount", "difference",
                   "difference %"):
        totals.add_column(column, justify="left" if column in ("candidate", "currency") else "right")
    for total in result.totals:
        percent = "—" if total.differencePercent is None else f"{total.differencePercent:+}%"
        totals.add_row(total.name, total.currency, str(total.accounts), str(total.cycles), _money(total.actual),
                       _money(total.amount), f"{total.difference:+,}", percent)
    console.print(totals)

    cycles = Table(title="Revenue per billing period")
    for column in ("currency", "period start", "actual", *names):
        cycles.add_column(column, justify="left" if column in ("currency", "period start") else "right")
    for row in revenue_by_cycle(result):
        cycles.add_row(row.currency, row.start.date().isoformat(), _money(row.actual), *map(_money, row.candidates))
    console.print(cycles)

    for total in result.totals:
        for label, movers in (("pays more", total.biggestIncreases), ("pays less", total.biggestDecreases)):
            if movers:
                listed = ", ".join(f"{m.accountId} {m.difference:+,}" for m in movers)
                console.print(f"{total.name} ({total.currency}) — {label}: {listed}")
    for candidate in result.candidates:
        if candidate.unsupportedAccounts:
            console.print(f"{candidate.name}: {candidate.unsupportedAccounts} account(s) in currencies it does not "
                          f"price ({', '.join(candidate.supportedCurrencies)} only) or on another pricing cycle "
                          "(pricingCycleConfig) were left out of its totals")
    console.print(f"{result.accountsSimulated} account(s) simulated, {result.skippedCount} skipped")
    for skipped in result.skipped[:10]:
        console.print(f"  skipped {skipped.accountId}: {skipped.reason}")
    for note in result.notes:
        console.print(f"[dim]note: {note}[/dim]")


def write_csv(result: SimulationResult, path: Path) -> int:
    """One row per account and billing period, candidates side by side; returns the number of rows."""
    names = [c.name for c in result.candidates]
    header = ["accountId", "customerId", "currency", "periodStart", "periodEnd", "pricePlanId", "status",
              "invoiceId", "actual"]
    for name in names:
        header += [f"{name} amount", f"{name} difference"]
    rows = 0
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        for account in result.accounts:
            for cycle in account.cycles:
                priced: dict[int, Any] = {c.candidate: c for c in cycle.candidates}
                row = [account.accountId, account.customerId, cycle.currency, cycle.startDate.isoformat(),
                       cycle.endDate.isoformat(), cycle.pricePlanId, cycle.status, cycle.invoiceId or "",
                       str(cycle.actual)]
                for index in range(len(names)):
                    found = priced.get(index)
                    row += [str(found.amount), str(found.difference)] if found else ["", ""]
                writer.writerow(row)
                rows += 1
    return rows


def require_matplotlib() -> Any:
    try:
        import matplotlib

        matplotlib.use("Agg")  # files only, never a window
        import matplotlib.pyplot as plt
    except ImportError:
        raise PlotUnavailable(PLOT_HINT) from None
    return plt


def plot_revenue(result: SimulationResult, path: Path) -> None:
    """Revenue per billing period: the actual charges and each candidate, one panel per currency."""
    plt = require_matplotlib()
    rows = revenue_by_cycle(result)
    currencies = sorted({r.currency for r in rows}) or ["—"]
    figure, axes = plt.subplots(len(currencies), 1, figsize=(9, 3.5 * len(currencies)), squeeze=False)
    for axis, currency in zip(axes[:, 0], currencies, strict=True):
        mine = [r for r in rows if r.currency == currency]
        starts = [r.start for r in mine]
        axis.plot(starts, [float(r.actual) for r in mine], color="black", linestyle="--", marker="o", linewidth=2,
                  label="actual", zorder=3)
        for index, candidate in enumerate(result.candidates):
            points = [(r.start, float(r.candidates[index])) for r in mine if r.candidates[index] is not None]
            if points:
                axis.plot(*zip(*points, strict=True), marker="o", label=candidate.name)  # display only: float is fine
        axis.set_title(f"Revenue per billing period ({currency})")
        axis.set_ylabel(currency)
        axis.legend()
        axis.grid(alpha=0.3)
    figure.autofmt_xdate()
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)


def _status_table(title: str, rows: Iterable[tuple[str, str, str]]) -> Table:
    table = Table(title=title)
    for column in ("name", "id", "status"):
        table.add_column(column)
    for row in rows:
        table.add_row(*row)
    return table


def print_applied(applied: list[AppliedPlan], console: Console | None = None,
                  meters: list[AppliedMeter] | None = None) -> None:
    console = console or _console()
    if meters:
        console.print(_status_table("Usage meters", ((m.name, m.usageMeterId, m.status) for m in meters)))
    console.print(_status_table("Price plans", ((p.name, p.pricePlanId, p.status) for p in applied)))
    for plan in applied:
        if plan.message:
            console.print(f"{plan.name}: {plan.message}")
