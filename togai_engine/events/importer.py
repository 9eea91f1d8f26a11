"""`togai-engine import events FILE`: stream a file through the bulk import, with a progress bar
and a report of rejected lines (JSON Lines: line, id, code, field, reason), written only when a line
was rejected (the report of an earlier run at the same path is removed first: it is not this run's).

A large JSON Lines file is split into byte ranges at line starts and imported by several worker
processes at once (one Python process validates ~65k events/s, less than a PostgreSQL with a few
cores can store). Each part is a stream like a whole file:
its own batches and transactions, the same dedupe (an id present in two parts is stored once, the
database decides), its own report part, merged in line order at the end. CSV is imported by one
process: a quoted cell may hold a line break, so a byte offset is not a safe place to cut it.
"""

from __future__ import annotations

import asyncio
import json
import multiprocessing
import os
import queue
import threading
from collections.abc import Callable
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import IO, Any

from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn, TransferSpeedColumn

from togai_engine.common.clock import SystemClock
from togai_engine.common.gc_tuning import tune_gc
from togai_engine.events.bulk import ImportSummary, RejectedCallback, import_events
from togai_engine.events.files import FileFormatError, csv_field, file_format, read_events
from togai_engine.events.ingest import RejectedEvent
from togai_engine.store.database import Database

MIN_PART_BYTES = 8 << 20  # below ~40k lines a second process costs more (its start-up) than it saves
MAX_WORKERS = 8
PARENT_GONE_EXIT = 3  # a worker's exit code when its importer went away (no one reads it)


STOPPED_ADVICE = ("What was stored stays stored; run the import again to complete it "
                  "(stored events come back as duplicates)")


class ImportFailed(RuntimeError):
    """An import stopped with an error; what its batches committed stays stored. `summary` totals the
    batches known to have settled (a part whose worker was killed counts none); None when none settled."""

    def __init__(self, message: str, summary: ImportSummary | None = None) -> None:
        super().__init__(message)
        self.summary = summary


