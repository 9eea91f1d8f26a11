"""The checks every tool's arguments pass before the tool runs, whatever the transport.

One walk over the arguments, guided by the tool's input schema, refuses with the path of the value:
- nesting deeper than MAX_DEPTH (no tool takes anything close; a deep value only costs time);
- text PostgreSQL cannot store: the NUL character, and lone UTF-16 surrogates (a JSON string may
  carry one as an escape, "\\ud800"; it is not Unicode and cannot be encoded as UTF-8);
- an integer of more than MAX_INTEGER_DIGITS digits;
- a boolean where the schema takes a number: pydantic reads `true` as 1, and an agent that sends
  `"amount": true` must not get a grant of 1.00.
- a JSON number a float does not hold (an InexactNumber, as the transports read one: 1e-400 would be 0.0,
  10.000000000000000001 would be 10.0): never an amount or a quantity silently changed.
The ingest tools check each event themselves instead (a batch rejects one event, not the call; see
`checks_own_text` in registry.py), which also keeps this walk off their hot path.
"""

from __future__ import annotations

from typing import Any

from togai_engine.common.json_text import InexactNumber, inexact_number_message
from togai_engine.common.messages import quote
from togai_engine.common.numbers import BOOLEAN_IS_NOT_A_NUMBER
from togai_engine.errors import InvalidInput

MAX_DEPTH = 64
# Far beyond any amount, quantity or id (amounts stop at 1e40); an integer of thousands of digits is
# not even printable by Python (4300 at most), let alone storable.
MAX_INTEGER_DIGITS = 1000
MAX_INTEGER_BITS = 3322  # 2**3321 < 10**1000 < 2**3322: an integer of more bits has more than 1000 digits
Schema = dict[str, Any]


def check_arguments(arguments: dict[str, Any], schema: Schema | None) -> None:
    """Raises InvalidInput naming the first value at fault. `schema` is the tool's input schema (JSON
    Schema with $defs, as pydantic writes it)."""
    _Walk(schema or {}).container(arguments, None, (schema,) if schema else (), 0)


Guide = tuple[Schema, ...]  # the schemas a value must match one of
At = tuple[Any, str | int] | None  # a value's place: (its parent's place, its key or index); None at the top


class _Walk:
    """One pass over the arguments. Places are kept as (parent, key) pairs and written out only for an
    error; what the schema says about a place is worked out once per place (1000 events share theirs)."""

    def __init__(self, root: Schema) -> None:
        self.root = root
        # by the id of the parent's guide: the top one, or one held here, so alive while the ids are used
        self.children: dict[tuple[int, str | None], Guide] = {}

    def container(self, value: dict[str, Any] | list[Any] | tuple[Any, ...], at: At, guide: Guide,
                  depth: int) -> None:
        if depth > MAX_DEPTH:
            raise InvalidInput(self.where(_first_step(at)), f"is nested more than {MAX_DEPTH} levels deep; no "
                                                            "argument needs that, send the shape the tool's input "
                                                            "schema describes")
        if isinstance(value, dict):
            for key, item in value.items():
                if type(key) is str and ("\x00" in key or not key.isascii()):
                    _check_text(key, self.where(at), key=True)
                self.item(item, (at, key), self.child(guide, str(key)) if guide else guide, depth + 1)
        else:
            items = self.child(guide, None) if guide else guide
            for i, item in enumerate(value):
                self.item(item, (at, i), items, depth + 1)

    def item(self, value: Any, at: At, guide: Guide, depth: int) -> None:
        kind = type(value)
        if kind is str:
            if "\x00" in value or not value.isascii():
                _check_text(value, self.where(at))
        elif kind is dict or kind is list or isinstance(value, (dict, list, tuple)):
            self.container(value, at, guide, depth)
        elif kind is bool:
            if guide and _number_not_boolean(guide, self.root):
                raise InvalidInput(self.where(at), BOOLEAN_IS_NOT_A_NUMBER)
        elif kind is InexactNumber:
            raise InvalidInput(self.where(at), inexact_number_message(value))
        elif kind is int and value.bit_length() > MAX_INTEGER_BITS:
            raise InvalidInput(self.where(at), f"is a number of more than {MAX_INTEGER_DIGITS} digits; no argument "
                                               "takes one that long")

    def child(self, guide: Guide, key: str | None) -> Guide:
        """The guide of a property `key` of an object, or (None) of an array's items."""
        memo = (id(guide), key)
        found = self.children.get(memo)
        if found is None:
            found = tuple(_property(guide, key, self.root) if key is not None else _items(guide, self.root))
            self.children[memo] = found
        return found

    def where(self, at: At) -> str:
        steps: list[str | int] = []
        while at is not None:
            at, step = at
            steps.append(step)
        return "".join(f"[{s}]" if isinstance(s, int) else f".{s}" for s in reversed(steps)).lstrip(".") or "input"


