"""What every benchmark shares: a scratch database, timing with medians, and the Figure record.

Discipline (the machine is shared with other engineers' test runs): every figure is measured
several times and reported as the median with its spread (min..max), and every figure has a
baseline measured in the same run on the same database, so a busy machine moves both.
"""

from __future__ import annotations

import asyncio
import json
import os
import platform
import secrets
import statistics
import time
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import asyncpg

from togai_engine.store import migrate

SERVER_URL = os.environ.get(
    "TOGAI_BENCH_DATABASE_URL",
    os.environ.get("TOGAI_DATABASE_URL", "postgresql+asyncpg://postgres@127.0.0.1:5432/postgres"),
)
OUT_DIR = Path(__file__).resolve().parent / "out"


def backend_cpu_ns(pid: int) -> int:
    """CPU time a local server process has run, in ns (/proc/<pid>/schedstat: ns resolution)."""
    return int(Path(f"/proc/{pid}/schedstat").read_text().split()[0])


def libpq(url: str) -> str:
    return url.replace("postgresql+asyncpg://", "postgresql://")


def with_database(url: str, name: str) -> str:
    base, _, query = url.partition("?")
    base = base.rsplit("/", 1)[0] if base.count("/") > 2 else base
    return f"{base}/{name}" + (f"?{query}" if query else "")


async def admin(sql: str) -> None:
    conn = await asyncpg.connect(libpq(with_database(SERVER_URL, "postgres")))
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


@contextmanager
def scratch_database(label: str) -> Iterator[str]:
    """A new database on the benchmark server (migrated to head), dropped afterwards."""
    name = f"togai_bench_{label}_{os.getpid()}_{secrets.token_hex(3)}"
    asyncio.run(admin(f'CREATE DATABASE "{name}"'))
    url = with_database(SERVER_URL, name)
    try:
        migrate.upgrade(url)
        yield url
    finally:
        asyncio.run(admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


async def call_tool(client: Any, tool: str, **arguments: Any) -> dict[str, Any]:
    """A tool's structured result through an MCP client session; a tool error stops the benchmark."""
    result = await client.call_tool(tool, arguments)
    if result.is_error:
        raise RuntimeError(f"{tool}: {result.content[0].text}")
    return result.structured_content or {}


# --- timing -------------------------------------------------------------------------------------


def percentile(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(len(ordered) * q))]


async def latencies_ms(once: Callable[[], Awaitable[Any]], runs: int, warmup: int = 50) -> list[float]:
    """Wall time of `runs` sequential calls (after `warmup` untimed ones), in milliseconds."""
    for _ in range(warmup):
        await once()
    samples = []
    for _ in range(runs):
        started = time.perf_counter_ns()
        await once()
        samples.append((time.perf_counter_ns() - started) / 1e6)
    return samples


def round_slices(samples: list[float], rounds: int) -> list[list[float]]:
    """The contiguous per-round blocks of `samples` collected in `rounds` rounds, one round appended at
    a time (each block: one round's samples, for a per-round statistic in Figure.runs)."""
    size = len(samples)
    return [block for i in range(rounds) if (block := samples[size * i // rounds:size * (i + 1) // rounds])]


def spread(values: list[float]) -> str:
    if len(values) < 2:
        return "1 run"
    low, high, mid = min(values), max(values), statistics.median(values)
    return f"{len(values)} runs, {low:.4g}..{high:.4g} (±{(high - low) / 2 / mid * 100:.0f}% of median)" if mid else ""


# --- results ------------------------------------------------------------------------------------


@dataclass
class Figure:
    """One benchmark figure with its goal and same-run baseline.

    `ratio` is measured / baseline (for throughput: the engine's share of the baseline's speed;
    for latency: how many baseline round trips one engine call costs).
    """

    key: str
    name: str
    unit: str
    goal: str  # e.g. ">= 100000" or "<= 2"
    measured: float
    baseline: float | None
    baseline_label: str
    runs: list[float] = field(default_factory=list)
    baseline_runs: list[float] = field(default_factory=list)
    extra_goal: str = ""  # e.g. "ratio >= 0.4"
    notes: str = ""

    @property
    def ratio(self) -> float | None:
        return None if not self.baseline else self.measured / self.baseline

    @property
    def met(self) -> bool:
        op, value = self.goal.split()
        ok = self.measured >= float(value) if op == ">=" else self.measured <= float(value)
        if self.extra_goal and self.ratio is not None:
            _, extra_op, extra_value = self.extra_goal.split()
            ok = ok and (self.ratio >= float(extra_value) if extra_op == ">=" else self.ratio <= float(extra_value))
        return ok

    def line(self) -> str:
        ratio = f"{self.ratio:.2f}x" if self.ratio is not None else "-"
        base = f"{self.baseline:,.4g} {self.unit} ({self.baseline_label})" if self.baseline is not None else "-"
        goal = self.goal + (f", {self.extra_goal}" if self.extra_goal else "")
        return (f"{self.name}: {self.measured:,.4g} {self.unit} (goal {goal}; {'MET' if self.met else 'SHORT'}) "
                f"baseline {base} ratio {ratio} [{spread(self.runs)}]")

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "ratio": self.ratio, "met": self.met}


def report(figure: Figure) -> Figure:
    print("  => " + figure.line(), flush=True)
    return figure


def machine() -> str:
    cpu = ""
    try:
        for row in Path("/proc/cpuinfo").read_text().splitlines():
            if row.startswith("model name"):
                cpu = row.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    memory = ""
    try:
        kb = int(Path("/proc/meminfo").read_text().split()[1])
        memory = f", {kb / 1024 / 1024:.0f} GB RAM"
    except (OSError, ValueError, IndexError):
        pass
    return f"{os.cpu_count()} cores {cpu or platform.processor()}{memory}, {platform.system()}"


async def server_facts(url: str) -> dict[str, str]:
    conn = await asyncpg.connect(libpq(url))
    try:
        facts = {"version": (await conn.fetchval("SHOW server_version"))}
        for name in ("shared_buffers", "synchronous_commit", "max_wal_size", "work_mem", "jit"):
            facts[name] = await conn.fetchval(f"SHOW {name}")
        return facts
    finally:
        await conn.close()


def write_json(name: str, payload: Any) -> Path:
    OUT_DIR.mkdir(parents=True, exist_ok=True)
    path = OUT_DIR / name
    path.write_text(json.dumps(payload, indent=2, default=str))
    return path
