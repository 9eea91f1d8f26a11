"""Reading a scenario file exactly: numbers keep their digits, dates stay text, and every value knows its line.

YAML would read `total: 71.00` as the float 71.0 and `at: 2026-01-10` as a date object. A scenario compares
money digit for digit and passes times to the tools as the user wrote them, so floats are read as Decimal
(their text as written) and the timestamp rule is off: `2026-01-10` is the string "2026-01-10".
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from decimal import Decimal, InvalidOperation
from typing import Any

import yaml


class ExactLoader(yaml.SafeLoader):
    """YAML's safe loader with floats as Decimal and no implicit timestamps."""


def _decimal(loader: yaml.SafeLoader, node: yaml.ScalarNode) -> Any:
    text = str(loader.construct_scalar(node))
    try:
        return Decimal(text.replace("_", ""))
    except InvalidOperation:  # .inf, .nan: left as text, refused where a number or amount goes
        return text


ExactLoader.add_constructor("tag:yaml.org,2002:float", _decimal)
ExactLoader.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag != "tag:yaml.org,2002:timestamp"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}


def load_exact(text: str, name: str) -> tuple[Any, yaml.Node | None]:
    """The document's data and its node tree (for line numbers). Raises yaml.YAMLError, naming `name`."""
    stream = io.StringIO(text)
    stream.name = name  # what YAML's error messages call the document
    loader = ExactLoader(stream)
    try:
        node = loader.get_single_node()
        data = loader.construct_document(node) if node is not None else None
    finally:
        loader.dispose()
    return data, node


def line_of(node: yaml.Node | None, path: Sequence[str | int]) -> int | None:
    """The 1-based line of the value at `path` (keys and list indexes), or of the deepest part of it that
    exists: an error about a missing key points at the mapping that lacks it."""
    if node is None:
        return None
    line = node.start_mark.line + 1
    for part in path:
        found = None
        if isinstance(node, yaml.MappingNode):
            for key, value in node.value:
                if isinstance(key, yaml.ScalarNode) and key.value == str(part):
                    found, line = value, key.start_mark.line + 1
                    break
        elif isinstance(node, yaml.SequenceNode) and isinstance(part, int) and 0 <= part < len(node.value):
            found = node.value[part]
            line = found.start_mark.line + 1
        if found is None:
            return line
        node = found
    return line


def jsonable(value: Any) -> Any:
    """`value` as a tool takes it in JSON: a Decimal read from the file becomes its decimal string (the tools
    take money and quantities as decimal strings, which keep every digit)."""
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, dict):
        return {str(key): jsonable(item) for key, item in value.items()}
    if isinstance(value, list):
        return [jsonable(item) for item in value]
    return value