def default_workers() -> int:
    """One worker per two cores: a worker's Python (~15 us of CPU per event) keeps about one and a half
    cores busy with PostgreSQL's part (~25 us per event) on the same machine. On 2 cores a second
    worker measured no faster (34.6k vs 32.3k events/s, the machine 92% busy), so there it is one."""
    return max(1, min(MAX_WORKERS, (os.cpu_count() or 1) // 2))


@dataclass(frozen=True)
class FilePart:
    start: int  # byte offset of the part's first line
    end: int  # byte offset just past its last line
    first_line: int  # file line number of its first line (1-based)


def split_lines(path: Path, parts: int, *, min_part_bytes: int = MIN_PART_BYTES) -> list[FilePart]:
    """Up to `parts` byte ranges of `path` that start at line starts, with their first line numbers."""
    size = path.stat().st_size
    parts = max(1, min(parts, size // max(1, min_part_bytes)))
    with path.open("rb") as stream:
        cuts = [0]
        for k in range(1, parts):
            stream.seek(size * k // parts)
            stream.readline()  # to the next line start
            if cuts[-1] < stream.tell() < size:
                cuts.append(stream.tell())
        cuts.append(size)
        first_lines, position = [1], 0
        stream.seek(0)
        for cut in cuts[1:-1]:
            first_lines.append(first_lines[-1] + _count_newlines(stream, cut - position))
            position = cut
    return [FilePart(cuts[i], cuts[i + 1], first_lines[i]) for i in range(len(cuts) - 1)]


def _count_newlines(stream: IO[bytes], length: int) -> int:
    count = 0
    while length > 0:
        chunk = stream.read(min(length, 1 << 20))
        if not chunk:
            break
        count += chunk.count(b"\n")
        length -= len(chunk)
    return count


class RangeReader:
    """The text lines of a byte range of a binary stream; counts the bytes read for the progress bar."""

    def __init__(self, stream: IO[bytes], limit: int) -> None:
        self.stream = stream
        self.limit = limit
        self.bytes_read = 0

    def __iter__(self) -> RangeReader:
        return self

    def __next__(self) -> str:
        if self.bytes_read >= self.limit:
            raise StopIteration
        line = self.stream.readline()
        if not line:
            raise StopIteration
        self.bytes_read += len(line)
        # a byte that is not UTF-8 stays itself (a lone surrogate), for files.py to reject its line; a
        # replacement character would store changed ids and values without a word
        return line.decode("utf-8", errors="surrogateescape")


class ReportFile:
    """A report of rejected lines, created with its first line: an import without rejections leaves none."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._file: IO[str] | None = None

    def write(self, text: str) -> None:
        if self._file is None:
            self._file = self.path.open("w", encoding="utf-8")
        self._file.write(text)

    def __enter__(self) -> ReportFile:
        return self

    def __exit__(self, *_: object) -> None:
        if self._file is not None:
            self._file.close()


def _report_writer(report: ReportFile, first_line: int) -> RejectedCallback:
    def rejected(position: int, rejection: RejectedEvent) -> None:
        report.write(json.dumps({"line": position + first_line, "id": rejection.event_id,
                                 "code": str(rejection.code), "field": rejection.field,
                                 "reason": rejection.message}) + "\n")
    return rejected


@dataclass
class PartProgress:
    """The running totals of a part, kept by the caller so that they outlive an error."""

    summary: ImportSummary | None = None


async def _import_part(db: Database, path: Path, part: FilePart, fmt: str, report: ReportFile, *, batch_size: int,
                       on_bytes: Callable[[int], None], progress: PartProgress, sandbox: bool) -> ImportSummary:
    # CSV line numbers are 1-based and count the header; JSON Lines have no header.
    first_line = 2 if fmt == "csv" else part.first_line

    def on_batch(summary: ImportSummary) -> None:
        progress.summary = summary  # the live totals: they grow as batches settle
        on_bytes(reader.bytes_read)

    with path.open("rb") as raw:
        raw.seek(part.start)
        reader = RangeReader(raw, part.end - part.start)
        return await import_events(db, read_events(reader, fmt, first_line), clock=None if sandbox else SystemClock(),
                                   batch_size=batch_size, on_rejected=_report_writer(report, first_line),
                                   on_progress=on_batch, field_naming=csv_field if fmt == "csv" else None)


async def import_file(db: Database, path: Path, report_path: Path, *, batch_size: int = 1000,
                      show_progress: bool = True, workers: int = 1, min_part_bytes: int = MIN_PART_BYTES,
                      sandbox: bool = False) -> ImportSummary:
    """`sandbox`: the database is a sandbox; its events are ingested at its time, and those dated after it are
    rejected (EVENT_IN_FUTURE), as the tools do on a sandbox server."""
    fmt = file_format(path)
    size = path.stat().st_size
    parts = split_lines(path, workers, min_part_bytes=min_part_bytes) if fmt == "jsonl" else [FilePart(0, size, 1)]
    for stale in (report_path, *(_part_report(report_path, i) for i in range(len(parts)))):
        stale.unlink(missing_ok=True)
    with Progress(TextColumn("importing {task.description}"), BarColumn(), TransferSpeedColumn(),
                  TimeElapsedColumn(), disable=not show_progress, transient=False) as progress:
        task = progress.add_task(path.name, total=size)
        if len(parts) == 1:
            part_progress = PartProgress()
            with ReportFile(report_path) as report:
                try:
                    summary = await _import_part(db, path, parts[0], fmt, report, batch_size=batch_size,
                                                 on_bytes=lambda done: progress.update(task, completed=done),
                                                 progress=part_progress, sandbox=sandbox)
                except FileFormatError:
                    raise  # the file as a whole is unreadable: nothing was stored
                except Exception as exc:
                    raise ImportFailed(f"{type(exc).__name__}: {exc}. {STOPPED_ADVICE}",
                                       part_progress.summary) from exc
        else:
            summary = await asyncio.to_thread(
                _run_parallel, db.url, path, parts, report_path, batch_size,
                lambda done: progress.update(task, completed=done), sandbox)
        progress.update(task, completed=size)
    return summary


# --- parallel parts -----------------------------------------------------------------------------


def _part_report(report_path: Path, index: int) -> Path:
    return report_path.with_name(f"{report_path.name}.part{index}")


def _run_parallel(url: str, path: Path, parts: list[FilePart], report_path: Path, batch_size: int,
                  on_bytes: Callable[[int], None], sandbox: bool = False) -> ImportSummary:
    context = multiprocessing.get_context("spawn")  # a clean interpreter: no inherited pools or loops
    done_bytes = context.Array("q", len(parts))
    results = context.Queue()
    processes = [
        context.Process(target=_worker, name=f"togai-import-{i}", daemon=True,
                        args=(url, path, parts[i], _part_report(report_path, i), batch_size, done_bytes, i, results,
                              sandbox))
        for i in range(len(parts))
    ]
    for process in processes:
        process.start()
    outcomes: dict[int, tuple[str, Any]] = {}
    try:
        while len(outcomes) < len(parts):
            on_bytes(sum(done_bytes[:]))
            try:
                index, kind, payload = results.get(timeout=0.2)
                outcomes[index] = (kind, payload)
            except queue.Empty:
                for i, process in enumerate(processes):
                    if i not in outcomes and process.exitcode is not None:
                        _collect_after_exit(results, outcomes, i, process.exitcode)
    finally:
        for process in processes:
            process.join(timeout=5)
            if process.is_alive():
                process.terminate()
    _merge_reports(report_path, len(parts))
    errors = [f"part {i + 1} (from line {parts[i].first_line}): {payload['error']}"
              for i, (kind, payload) in sorted(outcomes.items()) if kind == "error"]
    settled = [payload if kind == "ok" else payload["summary"] for kind, payload in outcomes.values()]
    total = _sum_summaries([s for s in settled if s is not None])
    if errors:
        raise ImportFailed("; ".join(errors) + f". {STOPPED_ADVICE}", total)
    assert total is not None  # every part finished
    return total


def _sum_summaries(summaries: list[dict[str, int]]) -> ImportSummary | None:
    if not summaries:
        return None
    total = ImportSummary()
    for summary in summaries:
        for f in fields(ImportSummary):
            setattr(total, f.name, getattr(total, f.name) + summary[f.name])
    return total


def _collect_after_exit(results: Any, outcomes: dict[int, tuple[str, Any]], index: int, exitcode: int) -> None:
    """Worker `index` has exited: its result was flushed to the queue before it exited, unless it was
    killed (out of memory, a signal), in which case it never comes."""
    try:
        while index not in outcomes:
            other, kind, payload = results.get(timeout=1)
            outcomes[other] = (kind, payload)
    except queue.Empty:
        outcomes[index] = ("error", {"error": f"the worker process exited with code {exitcode} before reporting",
                                     "summary": None})


def _merge_reports(report_path: Path, count: int) -> None:
    """The parts' reports, in part order (each part's lines are in its own line order); a part without
    rejections has none."""
    with ReportFile(report_path) as merged:
        for i in range(count):
            part = _part_report(report_path, i)
            if part.exists():
                with part.open(encoding="utf-8") as lines:
                    for line in lines:
                        merged.write(line)
                part.unlink()


def _exit_with_parent() -> None:
    """Ends this worker the moment the importer that started it is gone, however it went (a SIGKILL too):
    an operator who kills the import stops all of it, and no worker imports on with nobody to merge its
    report or count its lines. What its open batch wrote is rolled back by PostgreSQL when the connection
    drops; committed batches stay, as after any stopped import.

    The sign is the pipe multiprocessing keeps between parent and worker (`parent_process().join()`):
    the kernel closes the parent's end when the parent exits, whatever the cause, and the end of file stays
    readable, so a parent that died before this thread started is seen at once. Linux's PR_SET_PDEATHSIG
    would also work, but only on Linux, and it fires when the parent *thread* that started the worker ends
    (here a thread of asyncio's pool), and a parent that died before the worker set it goes unnoticed."""
    parent = multiprocessing.parent_process()
    if parent is None:
        return

    def watch() -> None:
        parent.join()
        os._exit(PARENT_GONE_EXIT)

    threading.Thread(target=watch, name="togai-import-parent-watch", daemon=True).start()


def _worker(url: str, path: Path, part: FilePart, report_path: Path, batch_size: int, done_bytes: Any,
            index: int, results: Any, sandbox: bool) -> None:
    _exit_with_parent()

    def on_bytes(done: int) -> None:
        done_bytes[index] = done

    progress = PartProgress()

    async def run() -> ImportSummary:
        db = Database(url, pool_size=3)
        try:
            with ReportFile(report_path) as report:
                return await _import_part(db, path, part, "jsonl", report, batch_size=batch_size, on_bytes=on_bytes,
                                          progress=progress, sandbox=sandbox)
        finally:
            await db.dispose()

    tune_gc()
    try:
        results.put((index, "ok", asdict(asyncio.run(run()))))
    except BaseException as exc:  # reported to the parent, which names the part and adds what it settled
        results.put((index, "error", {"error": f"{type(exc).__name__}: {exc}",
                                      "summary": asdict(progress.summary) if progress.summary else None}))
