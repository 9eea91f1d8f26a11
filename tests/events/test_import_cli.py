"""`togai-engine import events FILE` and `togai-engine verify`, run as a user runs them."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from decimal import Decimal
from pathlib import Path

from sqlalchemy import text

from helpers import call, scalar

BIN = Path(sys.executable).parent / "togai-engine"


def run(database_url: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TOGAI_")} | {"TOGAI_DATABASE_URL": database_url}
    return subprocess.run([str(BIN), *args], env=env, capture_output=True, text=True, timeout=300)


def rejected(database_url: str, source: Path, named: str) -> list[tuple[int, str, str]]:
    """Imports `source` with --allow-rejected (exit 0) and reads its report: (line, the record's `named` key,
    reason) of each rejected line."""
    out = run(database_url, "import", "events", str(source), "--no-progress", "--allow-rejected")
    assert out.returncode == 0, out.stderr
    report = source.with_name(source.name + ".rejected.jsonl")
    return [(r["line"], r[named], r["reason"]) for r in map(json.loads, report.read_text().splitlines())]


async def seed(client) -> None:
    await call(client, "create_customer", id="c", name="C", account={"id": "acme", "name": "Acme", "aliases": ["acme_alias"]})
    await call(client, "create_usage_meter", name="tokens", eventSchemaName="llm", aggregation="SUM",
               computations=[{"computation": "tokens"}])


async def test_jsonl_import_reports_rejections_and_is_safe_to_rerun(client, db, database_url, tmp_path):
    await seed(client)
    lines = [json.dumps({"id": f"e{i}", "schemaName": "llm", "timestamp": f"2026-01-0{1 + i % 9}T00:00:00Z",
                         "accountId": "acme" if i % 2 else "acme_alias", "attributes": {"tokens": str(i)}})
             for i in range(10)]
    lines.insert(3, "{not json")  # line 4
    lines.insert(6, json.dumps({"id": "x", "schemaName": "llm", "timestamp": "2026-01-01T00:00:00Z",
                                "accountId": "nobody", "attributes": {"tokens": "1"}}))  # line 7
    lines.append(lines[0])  # a duplicate inside the file
    source = tmp_path / "history.jsonl"
    source.write_text("\n".join(lines) + "\n")

    first = run(database_url, "import", "events", str(source), "--no-progress")
    assert first.returncode == 1, first.stderr  # lines were rejected (what was valid is stored)
    assert "togai-engine: 2 line(s) rejected; fix them and import the file again" in first.stderr
    # acme has no price plan: its 10 events are stored and metered, but reported as not billable
    assert ("read 13: accepted 0, duplicates 1, stored but not billed (cycle closed) 0, "
            "metered but not billed (no plan at their time) 10, late, billed on the next invoice 0, rejected 2") in first.stdout
    # in line order: a malformed line is reported with the batch it was read in
    report = [json.loads(line) for line in (tmp_path / "history.jsonl.rejected.jsonl").read_text().splitlines()]
    assert [(r["line"], r["code"]) for r in report] == [(4, "INVALID_EVENT"), (7, "UNKNOWN_ACCOUNT")]
    assert "not valid JSON" in report[0]["reason"]
    # tokens 0 + 1 + ... + 9 = 45, each event once
    assert await scalar(db, "SELECT sum(value_sum) FROM usage_rollups") == 45

    again = run(database_url, "import", "events", str(source), "--no-progress", "--allow-rejected")
    assert again.returncode == 0, again.stderr  # the rejected lines are accepted as rejected
    assert "read 13: accepted 0, duplicates 11" in again.stdout
    assert "rejected lines and reasons" in again.stderr and "--allow-rejected" not in again.stderr
    assert await scalar(db, "SELECT count(*) FROM events") == 10

    verified = run(database_url, "verify")
    assert verified.returncode == 0 and "rollups agree" in verified.stdout
    async with db.unit_of_work() as session:
        await session.execute(text("UPDATE usage_rollups SET value_sum = value_sum + 1 WHERE ctid IN "
                                   "(SELECT ctid FROM usage_rollups LIMIT 1)"))
    broken = run(database_url, "verify")
    assert broken.returncode == 1 and "1 rollup difference(s) found" in broken.stderr


async def test_csv_import_with_attribute_unit_and_dimension_columns(client, db, database_url, tmp_path):
    await seed(client)
    source = tmp_path / "history.csv"
    source.write_text("id,schemaName,timestamp,accountId,attr.tokens,unit.tokens,dim.model\n"
                      "c1,llm,2026-01-02T00:00:00Z,acme,100,tokens,small\n"
                      ",llm,2026-01-03T00:00:00Z,acme,250.5,,large\n"
                      "c3,llm,2026-01-03T00:00:00Z,acme,abc,,large\n"
                      "c4,llm,2026-01-03T00:00:00Z\n")
    result = run(database_url, "import", "events", str(source), "--no-progress")
    assert result.returncode == 1, result.stderr
    assert ("read 4: accepted 0, duplicates 0, stored but not billed (cycle closed) 0, "
            "metered but not billed (no plan at their time) 2, late, billed on the next invoice 0, rejected 2") in result.stdout
    report = sorted((json.loads(line) for line in (tmp_path / "history.csv.rejected.jsonl").read_text().splitlines()),
                    key=lambda r: r["line"])  # malformed lines are reported as read, invalid events per batch
    assert [r["line"] for r in report] == [4, 5]  # the header is line 1
    assert (report[0]["field"], report[0]["code"]) == ("attributes.tokens", "INVALID_VALUE")  # the attr.tokens cell
    # 100 + 250.5 = 350.5 tokens
    assert await scalar(db, "SELECT sum(value_sum) FROM usage_rollups") == Decimal("350.5")
    dims = await scalar(db, "SELECT dimensions->>'model' FROM events WHERE id = 'c1'")
    assert dims == "small"


async def test_bad_csv_header_imports_nothing(client, db, database_url, tmp_path):
    await seed(client)
    source = tmp_path / "bad.csv"
    source.write_text("id,schemaName,timestamp,account,attr.tokens\nx,llm,2026-01-01T00:00:00Z,acme,1\n")
    result = run(database_url, "import", "events", str(source), "--no-progress")
    assert result.returncode == 2
    assert "CSV column 'account' is not known" in result.stderr
    assert await scalar(db, "SELECT count(*) FROM events") == 0


async def test_jsonl_numbers_keep_every_digit(client, db, database_url, tmp_path):
    await seed(client)
    source = tmp_path / "precise.jsonl"
    source.write_text("\n".join(json.dumps({"id": f"p{i}", "schemaName": "llm", "timestamp": "2026-01-02T00:00:00Z",
                                            "accountId": "acme", "attributes": {"tokens": 0}}).replace(
        '"tokens": 0', f'"tokens": {value}') for i, value in enumerate(
        ("12345678.123456789", "0.1", "1.5e3"))) + "\n")
    out = run(database_url, "import", "events", str(source), "--no-progress")
    assert out.returncode == 0 and "(no plan at their time) 3" in out.stdout, out.stdout + out.stderr
    assert not (tmp_path / "precise.jsonl.rejected.jsonl").exists()  # nothing rejected: no report
    # 12345678.123456789 (17 significant digits: a double would keep 12345678.12345679) + 0.1 + 1500
    assert await scalar(db, "SELECT sum(value_sum) FROM usage_rollups") == Decimal(
        "12347178.223456789")


async def test_csv_and_json_lines_name_fields_alike_and_point_at_the_column(client, db, database_url, tmp_path):
    await seed(client)
    event = {"schemaName": "llm", "timestamp": "2026-01-02T00:00:00Z", "accountId": "acme"}
    jsonl = tmp_path / "same.jsonl"
    jsonl.write_text("\r\n".join([
        json.dumps({"id": "j1", **event, "attributes": {"tokens": "abc"}}),
        json.dumps({"id": "j2", **event, "attributes": {"tokens": "12", "cost": "x"}}),
        json.dumps({"id": "j3", **event, "attributes": {"tokens": "12"}, "dimensions": {"model": "m" * 201}}),
        '{"id": "j4", "schemaName": "llm", "timestamp": ',  # cut short: the error is past its end, column 48
        '{"id": "j5", "schemaName": "llm",, "timestamp": "2026-01-02T00:00:00Z"}',  # the second comma: column 34
    ]) + "\r\n")
    csv_file = tmp_path / "same.csv"
    csv_file.write_text("id,schemaName,timestamp,accountId,attr.tokens,attr.cost,unit.cost,dim.model\n"
                        "c1,llm,2026-01-02T00:00:00Z,acme,abc,,,\n"
                        "c2,llm,2026-01-02T00:00:00Z,acme,12,x,,\n"
                        f"c3,llm,2026-01-02T00:00:00Z,acme,12,,,{'m' * 201}\n"
                        f"c4,llm,2026-01-02T00:00:00Z,acme,12,1,{'u' * 51},\n")

    from_jsonl, from_csv = rejected(database_url, jsonl, "field"), rejected(database_url, csv_file, "field")
    # the same fields, named alike: an attribute by its name (not by its place among the row's cells)
    assert [(line, field) for line, field, _ in from_jsonl[:3]] == [
        (1, "attributes.tokens"), (2, "attributes.cost"), (3, "dimensions.model")]
    assert [(line, field) for line, field, _ in from_csv] == [
        (2, "attributes.tokens"), (3, "attributes.cost"), (4, "dimensions.model"), (5, "attributes.cost.unit")]
    assert [reason for _, _, reason in from_csv[:3]] == [reason for _, _, reason in from_jsonl[:3]]
    assert "'abc' is not a decimal number" in from_csv[0][2]
    assert from_csv[3][2] == "must be 1-50 characters (the unit); got 51"
    # JSON syntax errors name the column (1-based, in characters) of the line
    assert from_jsonl[3:] == [
        (4, "", "line 4 is not valid JSON (Expecting value at the end of the line, column 48: is the line cut "
                "short?)"),
        (5, "", "line 5 is not valid JSON (Expecting property name enclosed in double quotes at column 34)")]


async def test_a_clean_import_writes_no_report_and_removes_an_earlier_one(client, db, database_url, tmp_path):
    await seed(client)
    source = tmp_path / "clean.jsonl"
    source.write_text(json.dumps({"id": "k1", "schemaName": "llm", "timestamp": "2026-01-02T00:00:00Z",
                                  "accountId": "acme", "attributes": {"tokens": "5"}}) + "\n")
    report = tmp_path / "clean.jsonl.rejected.jsonl"
    report.write_text('{"line": 9, "reason": "from an earlier run"}\n')
    out = run(database_url, "import", "events", str(source), "--no-progress")
    assert out.returncode == 0, out.stderr
    assert "rejected 0" in out.stdout and "rejected lines" not in out.stderr
    assert not report.exists()  # it described another run of the file, not this one


async def test_a_line_that_is_not_utf8_is_rejected_not_stored_with_its_text_replaced(client, db, database_url, tmp_path):
    await seed(client)
    # Two events written in Latin-1: ids "café" and "cafè" are bytes 63 61 66 E9 and 63 61 66 E8, neither UTF-8.
    # Decoded with replacement both read "caf\ufffd": the first would be stored under an id nobody sent and the
    # second counted as its DUPLICATE (its 2 tokens lost), and a UTF-8 re-import would store both again.
    def line(event_id: bytes, tokens: str) -> bytes:
        return (b'{"id": "' + event_id + b'", "schemaName": "llm", "timestamp": "2026-01-02T00:00:00Z", '
                b'"accountId": "acme", "attributes": {"tokens": "' + tokens.encode() + b'"}}\n')

    jsonl = tmp_path / "latin1.jsonl"
    jsonl.write_bytes(line(b"caf\xe9", "1") + line(b"caf\xe8", "2") + line(b"plain", "4"))
    csv_file = tmp_path / "latin1.csv"
    csv_file.write_bytes(b"id,schemaName,timestamp,accountId,attr.tokens,dim.city\n"
                         b"c1,llm,2026-01-02T00:00:00Z,acme,8,M\xfcnchen\n"
                         b"c2,llm,2026-01-02T00:00:00Z,acme,16,Berlin\n")

    assert rejected(database_url, jsonl, "code") == [
        (1, "INVALID_EVENT", "line 1 is not valid UTF-8 (byte 0xE9 at column 12); save the file as UTF-8"),
        (2, "INVALID_EVENT", "line 2 is not valid UTF-8 (byte 0xE8 at column 12); save the file as UTF-8")]
    assert rejected(database_url, csv_file, "code") == [
        (2, "INVALID_EVENT", "line 2 is not valid UTF-8 (byte 0xFC in column dim.city); save the file as UTF-8")]
    # only the valid lines are stored: plain (4 tokens) and c2 (16 tokens) = 20
    assert await scalar(db, "SELECT string_agg(id, ',' ORDER BY id) FROM events") == "c2,plain"
    assert await scalar(db, "SELECT sum(value_sum) FROM usage_rollups") == 20


async def test_a_number_json_reads_but_a_decimal_cannot_rejects_its_line_not_the_import(client, db, database_url,
                                                                                        tmp_path):
    """An exponent past a Decimal's (±10**18) and an integer past Python's 4300 digits are JSON, but the exact reader
    raised on them (decimal.InvalidOperation, ValueError) and the import stopped with a traceback, the lines after
    them never read; each is now its line's rejection, and the other lines are imported."""
    await seed(client)
    event = {"schemaName": "llm", "timestamp": "2026-01-02T00:00:00Z", "accountId": "acme"}
    source = tmp_path / "numbers.jsonl"
    source.write_text("\n".join([
        json.dumps({"id": "n1", **event, "attributes": {"tokens": "5"}}),
        json.dumps({"id": "n2", **event, "attributes": {"tokens": "X"}}).replace('"X"', "1e-99999999999999999999"),
        json.dumps({"id": "n3", **event, "attributes": {"tokens": "X"}}).replace('"X"', "1" + "0" * 5000),
        json.dumps({"id": "n4", **event, "attributes": {"tokens": "7"}}),
    ]) + "\n")
    report = rejected(database_url, source, "code")
    assert [(line, code) for line, code, _ in report] == [(2, "INVALID_EVENT"), (3, "INVALID_EVENT")], report
    assert "line 2 has a number that cannot be read exactly" in report[0][2], report
    assert "line 3 has a number that cannot be read exactly" in report[1][2], report
    # n1 and n4 are stored: 5 + 7 tokens
    assert await scalar(db, "SELECT sum(value_sum) FROM usage_rollups") == Decimal("12")
