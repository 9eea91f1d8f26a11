"""Error text for an agent: JSON words rather than Python's, and never more of the input than a prefix.

pydantic's messages name Python types and classes ("a valid dictionary or instance of RateCards"),
and a value sent to a field typed as a union fails once per member, each error located under the
member's name (`amount.str`, `amount.int`, `amount.float`). `describe_errors` says the same in the
request's terms: one message per field, in JSON's vocabulary (object, array, string, number), with
the field's real path.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from datetime import datetime
from decimal import Decimal
from typing import Any

from pydantic import BaseModel, ValidationError
from pydantic_core import ErrorDetails

from togai_engine.common.validation import error_path, instant_text

QUOTE_LIMIT = 80
ELLIPSIS = "…"

# What a value sent to a field of each pydantic error type should have been, in JSON's words.
_EXPECTED = {
    "string_type": "a string", "string_unicode": "a string",
    "int_type": "an integer", "int_parsing": "an integer", "int_from_float": "an integer",
    "float_type": "a number", "float_parsing": "a number",
    "decimal_type": "a number", "decimal_parsing": "a number",
    "bool_type": "true or false", "bool_parsing": "true or false",
    "dict_type": "an object", "model_type": "an object", "model_attributes_type": "an object",
    "dataclass_type": "an object", "mapping_type": "an object",
    "list_type": "an array", "tuple_type": "an array", "set_type": "an array", "iterable_type": "an array",
    "datetime_type": "an ISO 8601 date-time string", "datetime_parsing": "an ISO 8601 date-time string",
    "datetime_from_date_parsing": "an ISO 8601 date-time string",
    "date_type": "an ISO 8601 date string", "date_parsing": "an ISO 8601 date string",
    "none_required": "null",
}
# pydantic names a union member in an error's location by its core schema: a builtin type, a
# constrained or wrapped form of one (`function-before[...]`, `dict[str,any]`), or a model's class.
_MEMBER_NAMES = frozenset({
    "str", "int", "float", "bool", "bytes", "decimal", "none", "list", "dict", "tuple", "set", "frozenset",
    "date", "datetime", "time", "timedelta", "any", "uuid", "url", "json", "constrained-str", "constrained-int",
    "constrained-float", "constrained-decimal", "nullable", "union", "tagged-union", "is-instance", "literal",
})
_UNSET = object()


def quote(value: object, limit: int = QUOTE_LIMIT) -> str:
    """A value the caller sent, for an error message: a string quoted and cut to `limit` characters with an
    ellipsis (never a megabyte echoed back), a number as digits, null/true/false as JSON writes them, an
    array or object by its kind."""
    if isinstance(value, str):
        return repr(value if len(value) <= limit else value[:limit] + ELLIPSIS)
    if value is None or isinstance(value, (bool, dict, list, tuple)):
        return "null" if value is None else json_kind(value)
    try:
        text = str(value)
    except ValueError:  # an integer past Python's 4300-digit conversion limit
        return "a number of thousands of digits"
    return text if len(text) <= limit else text[:limit] + ELLIPSIS


def brief(value: object, limit: int = QUOTE_LIMIT) -> str:
    """A stored or sent value, shown in a conflict beside the other: "none" for null, an instant in UTC, an
    array or object as compact JSON and anything else as `quote` shows it, each cut to `limit` characters."""
    if value is None:
        return "none"
    if isinstance(value, datetime):
        return instant_text(value)
    if isinstance(value, (list, tuple, dict)):
        text = json.dumps(value, default=str, ensure_ascii=False, separators=(",", ":"))
        return text if len(text) <= limit else text[:limit] + ELLIPSIS
    return quote(value, limit)


def encodable(text: str) -> str:
    """`text` with each lone UTF-16 surrogate written as its escape (\\ud800): an answer echoing one could
    not be encoded as UTF-8 at all (JSON output fails on it)."""
    if text.isascii():
        return text
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return text.encode("utf-8", "backslashreplace").decode("utf-8")
    return text


def json_kind(value: object) -> str:
    """What a decoded JSON value is, in JSON's words (for "got ..."): null, true, a number, a string, an
    array, an object."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float, Decimal)):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, (list, tuple)):
        return "an array"
    if isinstance(value, dict):
        return "an object"
    return "a value of another kind"


def _is_member_name(part: str, models: frozenset[str]) -> bool:
    return part in _MEMBER_NAMES or "[" in part or part in models


