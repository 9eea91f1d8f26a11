"""`togai-engine demo` prints what the tools return: each step's JSON has its tool's shape (the keys of the
tool's output schema), whole or with fields left out, and then its heading says which it kept."""

from __future__ import annotations

import json
import re
from typing import Any

from mcp_server.demo import run_demo

TRIMMED = re.compile(r"^\(the result with only (?P<fields>.+?)(?P<items> of each item of data)?\)$")


def steps(output: str) -> list[tuple[str, str | None, Any]]:
    """(heading, the line saying what was kept or None, the printed JSON) of each step."""
    found = []
    for block in output.split("\n== ")[1:]:
        heading, _, rest = block.partition("\n")
        note = rest.splitlines()[0] if rest.startswith("(") else None
        text = rest.partition("\n")[2] if note else rest
        text = text.split("\n\nDone.")[0]
        try:
            found.append((heading, note, json.loads(text)))
        except json.JSONDecodeError as exc:
            raise AssertionError(f"step {heading!r} printed something that is not JSON: {exc}\n{text}") from None
    return found


def resolve(schema: dict[str, Any], root: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in schema:
        schema = root["$defs"][schema["$ref"].rsplit("/", 1)[1]]
    return schema


async def test_every_step_prints_its_tools_result_or_a_part_of_it_said_so(client, db, capsys) -> None:
    schemas = {tool.name: tool.output_schema for tool in (await client.list_tools()).tools}
    await run_demo(db)
    printed = steps(capsys.readouterr().out)
    assert len(printed) >= 15
    trimmed = []
    for heading, note, result in printed:
        tool = heading.split()[0]
        assert tool in schemas, f"step {heading!r} names no tool"
        schema = schemas[tool]
        properties = set(schema["properties"]) - {"sandbox"}  # only a sandbox server's answers carry it
        assert isinstance(result, dict), f"{tool}: printed {type(result).__name__}, the tool returns an object"
        if note is None:  # the whole result: every field of the tool's result, nothing else
            assert set(result) == properties, f"{tool}: printed {sorted(result)}, returns {sorted(properties)}"
            continue
        match = TRIMMED.match(note)
        assert match, f"{tool}: {note!r} does not say what was kept"
        kept = match["fields"].split(", ")
        trimmed.append(tool)
        if match["items"]:  # a page: data and nextToken as returned, each item with the kept fields
            assert set(result) == properties == {"data", "nextToken"}, tool
            item_properties = set(resolve(schema["properties"]["data"]["items"], schema)["properties"])
            assert set(kept) <= item_properties, f"{tool}: {kept} are not all fields of its items"
            assert result["data"] and all(set(item) == set(kept) for item in result["data"]), tool
        else:
            assert set(kept) <= properties, f"{tool}: {kept} are not all fields of its result"
            assert set(result) == set(kept), tool
    # the long results are trimmed, and said to be
    assert {"list_customers", "list_rate_cards", "list_invoices", "get_invoice", "simulate_price_plan"} <= set(trimmed)
