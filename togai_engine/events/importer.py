"""`togai-engine import events FILE`: stream a file through the bulk import, with a progress bar
and a report of rejected lines (JSON Lines: line, id, code, field, reason)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import IO

from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn, TransferSpeedColumn

from togai_engine.common.clock import SystemClock
from togai_engine.events.bulk import ImportSummary, import_events
from togai_engine.events.files import file_format, read_events
from togai_engine.events.ingest import RejectedEvent
from togai_engine.store.database import Database


class CountingReader:
    """A text stream that counts the bytes read, for the progress bar (no second pass over the file)."""

    def __init__(self, stream: IO[bytes]) -> None:
        self.stream = stream
        self.bytes_read = 0

    def __iter__(self) -> CountingReader:
        return self

    def __next__(self) -> str:
        line = self.stream.readline()
        if not line:
            raise StopIteration
        self.bytes_read += len(line)
        return line.decode("utf-8", errors="replace")


async def import_file(db: Database, path: Path, report_path: Path, *, batch_size: int = 1000,
                      show_progress: bool = True) -> ImportSummary:
    fmt = file_format(path)
    # CSV line numbers are 1-based and count the header; JSON Lines have no header.
    first_line = 2 if fmt == "csv" else 1
    with path.open("rb") as raw, report_path.open("w", encoding="utf-8") as report, Progress(
        TextColumn("importing {task.description}"), BarColumn(), TransferSpeedColumn(), TimeElapsedColumn(),
        disable=not show_progress, transient=False,
    ) as progress:
        reader = CountingReader(raw)
        task = progress.add_task(path.name, total=path.stat().st_size)

        def rejected(position: int, rejection: RejectedEvent) -> None:
            report.write(json.dumps({"line": position + first_line, "id": rejection.event_id,
                                     "code": str(rejection.code), "field": rejection.field,
                                     "reason": rejection.message}) + "\n")

        def advanced(_: ImportSummary) -> None:
            progress.update(task, completed=reader.bytes_read)

        summary = await import_events(db, read_events(reader, fmt), clock=SystemClock(), batch_size=batch_size,
                                      on_rejected=rejected, on_progress=advanced)
        progress.update(task, completed=path.stat().st_size)
    return summary
