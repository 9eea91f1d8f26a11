"""Reading event files for `togai-engine import events`: JSON Lines or CSV, streamed line by line.

JSON Lines (.jsonl, .ndjson, .json): one event per line in the ingest_event shape, e.g.
  {"id": "e1", "schemaName": "api_call", "timestamp": "2026-01-05T10:00:00Z", "accountId": "acme",
   "attributes": {"tokens": "1200"}, "dimensions": {"model": "small"}}

CSV (.csv), header row required:
  id, schemaName, timestamp, accountId   the event fields (id may be empty: derived from content)
  attr.<name>                            an attribute value, e.g. attr.tokens
  unit.<name>                            optional unit of that attribute, e.g. unit.tokens
  dim.<name>                             a dimension value, e.g. dim.model
An empty cell means "absent". Any other column, or a column given twice, is an error in the header
(nothing is imported).

A line (a CSV record) holding bytes that are not UTF-8 is rejected whole, naming the first such byte: its
text is never guessed at, so no id or value is stored other than as sent.

Rejected lines name their fields as the event's JSON does: `timestamp`, `dimensions.model`, and an
attribute by its name in both formats, `attributes.tokens` (a CSV cell of attr.tokens, a JSON Lines
event's {"tokens": ...}); the unit of a CSV attribute is `attributes.tokens.unit`. JSON Lines events
written with the list form [{name, value, unit}] keep its paths, e.g. `attributes[0].value`.
"""

from __future__ import annotations

import csv
import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

from togai_engine.common import json_text
from togai_engine.events.bulk import Malformed

EVENT_COLUMNS = ("id", "schemaName", "timestamp", "accountId")
JSON_SUFFIXES = (".jsonl", ".ndjson", ".json")


class FileFormatError(ValueError):
    """The file as a whole cannot be read (unknown suffix, bad CSV header)."""


def file_format(path: Path) -> str:
    suffix = path.suffix.lower()
    if suffix in JSON_SUFFIXES:
        return "jsonl"
    if suffix == ".csv":
        return "csv"
    raise FileFormatError(f"{path.name}: use a .jsonl (JSON Lines) or .csv file")


def _undecodable(text: str) -> tuple[int, int] | None:
    """(0-based index, byte) of the first byte of `text` that was not UTF-8, or None. The importer decodes
    with `surrogateescape`, so such a byte is a lone surrogate here (a JSON escape such as \\udce9 is six
    ASCII characters until parsed): a replacement character instead would change the text silently, and two
    ids differing in that byte would become one."""
    if text.isascii():
        return None
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:
        return exc.start, ord(text[exc.start]) - 0xDC00
    return None


def _not_utf8(number: int, where: str, byte: int) -> Malformed:
    return Malformed(f"line {number} is not valid UTF-8 (byte 0x{byte:02X} {where}); save the file as UTF-8")


def read_jsonl(stream: IO[str], first_line: int = 1) -> Iterator[object]:
    """Events of a JSON Lines stream; `first_line` is the file line number of the stream's first line."""
    for number, line in enumerate(stream, start=first_line):
        text = line.rstrip("\r\n")
        if not text.strip():
            yield Malformed(f"line {number} is empty")
            continue
        bad = _undecodable(text)
        if bad is not None:
            yield _not_utf8(number, f"at column {bad[0] + 1}", bad[1])
            continue
        try:
            yield json_text.loads_exact(text)  # 12345678.123456789 keeps its digits
        except json.JSONDecodeError as exc:
            yield Malformed(f"line {number} is not valid JSON ({json_error(exc, text)})")
        except (ValueError, ArithmeticError):
            # JSON, but a number past what the exact reader holds: an integer of more than 4300 digits (ValueError)
            # or an exponent past a Decimal's ±10**18 (decimal.InvalidOperation); no attribute takes either
            yield Malformed(f"line {number} has a number that cannot be read exactly (an integer of more than 4300 "
                            "digits, or an exponent beyond ±10**18); send values as decimal strings such as \"12.5\"")