def _first_step(at: At) -> At:
    """The top-level argument a place is in: the path down to the 64th level says nothing more."""
    while at is not None and at[0] is not None:
        at = at[0]
    return at


def _check_text(value: str, where: str, *, key: bool = False) -> None:
    what = f"the key {quote(value, 40)}" if key else None
    if "\x00" in value:
        raise InvalidInput(where or "input", f"{what + ' ' if what else ''}contains a NUL character (\\u0000), which "
                                             "cannot be stored; remove it")
    if not value.isascii():
        try:
            value.encode("utf-8")
        except UnicodeEncodeError as exc:
            point = f"\\u{ord(value[exc.start]):04x}"
            raise InvalidInput(where or "input", f"{what + ' ' if what else ''}contains a lone UTF-16 surrogate "
                                                 f"({point}), which is not valid Unicode; send the text as valid "
                                                 "UTF-8 (a surrogate only ever comes in a pair)") from None


def _alternatives(schemas: Guide, root: Schema) -> list[Schema]:
    """The schemas a value must match one of: $ref followed, anyOf/oneOf/allOf flattened."""
    found: list[Schema] = []
    pending = list(schemas)
    while pending:
        schema = pending.pop()
        if not isinstance(schema, dict):
            continue
        if "$ref" in schema:
            target = _ref(schema["$ref"], root)
            if target is not None:
                pending.append(target)
            continue
        nested = [s for key in ("anyOf", "oneOf", "allOf") for s in schema.get(key, ())]
        if nested:
            pending.extend(nested)
        else:
            found.append(schema)
    return found


def _ref(ref: str, root: Schema) -> Schema | None:
    if not ref.startswith("#/"):
        return None
    node: Any = root
    for part in ref[2:].split("/"):
        node = node.get(part) if isinstance(node, dict) else None
    return node if isinstance(node, dict) else None


def _types(schema: Schema) -> set[str] | None:
    """The JSON types a schema admits; None when it does not constrain the type."""
    kind = schema.get("type")
    if kind is None:
        if "enum" in schema or "const" in schema:
            values = schema.get("enum", [schema.get("const")])
            return {"boolean" if isinstance(v, bool) else "other" for v in values}
        return None
    return set(kind) if isinstance(kind, list) else {kind}


def _number_not_boolean(schemas: Guide, root: Schema) -> bool:
    """True when the value's schema takes a number and no alternative of it takes a boolean."""
    takes_number = False
    for schema in _alternatives(schemas, root):
        kinds = _types(schema)
        if kinds is None or "boolean" in kinds:
            return False
        takes_number = takes_number or bool(kinds & {"number", "integer"})
    return takes_number


def _property(schemas: Guide, key: str, root: Schema) -> list[Schema]:
    found = []
    for schema in _alternatives(schemas, root):
        properties = schema.get("properties")
        if isinstance(properties, dict) and key in properties:
            found.append(properties[key])
        elif isinstance(schema.get("additionalProperties"), dict):
            found.append(schema["additionalProperties"])
    return found


def _items(schemas: Guide, root: Schema) -> list[Schema]:
    return [schema["items"] for schema in _alternatives(schemas, root) if isinstance(schema.get("items"), dict)]