def _field_location(loc: Sequence[int | str], root: Any, models: frozenset[str]) -> list[int | str]:
    """The location without the union-member steps. With the input at hand, a step that indexes into it
    is a field or an item (even one named "str"); otherwise member names are recognised by their form."""
    parts: list[int | str] = []
    value = root
    for part in loc:
        if value is not _UNSET:
            if isinstance(part, int) and isinstance(value, list) and -len(value) <= part < len(value):
                parts.append(part)
                value = value[part]
                continue
            if isinstance(part, str) and isinstance(value, dict) and part in value:
                parts.append(part)
                value = value[part]
                continue
        if isinstance(part, str) and _is_member_name(part, models):
            continue
        parts.append(part)
        value = _UNSET
    return parts


def _message(err: ErrorDetails) -> str:
    kind = err["type"]
    if kind == "value_error":
        return err["msg"].removeprefix("Value error, ").rstrip(".")
    if kind == "assertion_error":
        return err["msg"].removeprefix("Assertion failed, ").rstrip(".")
    if kind in _EXPECTED:
        return f"should be {_EXPECTED[kind]}; got {json_kind(err.get('input'))}"
    return err["msg"].rstrip(".")


def _model_names() -> frozenset[str]:
    """Every pydantic model class's name (the SDK makes one per tool for its arguments)."""
    seen: set[str] = set()
    pending = list(BaseModel.__subclasses__())
    while pending:
        cls = pending.pop()
        if cls.__name__ not in seen:
            seen.add(cls.__name__)
            pending.extend(cls.__subclasses__())
    return frozenset(seen)


def describe_errors(exc: ValidationError, root: Any = _UNSET, limit: int = 5) -> list[tuple[str, str]]:
    """(field path, message) per field at fault, at most `limit`, in the order pydantic found them.

    `root` is the input that was validated, when the caller has it: it tells field names from union
    member names exactly."""
    models = _model_names()
    found: dict[str, list[ErrorDetails]] = {}
    for err in exc.errors(include_url=False):
        path = error_path(_field_location(err["loc"], root, models))
        found.setdefault(path, []).append(err)
    described = []
    for path, errors in list(found.items())[:limit]:
        expected = list(dict.fromkeys(_EXPECTED[e["type"]] for e in errors if e["type"] in _EXPECTED))
        if len(errors) > 1 and all(e["type"] in _EXPECTED for e in errors):
            if "a number" in expected and "an integer" in expected:
                expected.remove("an integer")
            # one value refused by every member of a union: say what it may be
            either = ", ".join(expected[:-1]) + f" or {expected[-1]}" if len(expected) > 1 else expected[0]
            described.append((path, f"should be {either}; got {json_kind(errors[0].get('input'))}"))
        else:
            described.append((path, "; ".join(dict.fromkeys(_message(e) for e in errors))))
    return described


def describe_validation_error(exc: ValidationError, root: Any = _UNSET) -> str:
    """"path: message; path: message" for every field at fault (at most five)."""
    return "; ".join(f"{path or 'input'}: {message}" for path, message in describe_errors(exc, root))


def join_path(prefix: str, path: str) -> str:
    """`prefix` and a path inside it: account + name = account.name, events + [0].id = events[0].id."""
    if not prefix or not path:
        return prefix or path
    return f"{prefix}{path}" if path.startswith("[") else f"{prefix}.{path}"


_LONG_RUN = re.compile(r"\S{120,}")
MAX_MESSAGE_CHARS = 1000


def shorten_echoes(message: str, sent: Any) -> str:
    """`message` with every long text the caller sent (in `sent`, the arguments) cut to a prefix
    wherever the message repeats it, any other run of 120 characters without a space (a huge number,
    a deep array's brackets) cut likewise, the whole kept under MAX_MESSAGE_CHARS, and encodable."""
    for text in sorted(_long_texts(sent), key=len, reverse=True):
        for echo, short in ((repr(text), quote(text)), (text, text[:QUOTE_LIMIT] + ELLIPSIS)):
            if echo in message:
                message = message.replace(echo, short)
    message = _LONG_RUN.sub(lambda m: m.group()[:QUOTE_LIMIT] + ELLIPSIS, message)
    if len(message) > MAX_MESSAGE_CHARS:
        message = message[:MAX_MESSAGE_CHARS - 300] + f" {ELLIPSIS} " + message[-297:]
    return encodable(message)


def _long_texts(value: Any, budget: int = 10_000) -> set[str]:
    """The strings (values and keys) longer than QUOTE_LIMIT in a JSON value; at most `budget` nodes read."""
    found: set[str] = set()
    pending = [value]
    while pending and budget > 0:
        budget -= 1
        item = pending.pop()
        if isinstance(item, str):
            if len(item) > QUOTE_LIMIT:
                found.add(item)
        elif isinstance(item, dict):
            pending.extend(item.keys())
            pending.extend(item.values())
        elif isinstance(item, (list, tuple)):
            pending.extend(item)
    return found