def json_error(exc: json.JSONDecodeError, text: str) -> str:
    """What is wrong and where, as the 1-based column (character) of the line an editor shows; a line that
    ends too soon is said to (its newline is not part of the event, so it is no place to point at)."""
    column = exc.pos + 1
    if exc.pos >= len(text.rstrip()):
        return f"{exc.msg} at the end of the line, column {column}: is the line cut short?"
    # some messages end with "at" already ("Unterminated string starting at", "Invalid control character at")
    return f"{exc.msg} column {column}" if exc.msg.endswith(" at") else f"{exc.msg} at column {column}"


def csv_columns(header: list[str]) -> list[tuple[str, str]]:
    """(kind, name) per column: kind is 'event', 'attr', 'unit' or 'dim'."""
    columns = []
    seen: set[str] = set()
    for title in header:
        title = title.strip()
        if title in seen:
            raise FileFormatError(f"CSV column {title!r} appears twice; keep one")
        seen.add(title)
        if title in EVENT_COLUMNS:
            columns.append(("event", title))
        elif title.startswith(("attr.", "unit.", "dim.")) and len(title.split(".", 1)[1]) > 0:
            kind, name = title.split(".", 1)
            columns.append((kind, name))
        else:
            raise FileFormatError(
                f"CSV column {title!r} is not known; use {', '.join(EVENT_COLUMNS)}, attr.<name>, unit.<name>, dim.<name>")
    missing = {"schemaName", "timestamp", "accountId"} - {name for kind, name in columns if kind == "event"}
    if missing:
        raise FileFormatError(f"CSV header lacks {', '.join(sorted(missing))}")
    return columns


def read_csv(stream: IO[str]) -> Iterator[object]:
    reader = csv.reader(stream)
    header = next(reader, None)
    if header is None:
        return
    for title in header:
        bad = _undecodable(title)
        if bad is not None:
            raise FileFormatError(f"the CSV header is not valid UTF-8 (byte 0x{bad[1]:02X}); save the file as UTF-8")
    columns = csv_columns(header)
    titles = [name if kind == "event" else f"{kind}.{name}" for kind, name in columns]
    for number, row in enumerate(reader, start=2):
        if len(row) != len(columns):
            yield Malformed(f"line {number} has {len(row)} cells; the header has {len(columns)}")
            continue
        bad_cell = next(((title, bad) for title, cell in zip(titles, row, strict=True)
                         if (bad := _undecodable(cell)) is not None), None)
        if bad_cell is not None:
            yield _not_utf8(number, f"in column {bad_cell[0]}", bad_cell[1][1])
            continue
        event: dict[str, Any] = {}
        attributes: dict[str, dict[str, str]] = {}
        dimensions: dict[str, str] = {}
        for (kind, name), cell in zip(columns, row, strict=True):
            if cell == "":
                continue
            if kind == "event":
                event[name] = cell
            elif kind == "dim":
                dimensions[name] = cell
            else:
                attributes.setdefault(name, {"name": name})["value" if kind == "attr" else "unit"] = cell
        event["attributes"] = list(attributes.values())
        if dimensions:
            event["dimensions"] = dimensions
        yield event


_ATTRIBUTE_ITEM = re.compile(r"attributes\[(\d+)\](?:\.(name|value|unit))?")


def csv_field(event: object, field: str) -> str:
    """A rejected CSV line's field as its columns name it: a CSV event carries its attributes as a list
    (so that units can come along), whose index means nothing in the file; the attribute's name does."""
    match = _ATTRIBUTE_ITEM.fullmatch(field)
    if match is None or type(event) is not dict:
        return field
    attributes = event.get("attributes")
    index = int(match[1])
    if type(attributes) is not list or index >= len(attributes):
        return field
    name = attributes[index].get("name")
    return f"attributes.{name}.unit" if match[2] == "unit" else f"attributes.{name}"


def read_events(stream: IO[str], fmt: str, first_line: int = 1) -> Iterator[object]:
    """first_line: where a JSON Lines stream starts in its file (a part of it, in a parallel import)."""
    return read_jsonl(stream, first_line) if fmt == "jsonl" else read_csv(stream)
