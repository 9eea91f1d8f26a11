"""JSON Logic as data: JSON text or an already-parsed value, checked and with every number exact.

Shared by the two JSON Logic compilers (meters/compiler.py to SQL, pricing/rules.py to Decimal evaluators):
non-integer numbers become `Decimal` (JSON text keeps every digit; a float only when its shortest form is
exact), NaN and Infinity are refused, nesting is bounded.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from decimal import Decimal
from typing import NoReturn, TypeAlias

from togai_engine.common.numbers import exact_float_decimal
from togai_engine.errors import InvalidInput

JsonValue: TypeAlias = bool | int | Decimal | str | list["JsonValue"] | dict[str, "JsonValue"] | None

MAX_DEPTH = 40
_BARE_NAME = re.compile(r"[^\W\d][\w.\-]*")


def normalize_expression(raw: object, *, field: str = "expression", allow_bare_name: bool = False,
                         example: str = '{"var": "attributes.tokens"}') -> JsonValue:
    """Parses JSON text (or checks an already-parsed value) into a JSON value.

    Non-integer numbers become exact `Decimal`s (floats via their shortest repr: 0.4 -> 0.4; a float
    whose shortest repr has more than 15 significant digits is refused: it may be a rounded number).
    None or a blank string means "absent" and gives None. With allow_bare_name, text that is not
    JSON but looks like a name ("tokens", "dimensions.user_id") is returned as that string.
    """
    if isinstance(raw, str):
        text = raw.strip()
        if not text:
            return None
        try:
            parsed = json.loads(text, parse_float=Decimal, parse_constant=_reject_constant)
        except json.JSONDecodeError as exc:
            if allow_bare_name and _BARE_NAME.fullmatch(text):
                return text
            raise InvalidInput(
                field,
                f"is not valid JSON Logic ({exc.msg} at character {exc.pos}); "
                f"pass a JSON Logic object such as {example}",
            ) from exc
        except (ValueError, RecursionError) as exc:
            raise InvalidInput(field, f"is not valid JSON Logic ({exc})") from exc
        return _normalize_value(parsed, field, 0)
    return _normalize_value(raw, field, 0)


def _reject_constant(name: str) -> NoReturn:
    raise ValueError(f"{name} is not a number")


def _normalize_value(value: object, field: str, depth: int) -> JsonValue:
    if depth > MAX_DEPTH:
        raise InvalidInput(field, f"is nested more than {MAX_DEPTH} levels deep; simplify it")
    if value is None or isinstance(value, (bool, int, str)):
        return value
    if isinstance(value, float):
        if value != value or value in (float("inf"), float("-inf")):
            raise InvalidInput(field, f"holds {value}, which is not a finite number")
        exact = exact_float_decimal(value)
        if exact is None:
            raise InvalidInput(field, f"holds the number {value!r}, which has more digits than a JSON number keeps "
                                      "exactly; pass the expression as JSON text (a string) to keep every digit")
        return exact
    if isinstance(value, Decimal):
        if not value.is_finite():
            raise InvalidInput(field, f"holds {value}, which is not a finite number")
        return value
    if isinstance(value, (list, tuple)):
        return [_normalize_value(item, field, depth + 1) for item in value]
    if isinstance(value, Mapping):
        normalized: dict[str, JsonValue] = {}
        for key, item in value.items():
            if not isinstance(key, str):
                raise InvalidInput(field, f"has the object key {key!r}; JSON object keys are strings")
            normalized[key] = _normalize_value(item, field, depth + 1)
        return normalized
    raise InvalidInput(field, f"holds a {type(value).__name__}, which is not a JSON value")


def json_logic_text(value: JsonValue) -> str:
    """JSON text of a normalized expression, Decimals written as exact numbers (json.dumps would need floats)."""
    if isinstance(value, Decimal):
        return format(value, "f")
    if isinstance(value, dict):
        return "{" + ",".join(f"{json.dumps(k)}:{json_logic_text(v)}" for k, v in value.items()) + "}"
    if isinstance(value, list):
        return "[" + ",".join(json_logic_text(v) for v in value) + "]"
    return json.dumps(value)
