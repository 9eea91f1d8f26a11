"""Runs every benchmark: `python -m bench [--scale small|full] [--only ingest,mcp,...]`
(or `python bench/run_all.py ...`).

Each benchmark makes its own scratch database on the benchmark server (TOGAI_BENCH_DATABASE_URL,
else TOGAI_DATABASE_URL, else postgresql+asyncpg://postgres@127.0.0.1:5432/postgres), prints its
figure with a baseline measured in the same run, and drops the database. Results go to
bench/out/results-<scale>-<time>.json and to the table of that scale in bench/README.md.

Scales: `small` (default, minutes) and `full` (the realistic 10M-event set, ~30-40 minutes).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make the repository importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import bench_close, bench_entitlements, bench_import, bench_ingest, bench_mcp, bench_reads, bench_sandbox
from bench.common import SERVER_URL, Figure, machine, server_facts, write_json
from togai_engine.common.gc_tuning import tune_gc

README = Path(__file__).resolve().parent / "README.md"


@dataclass(frozen=True)
class Scale:
    ingest_events: int
    ingest_runs: int
    mcp_events: int
    mcp_calls: int
    import_sizes: tuple[int, ...]
    accounts: int
    events: int
    whale_events: int
    read_calls: int
    close_accounts: int
    close_events: int
    entitlement_events: int
    simulate_accounts: int


SCALES = {
    "small": Scale(ingest_events=50_000, ingest_runs=3, mcp_events=20_000, mcp_calls=1000,
                   import_sizes=(200_000, 1_000_000), accounts=200, events=1_000_000, whale_events=200_000,
                   read_calls=100, close_accounts=2_000, close_events=400_000, entitlement_events=200_000,
                   simulate_accounts=200),
    "full": Scale(ingest_events=200_000, ingest_runs=5, mcp_events=100_000, mcp_calls=3000,
                  import_sizes=(1_000_000, 5_000_000, 10_000_000), accounts=1000, events=10_000_000,
                  whale_events=1_000_000, read_calls=200, close_accounts=10_000, close_events=2_000_000,
                  entitlement_events=1_000_000, simulate_accounts=1000),
}


def simulate(scale: Scale) -> list[Figure]:
    """The pricing lab's own benchmark (bench/bench_simulate.py), run as it is and read from its output."""
    print(f"pricing lab: simulate_price_plans, {scale.simulate_accounts} accounts", flush=True)
    script = Path(__file__).resolve().parent / "bench_simulate.py"
    out = subprocess.run([sys.executable, str(script), "--accounts", str(scale.simulate_accounts), "--runs", "3"],
                         capture_output=True, text=True, env={**os.environ, "TOGAI_DATABASE_URL": SERVER_URL})
    print("\n".join("    " + line for line in out.stdout.strip().splitlines()), flush=True)
    best = re.search(r"best\s+([\d.]+) s", out.stdout)
    billing = re.search(r"close_due_cycles\):\s+([\d.]+) s", out.stdout)
    if out.returncode != 0 or best is None:  # raised, so main() counts it as failed and leaves the README alone
        raise RuntimeError(f"bench_simulate failed: {out.stderr[-1000:]}")
    return [Figure(key="simulate", name=f"simulate_price_plans, 3 plans x {scale.simulate_accounts} accounts x 3 "
                                        "cycles (pricing lab)", unit="s", goal="<= 10", measured=float(best.group(1)),
                   baseline=float(billing.group(1)) if billing else None,
                   baseline_label="one real billing run of the same accounts (close_due_cycles)",
                   notes="bench/bench_simulate.py (pricing lab engineer); best of 3 runs")]


def benchmarks(scale: Scale) -> dict[str, Callable[[], list[Figure]]]:
    return {
        "ingest": lambda: bench_ingest.run(accounts=scale.accounts, events=scale.ingest_events,
                                           runs=scale.ingest_runs, workers=(1, 2, 4)),
        "mcp": lambda: bench_mcp.run(accounts=scale.accounts, events=scale.mcp_events, runs=3,
                                     calls=scale.mcp_calls, concurrency=2),
        "import": lambda: bench_import.run(accounts=scale.accounts, sizes=list(scale.import_sizes)),
        "reads": lambda: bench_reads.run(accounts=scale.accounts, events=scale.events,
                                         whale_events=scale.whale_events, calls=scale.read_calls),
        "entitlements": lambda: bench_entitlements.run(events=scale.entitlement_events, checks=3000),
        "close": lambda: bench_close.run(accounts=scale.close_accounts, events=scale.close_events, runs=3),
        "simulate": lambda: simulate(scale),
        "sandbox": lambda: bench_sandbox.run(accounts=100, startup_runs=9, year_runs=3),
    }


