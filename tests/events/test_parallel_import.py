"""A JSON Lines file imported by several worker processes at once means exactly what it means when
imported by one: same events stored once, same rejected line numbers, same quantities."""

from __future__ import annotations

import json
from dataclasses import asdict
from itertools import pairwise
from pathlib import Path

import pytest
from sqlalchemy import text

from helpers import call, scalar, tokens_meter
from togai_engine.events import importer
from togai_engine.events.importer import FilePart, ImportFailed, _run_parallel, import_file, split_lines


def event(i: int, account: str = "acme") -> str:
    return json.dumps({"id": f"e{i}", "schemaName": "llm", "timestamp": f"2026-01-{1 + i % 28:02d}T00:00:00Z",
                       "accountId": account, "attributes": {"tokens": str(i)}})


def test_split_lines_cuts_at_line_starts_with_their_line_numbers(tmp_path: Path) -> None:
    lines = [f'{{"n": {i}, "pad": "{"x" * (i % 17)}"}}' for i in range(500)]
    source = tmp_path / "f.jsonl"
    source.write_text("\n".join(lines) + "\n")
    data = source.read_bytes()
    parts = split_lines(source, 4, min_part_bytes=100)
    assert len(parts) == 4
    assert parts[0].start == 0 and parts[-1].end == len(data)
    for before, after in pairwise(parts):
        assert before.end == after.start and data[after.start - 1:after.start] == b"\n"
    for part in parts:  # the first line of each part is the line its number says
        assert data[part.start:].split(b"\n", 1)[0].decode() == lines[part.first_line - 1]
    # too small to be worth a second process: one part
    assert split_lines(source, 4) == [FilePart(0, len(data), 1)]


async def stored(db) -> tuple[list[tuple[object, ...]], list[tuple[object, ...]]]:
    """The events (id, status, time) and the rollups merged over stripes, in key order."""
    async with db.unit_of_work() as session:
        events = (await session.execute(text(
            "SELECT id, status, event_time FROM events ORDER BY id"))).tuples().all()
        rollups = (await session.execute(text(
            "SELECT account_id, meter_id, hour, sum(event_count), sum(value_sum) FROM usage_rollups "
            "GROUP BY 1, 2, 3 ORDER BY 1, 2, 3"))).tuples().all()
    return list(events), list(rollups)


async def test_parallel_import_equals_one_process(client, db, tmp_path: Path, monkeypatch) -> None:
    await call(client, "create_customer", id="c", name="C", account={"id": "acme", "name": "Acme"})
    await tokens_meter(client)
    lines = [event(i) for i in range(120)]
    bad = {10: "{not json", 55: event(1000, account="nobody"), 90: "", 111: event(3)}  # 111: e3 again, another part
    for index, line in sorted(bad.items()):
        lines.insert(index, line)
    source = tmp_path / "history.jsonl"
    source.write_text("\n".join(lines) + "\n")
    # three parts from lines 1, 43 and 84: each holds one bad line, and e3 (line 4) and its repeat
    # (line 112) are read by different processes
    assert [p.first_line for p in split_lines(source, 3, min_part_bytes=500)] == [1, 43, 84]

    one_report = tmp_path / "one.jsonl"
    one = await import_file(db, source, one_report, show_progress=False, workers=1)
    one_stored = await stored(db)
    async with db.unit_of_work() as session:  # the same database, empty again
        await session.execute(text("TRUNCATE events, event_ids, usage_rollups, usage_totals"))

    ran_parts: list[int] = []
    run_parallel = importer._run_parallel

    def recorded(url, path, parts, *rest):
        ran_parts.append(len(parts))
        return run_parallel(url, path, parts, *rest)

    monkeypatch.setattr(importer, "_run_parallel", recorded)
    report = tmp_path / "rejected.jsonl"
    summary = await import_file(db, source, report, show_progress=False, workers=3, min_part_bytes=500)
    assert ran_parts == [3]
    assert asdict(summary) | {"batches": 0} == asdict(one) | {"batches": 0}  # each part has its own batches
    # acme has no price plan: its events are stored and metered as NOT_BILLED_NO_PLAN, not ACCEPTED
    assert (summary.read, summary.not_billed_no_plan, summary.duplicates, summary.rejected) == (124, 120, 1, 3)
    assert summary.accepted == 0
    assert report.read_text() == one_report.read_text()  # merged in line order: the same report
    rejected = [json.loads(r) for r in report.read_text().splitlines()]
    # file line numbers (1-based) of the bad lines: their list index + 1, whichever part read them
    assert [(r["line"], r["code"]) for r in rejected] == [
        (11, "INVALID_EVENT"), (56, "UNKNOWN_ACCOUNT"), (91, "INVALID_EVENT")]
    assert not list(tmp_path.glob("rejected.jsonl.part*"))  # parts merged and removed
    assert await stored(db) == one_stored
    # tokens 0 + 1 + ... + 119 = 119 * 120 / 2 = 7140, each event once
    assert await scalar(db, "SELECT sum(value_sum) FROM usage_rollups") == 7140
    assert await scalar(db, "SELECT count(*) FROM events") == 120

    again = await import_file(db, source, report, show_progress=False, workers=3, min_part_bytes=500)
    assert (again.not_billed_no_plan, again.duplicates, again.rejected) == (0, 121, 3)
    assert await scalar(db, "SELECT sum(value_sum) FROM usage_rollups") == 7140


def test_a_failing_worker_stops_the_import_naming_its_part(tmp_path: Path) -> None:
    source = tmp_path / "f.jsonl"
    source.write_text("\n".join(event(i) for i in range(50)) + "\n")
    parts = split_lines(source, 2, min_part_bytes=100)
    unreachable = "postgresql+asyncpg://postgres@127.0.0.1:1/none"  # nothing listens on port 1
    second = parts[1].first_line
    assert [p.first_line for p in parts] == [1, second] and 1 < second <= 50
    with pytest.raises(ImportFailed, match=rf"^part 1 \(from line 1\): .+; part 2 \(from line {second}\): .+What was "
                                           r"stored stays stored; run the import again"):
        _run_parallel(unreachable, source, parts, tmp_path / "r.jsonl", 1000, lambda _: None)