def _cell(value: float | None, unit: str) -> str:
    if value is None:
        return "-"
    text = f"{value:,.0f}" if value >= 1000 else f"{value:.3g}"
    return f"{text} {unit}"


def table(figures: list[Figure], when: str, where: str) -> str:
    rows = ["| figure | goal | measured | baseline (same run) | ratio | met | date | machine |",
            "|---|---|---|---|---|---|---|---|"]
    for f in figures:
        goal = f"{f.goal} {f.unit}" + (f"; {f.extra_goal}" if f.extra_goal else "")
        base = f"{_cell(f.baseline, f.unit)}: {f.baseline_label}" if f.baseline is not None else "-"
        ratio = f"{f.ratio:.2f}x" if f.ratio is not None else "-"
        rows.append(f"| {f.name} | {goal} | {_cell(f.measured, f.unit)} | {base} | {ratio} | "
                    f"{'yes' if f.met else '**no**'} | {when} | {where} |")
    notes = [f"- {f.name}: {f.notes}" for f in figures if f.notes]
    return "\n".join(rows) + ("\n\nNotes:\n" + "\n".join(notes) if notes else "")


def update_readme(scale: str, body: str) -> None:
    start, end = f"<!-- results:{scale}:start -->", f"<!-- results:{scale}:end -->"
    text = README.read_text() if README.exists() else ""
    block = f"{start}\n{body}\n{end}"
    if start in text and end in text:
        text = text[:text.index(start)] + block + text[text.index(end) + len(end):]
    else:
        text += f"\n### {scale} scale\n\n{block}\n"
    README.write_text(text)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scale", choices=sorted(SCALES), default="small")
    parser.add_argument("--only", help="comma-separated: " + ", ".join(benchmarks(SCALES["small"])))
    parser.add_argument("--no-readme", action="store_true", help="do not update bench/README.md")
    args = parser.parse_args()
    scale = SCALES[args.scale]
    chosen = benchmarks(scale)
    if args.only:
        unknown = set(args.only.split(",")) - chosen.keys()
        if unknown:
            parser.error(f"unknown benchmark(s): {', '.join(sorted(unknown))}")
        chosen = {k: v for k, v in chosen.items() if k in args.only.split(",")}
    tune_gc()  # as every togai-engine process does (togai_engine/common/gc_tuning.py): in-process figures match the server's
    started = time.perf_counter()
    where = machine()
    facts = asyncio.run(server_facts(SERVER_URL))
    print(f"{args.scale} scale on {where}; PostgreSQL {facts['version']} "
          f"(shared_buffers {facts['shared_buffers']}, synchronous_commit {facts['synchronous_commit']})", flush=True)
    figures: list[Figure] = []
    failed: list[str] = []
    for name, bench in chosen.items():
        try:
            figures += bench()
        except Exception as exc:  # one broken benchmark must not hide the others' figures
            failed.append(name)
            print(f"  !! {name} failed: {type(exc).__name__}: {exc}", flush=True)
    when = datetime.now(UTC).strftime("%Y-%m-%d")
    path = write_json(f"results-{args.scale}-{datetime.now(UTC):%Y%m%dT%H%M%S}.json", {
        "scale": args.scale, "date": when, "machine": where, "postgres": facts,
        "seconds": time.perf_counter() - started, "figures": [f.as_dict() for f in figures]})
    print(f"\n{table(figures, when, where)}\n\nresults: {path} ({time.perf_counter() - started:.0f} s)")
    if failed:  # a partial table would replace the last complete one
        print(f"bench/README.md left alone: {', '.join(failed)} failed", flush=True)
        sys.exit(1)
    if not args.no_readme and not args.only:
        update_readme(args.scale, table(figures, when, where))


if __name__ == "__main__":
    main()
