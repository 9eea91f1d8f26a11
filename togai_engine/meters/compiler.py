"""Compiles usage-meter definitions (Togai JSON Logic) into PostgreSQL expressions.

Pure: no I/O. The SQL reads one event row through the table alias `e`, with columns
`e.attributes jsonb` ({name: "decimal string"}) and `e.dimensions jsonb` ({name: "text"}).

Literal policy: the generated SQL is self-contained (no bind parameters). Numbers are validated
through `Decimal` and written as `CAST('<canonical>' AS numeric)`; strings go through
`sql_text_literal`, which escapes quotes, backslashes, control characters and the characters that
drivers treat as placeholders (`:` `%` `?` `$`). The output never contains `::`, `%`, `?` or `$`,
so it can be embedded in asyncpg, SQLAlchemy `text()` or psycopg queries unchanged.

Semantics (JSON Logic, with Decimal arithmetic as Togai's BigDecimal evaluator):
- `attributes.x` / `attribute.x` is a number, `dimensions.x` / `dimension.x` is text; a missing
  one is null. Types are checked at compile time: arithmetic takes numbers (numeric string
  literals are coerced), a dimension is compared with strings only, an attribute with numbers.
- Null (missing attribute, division or modulo by zero) propagates through arithmetic, min and
  max; a computation that yields null gives the event no value.
- Truthiness as in JSON Logic: 0, "", null and false are falsy. Conditions never yield SQL NULL.
- `==`/`!=` treat null as a value (null == null); `<`, `>` with a null operand are false; `<=`,
  `>=` mean "< or ==", so two nulls are equal. Text orders by code point (COLLATE "C").
- `/` keeps at least DIVISION_SCALE decimal places (PostgreSQL rounds the last one half away
  from zero); `%` is the truncated remainder (sign of the dividend, as in JavaScript and Java).
"""

from __future__ import annotations

import itertools
import json
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Literal, NoReturn

from togai_engine.common.json_logic import MAX_DEPTH, JsonValue, normalize_expression
from togai_engine.errors import InvalidInput

AGGREGATIONS = ("COUNT", "SUM", "MAX", "UNIQUE_COUNT", "LATEST")
SUPPORTED_OPERATORS = (
    "var", "==", "!=", "===", "!==", "<", "<=", ">", ">=", "and", "or", "!", "!!", "if", "in",
    "+", "-", "*", "/", "%", "min", "max", "cat",
)  # fmt: skip
ATTRIBUTE_PREFIXES = ("attributes", "attribute")
DIMENSION_PREFIXES = ("dimensions", "dimension")
DIVISION_SCALE = 20
MAX_SQL_CHARS = 100_000
MAX_NUMBER_CHARS = 1_000

# Characters written as \u escapes (four hex digits) inside E'' literals: quoting and escaping characters, and
# the placeholder markers of common drivers, so a literal can never end early or bind a parameter.
_ESCAPED_CHARACTERS = frozenset("'\\:%?$")
_DECIMAL_TEXT = re.compile(r"[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?")
_CANONICAL_NUMBER = re.compile(r"-?\d+(\.\d+)?")
_ZERO_WITH_SCALE = "0." + "0" * DIVISION_SCALE
# What ingest stores as an attribute value (events/validation.py parse_decimal): a plain decimal string of at most
# 40 digits before the point and 30 after; the guard checks the form (a SIMILAR TO pattern: whole string, "." is a
# plain point) and at most STORED_DECIMAL_CHARS characters (bounded repetitions make the match several times slower)
STORED_DECIMAL_CHARS = 72
_STORED_DECIMAL_FORM = "-{0,1}[0-9]+(.[0-9]+){0,1}"
STORED_DECIMAL = re.compile(r"-?[0-9]+(\.[0-9]+)?")  # the same form, for Python (fullmatch, and the length)
# a guard around an attribute read `(e.attributes ->> '<name>')` (a literal never holds a quote: sql_text_literal)
_GUARD = re.compile(r"\(CASE WHEN length\((\(e\.attributes ->> E?'[^']*'\))\) <= [0-9]+ AND \1 SIMILAR TO '[^']*' "
                    r"THEN CAST\(\1 AS numeric\) END\)")

Kind = Literal["number", "text", "bool", "null"]


@dataclass(frozen=True)
class CompiledMeter:
    """A meter as SQL over one event row `e`.

    value_sql: numeric per event, NULL when no computation matches (the event is not metered).
      COUNT: 1 for matching events; UNIQUE_COUNT: 1 for matching events that have a key.
      It reads attributes through stored_decimal_sql: for stored rows, one of which may hold anything.
    input_value_sql: value_sql over attribute values ingest has just validated (events/validation.py
      parse_decimal: always the stored form), read with a plain CAST(.. AS numeric): the same values
      without the guard's cost, for ingest's own statements only.
    distinct_sql / input_distinct_sql: UNIQUE_COUNT only: the text key counted distinct (NULL = not counted).
    """

    aggregation: str
    value_sql: str
    input_value_sql: str
    distinct_sql: str | None = None
    input_distinct_sql: str | None = None

    def aggregate_sql(self, latest_order_by: str | None = None) -> str:
        """The aggregate over the meter's events; LATEST needs the caller's newest-first ordering,
        e.g. "e.timestamp DESC, e.id DESC"."""
        value = self.value_sql
        if self.aggregation == "COUNT":
            return f"COUNT({value})"
        if self.aggregation == "SUM":
            return f"COALESCE(SUM({value}), 0)"
        if self.aggregation == "MAX":
            return f"MAX({value})"
        if self.aggregation == "UNIQUE_COUNT":
            return f"COUNT(DISTINCT {self.distinct_sql})"
        if not latest_order_by:
            raise ValueError("LATEST needs latest_order_by, e.g. 'e.timestamp DESC, e.id DESC'")
        return f"(array_agg({value} ORDER BY {latest_order_by}) FILTER (WHERE {value} IS NOT NULL))[1]"


# ---------------------------------------------------------------- literals


def sql_numeric_literal(value: Decimal | int) -> str:
    """`CAST('<canonical decimal>' AS numeric)`; raises ValueError for non-finite or huge values."""
    if isinstance(value, bool) or not isinstance(value, (Decimal, int)):
        raise ValueError(f"not a number: {value!r}")
    number = Decimal(value)
    if not number.is_finite():
        raise ValueError(f"{number} is not a finite number")
    text = format(number, "f")
    if len(text) > MAX_NUMBER_CHARS or not _CANONICAL_NUMBER.fullmatch(text):
        raise ValueError(f"{number} is out of range")
    return f"CAST('{text}' AS numeric)"


def stored_decimal_sql(text_sql: str) -> str:
    """The numeric value of `text_sql` (an attribute as stored), NULL unless it is a decimal as ingest stores it.

    A value edited by hand into anything else ("abc", "NaN", " 12", 100 digits) reads as a missing attribute does,
    instead of failing the statement: one statement reads many accounts' events (the raw edges of a period,
    UNIQUE_COUNT, bill runs, verify, backfill), and one bad row must not fail the others. Valid values cast
    exactly as before (numeric, never float)."""
    return (f"(CASE WHEN length({text_sql}) <= {STORED_DECIMAL_CHARS} AND {text_sql} SIMILAR TO "
            f"'{_STORED_DECIMAL_FORM}' THEN CAST({text_sql} AS numeric) END)")


def is_stored_decimal(value: str) -> bool:
    """What stored_decimal_sql reads as a number (Python side)."""
    return len(value) <= STORED_DECIMAL_CHARS and STORED_DECIMAL.fullmatch(value) is not None


def sql_text_literal(value: str) -> str:
    """A PostgreSQL string literal for `value`, safe whatever standard_conforming_strings says.

    Plain '...' when nothing needs escaping, else E'...' with \\u escapes of four hex digits (all escaped
    characters are ASCII, so this works in any server encoding). Raises ValueError for NUL and
    lone surrogates, which PostgreSQL text cannot hold.
    """
    if "\x00" in value:
        raise ValueError("text cannot contain the NUL character")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise ValueError("text is not valid Unicode (lone surrogate)") from exc
    parts: list[str] = []
    escaped = False
    for char in value:
        if char in _ESCAPED_CHARACTERS or ord(char) < 0x20 or ord(char) == 0x7F:
            parts.append(f"\\u{ord(char):04X}")
            escaped = True
        else:
            parts.append(char)
    body = "".join(parts)
    return f"E'{body}'" if escaped else f"'{body}'"


# ---------------------------------------------------------------- expression compiler


@dataclass(frozen=True)
class _Sql:
    """A compiled sub-expression: SQL text, its JSON Logic type, and whether it can be NULL."""

    sql: str
    kind: Kind
    nullable: bool
    what: str  # how error messages name it
    literal: Decimal | str | None = None  # the value, for number and string literals


_NULL = _Sql("NULL", "null", True, "null")


def _truthy(expr: _Sql) -> str:
    """A never-NULL SQL boolean: JSON Logic truthiness (0, "", null, false are falsy)."""
    if expr.kind == "null":
        return "FALSE"
    if expr.kind == "bool":
        condition = expr.sql
    elif expr.kind == "number":
        condition = f"({expr.sql} <> 0)"
    else:
        condition = f"({expr.sql} <> '')"
    return f"COALESCE({condition}, FALSE)" if expr.nullable else condition


def _path_of(path: str, operator: str, index: int) -> str:
    step = f"{operator}[{index}]"
    return f"{path}.{step}" if path else step


def _at(path: str) -> str:
    return f"at {path}" if path else "at the top level"


def _describe_literal(value: JsonValue) -> str:
    if isinstance(value, str):
        return f"the string {json.dumps(value, ensure_ascii=False)}"
    return f"the number {value}"


class _ExpressionCompiler:
    def __init__(self, field: str, stored: bool = True) -> None:
        """stored: attributes are read through stored_decimal_sql (False: a plain cast, for validated input)."""
        self.field = field
        self.stored = stored
        self.operators: dict[str, Callable[[str, list[JsonValue], str, int], _Sql]] = {
            "var": self._var,
            "==": self._equality, "!=": self._equality, "===": self._equality, "!==": self._equality,
            "<": self._ordering, "<=": self._ordering, ">": self._ordering, ">=": self._ordering,
            "and": self._and_or, "or": self._and_or,
            "!": self._not, "!!": self._not,
            "if": self._if,
            "in": self._in,
            "+": self._arithmetic, "-": self._arithmetic, "*": self._arithmetic,
            "/": self._arithmetic, "%": self._arithmetic,
            "min": self._min_max, "max": self._min_max,
            "cat": self._cat,
        }  # fmt: skip

    def fail(self, message: str) -> NoReturn:
        raise InvalidInput(self.field, message)

    def compile(self, node: JsonValue, path: str = "", depth: int = 0) -> _Sql:
        if depth > MAX_DEPTH:
            self.fail(f"the expression is nested more than {MAX_DEPTH} levels deep {_at(path)}")
        if node is None:
            return _NULL
        if isinstance(node, bool):
            return _Sql("TRUE" if node else "FALSE", "bool", False, json.dumps(node))
        if isinstance(node, (int, Decimal)):
            return self._number_literal(Decimal(node), path)
        if isinstance(node, str):
            return self._text_literal(node, path)
        if isinstance(node, list):
            self.fail(f'a list {_at(path)} can only be the second operand of "in"')
        if len(node) != 1:
            keys = ", ".join(json.dumps(key) for key in node) or "none"
            self.fail(f"an operation object {_at(path)} must have exactly one key (the operator); it has {keys}")
        ((operator, raw_args),) = node.items()
        handler = self.operators.get(operator)
        if handler is None:
            self.fail(
                f"operator {json.dumps(operator)} {_at(path)} is not supported; "
                f"use one of: {', '.join(SUPPORTED_OPERATORS)}"
            )
        args = raw_args if isinstance(raw_args, list) else [raw_args]
        return handler(operator, args, path, depth)

    # -- helpers

    def _number_literal(self, value: Decimal, path: str) -> _Sql:
        try:
            sql = sql_numeric_literal(value)
        except ValueError as exc:
            self.fail(f"the number {_at(path)}: {exc}")
        return _Sql(sql, "number", False, f"the number {value}", value)

    def _text_literal(self, value: str, path: str) -> _Sql:
        try:
            sql = sql_text_literal(value)
        except ValueError as exc:
            self.fail(f"the string {_at(path)}: {exc}")
        return _Sql(sql, "text", False, _describe_literal(value), value)

    def _operands(self, operator: str, args: list[JsonValue], path: str, depth: int) -> list[_Sql]:
        return [self.compile(arg, _path_of(path, operator, i), depth + 1) for i, arg in enumerate(args)]

    def _arity(self, operator: str, args: list[JsonValue], path: str, low: int, high: int | None) -> None:
        if len(args) < low or (high is not None and len(args) > high):
            if high is None:
                wanted = f"at least {low}"
            elif low == high:
                wanted = str(low)
            else:
                wanted = f"{low} to {high}"
            self.fail(
                f"{json.dumps(operator)} {_at(path)} takes {wanted} operand"
                f"{'' if wanted == '1' else 's'}, got {len(args)}"
            )

    def _as_number(self, operator: str, expr: _Sql, index: int, path: str) -> _Sql:
        """Numbers pass; a numeric string literal is coerced as JSON Logic does; else an error."""
        if expr.kind == "number":
            return expr
        if expr.kind == "text" and isinstance(expr.literal, str) and _DECIMAL_TEXT.fullmatch(expr.literal.strip()):
            return self._number_literal(Decimal(expr.literal.strip()), path)
        self.fail(
            f"{json.dumps(operator)} {_at(path)}: operand {index + 1} is {expr.what}, "
            "but it needs a number (an attribute, a number, or an expression giving one)"
        )

    def _as_text(self, operator: str, expr: _Sql, index: int, path: str) -> _Sql:
        if expr.kind != "text":
            self.fail(
                f"{json.dumps(operator)} {_at(path)}: operand {index + 1} is {expr.what}, "
                "but it needs text (a dimension, a string, or cat)"
            )
        return expr

    # -- variables

    def _var(self, operator: str, args: list[JsonValue], path: str, depth: int) -> _Sql:
        self._arity(operator, args, path, 1, 2)
        name = args[0]
        if not isinstance(name, str):
            self.fail(
                f'"var" {_at(path)} needs a variable name string such as "attributes.tokens", '
                f"got {json.dumps(name, default=str)}"
            )
        variable = self.variable(name, path)
        if len(args) == 1 or args[1] is None:
            return variable
        default = self.compile(args[1], _path_of(path, operator, 1), depth + 1)
        if default.literal is None:
            self.fail(
                f'"var" {_at(path)}: the default of {json.dumps(name)} must be a literal '
                f"{'number' if variable.kind == 'number' else 'string'}"
            )
        if variable.kind == "number":
            default = self._as_number(operator, default, 1, path)
        elif default.kind != "text":
            self.fail(
                f'"var" {_at(path)}: dimension {json.dumps(name)} is text, so its default must '
                f'be a string; write "{default.literal}"'
            )
        return _Sql(f"COALESCE({variable.sql}, {default.sql})", variable.kind, False, variable.what)

    def variable(self, name: str, path: str, bare_prefix: str | None = None) -> _Sql:
        """`attributes.x` -> numeric, `dimensions.x` -> text. A bare name takes bare_prefix."""
        prefix, dot, rest = name.partition(".")
        if not dot and bare_prefix:
            prefix, rest = bare_prefix, name
        if prefix in ATTRIBUTE_PREFIXES and rest:
            key = self._text_literal(rest, path).sql
            text_sql = f"(e.attributes ->> {key})"
            return _Sql(
                stored_decimal_sql(text_sql) if self.stored else f"CAST({text_sql} AS numeric)",
                "number",
                True,
                f"attribute {json.dumps(rest, ensure_ascii=False)}",
            )
        if prefix in DIMENSION_PREFIXES and rest:
            key = self._text_literal(rest, path).sql
            return _Sql(f"(e.dimensions ->> {key})", "text", True, f"dimension {json.dumps(rest, ensure_ascii=False)}")
        self.fail(
            f"unknown variable {json.dumps(name, ensure_ascii=False)} {_at(path)}; use "
            "attributes.<name> (a number) or dimensions.<name> (text)"
        )

    # -- comparisons

    def _comparable(self, operator: str, operands: list[_Sql], path: str) -> list[_Sql]:
        """Brings operands to one type (number or text), or explains why they cannot be compared."""
        strict = operator in ("===", "!==")
        equality = operator in ("==", "!=", "===", "!==")
        for index, expr in enumerate(operands):
            if expr.kind == "bool":
                self.fail(
                    f"{json.dumps(operator)} {_at(path)}: operand {index + 1} is a condition "
                    "(true/false); compare numbers or strings, or use the condition directly"
                )
            if expr.kind == "null" and not equality:
                self.fail(
                    f"{json.dumps(operator)} {_at(path)} cannot order null; "
                    'test for a missing value with {"==": [{"var": ...}, null]}'
                )
        kinds = {expr.kind for expr in operands} - {"null"}
        if kinds != {"number", "text"}:
            return operands
        if not strict:
            coercible = all(e.kind != "text" or isinstance(e.literal, str) for e in operands)
            if coercible:
                return [
                    self._as_number(operator, e, i, path) if e.kind == "text" else e for i, e in enumerate(operands)
                ]
        number = next(e for e in operands if e.kind == "number")
        text = next(e for e in operands if e.kind == "text")
        if text.literal is not None:
            hint = f" (write {text.literal} without quotes)"
        elif number.literal is not None:
            hint = f' (write "{number.literal}" in quotes to compare text)'
        else:
            hint = ""
        self.fail(
            f"{json.dumps(operator)} {_at(path)} compares {number.what} (a number) with "
            f"{text.what} (text); compare attributes with numbers and dimensions with strings" + hint
        )

    def _equality(self, operator: str, args: list[JsonValue], path: str, depth: int) -> _Sql:
        self._arity(operator, args, path, 2, 2)
        left, right = self._comparable(operator, self._operands(operator, args, path, depth), path)
        if left.kind == "null" and right.kind == "null":
            sql = "TRUE" if operator in ("==", "===") else "FALSE"
            return _Sql(sql, "bool", False, f"the result of {json.dumps(operator)}")
        # Null-safe: a missing value equals null and differs from every number and string.
        test = "IS NOT DISTINCT FROM" if operator in ("==", "===") else "IS DISTINCT FROM"
        return _Sql(f"({left.sql} {test} {right.sql})", "bool", False, f"the result of {json.dumps(operator)}")

    def _ordering(self, operator: str, args: list[JsonValue], path: str, depth: int) -> _Sql:
        between = operator in ("<", "<=")
        self._arity(operator, args, path, 2, 3 if between else 2)
        operands = self._comparable(operator, self._operands(operator, args, path, depth), path)
        if operator in (">", ">="):
            operands = operands[::-1]
        inclusive = operator in ("<=", ">=")
        pairs = [self._order_pair(a, b, inclusive) for a, b in itertools.pairwise(operands)]
        return _Sql(
            pairs[0] if len(pairs) == 1 else f"({' AND '.join(pairs)})",
            "bool",
            False,
            f"the result of {json.dumps(operator)}",
        )

    @staticmethod
    def _order_pair(low: _Sql, high: _Sql, inclusive: bool) -> str:
        collate = ' COLLATE "C"' if "text" in (low.kind, high.kind) else ""
        sql = f"({low.sql}{collate} {'<=' if inclusive else '<'} {high.sql})"
        if not (low.nullable or high.nullable):
            return sql
        if inclusive and low.nullable and high.nullable:
            # "<=" is "< or ==", and == treats two missing values as equal.
            return f"(COALESCE({sql}, FALSE) OR ({low.sql} IS NULL AND {high.sql} IS NULL))"
        return f"COALESCE({sql}, FALSE)"

    def _in(self, operator: str, args: list[JsonValue], path: str, depth: int) -> _Sql:
        self._arity(operator, args, path, 2, 2)
        needle = self.compile(args[0], _path_of(path, operator, 0), depth + 1)
        if needle.kind not in ("number", "text"):
            self.fail(f'"in" {_at(path)}: the first operand is {needle.what}; look for a number or a string')
        haystack = args[1]
        if isinstance(haystack, list):
            return self._in_list(needle, haystack, _path_of(path, operator, 1))
        container = self.compile(haystack, _path_of(path, operator, 1), depth + 1)
        if container.kind != "text" or needle.kind != "text":
            self.fail(
                f'"in" {_at(path)} looks for {needle.what} in {container.what}; the second '
                "operand must be a list of literals, or text when looking for a substring"
            )
        sql = f"(strpos({container.sql}, {needle.sql}) > 0)"
        nullable = container.nullable or needle.nullable
        return _Sql(f"COALESCE({sql}, FALSE)" if nullable else sql, "bool", False, 'the result of "in"')

    def _in_list(self, needle: _Sql, items: list[JsonValue], path: str) -> _Sql:
        literals: list[str] = []
        for index, item in enumerate(items):
            item_path = f"{path}[{index}]"
            if isinstance(item, bool) or not isinstance(item, (int, Decimal, str)):
                self.fail(
                    f'"in" list item {item_path} must be a number or a string literal, '
                    f"got {json.dumps(item, default=str)}"
                )
            if isinstance(item, str) != (needle.kind == "text"):
                wanted = "strings" if needle.kind == "text" else "numbers"
                self.fail(
                    f'"in" list item {item_path} is {_describe_literal(item)} but the value '
                    f"looked for is {needle.what}; list {wanted}"
                )
            literal = (
                self._text_literal(item, item_path)
                if isinstance(item, str)
                else self._number_literal(Decimal(item), item_path)
            )
            literals.append(literal.sql)
        if not literals:
            return _Sql("FALSE", "bool", False, 'the result of "in"')
        sql = f"({needle.sql} IN ({', '.join(literals)}))"
        return _Sql(f"COALESCE({sql}, FALSE)" if needle.nullable else sql, "bool", False, 'the result of "in"')

    # -- logic

    def _not(self, operator: str, args: list[JsonValue], path: str, depth: int) -> _Sql:
        self._arity(operator, args, path, 1, 1)
        (operand,) = self._operands(operator, args, path, depth)
        truth = _truthy(operand)
        return _Sql(
            truth if operator == "!!" else f"(NOT {truth})",
            "bool",
            False,
            f"the result of {json.dumps(operator)}",
        )

    def _and_or(self, operator: str, args: list[JsonValue], path: str, depth: int) -> _Sql:
        self._arity(operator, args, path, 1, None)
        operands = self._operands(operator, args, path, depth)
        if len(operands) == 1:
            return operands[0]
        kinds = {expr.kind for expr in operands} - {"null"}
        what = f"the result of {json.dumps(operator)}"
        if len(kinds) == 1 and kinds != {"bool"}:
            # Used as a value, JSON Logic returns the deciding operand itself.
            (kind,) = kinds
            pick = "NOT " if operator == "and" else ""
            whens = " ".join(f"WHEN {pick}{_truthy(e)} THEN {e.sql}" for e in operands[:-1])
            return _Sql(f"(CASE {whens} ELSE {operands[-1].sql} END)", kind, any(e.nullable for e in operands), what)
        joiner = " AND " if operator == "and" else " OR "
        return _Sql(f"({joiner.join(_truthy(e) for e in operands)})", "bool", False, what)

    def _if(self, operator: str, args: list[JsonValue], path: str, depth: int) -> _Sql:
        self._arity(operator, args, path, 1, None)
        compiled = self._operands(operator, args, path, depth)
        if len(compiled) == 1:
            return compiled[0]
        conditions = compiled[0:-1:2]
        branches = compiled[1::2]
        branches.append(compiled[-1] if len(compiled) % 2 else _NULL)
        kinds = {expr.kind for expr in branches} - {"null"}
        what = 'the result of "if"'
        if len(kinds) > 1:
            # Mixed branch types: only the truthiness of the result is representable.
            values = [_truthy(b) for b in branches]
            kind: Kind = "bool"
            nullable = False
        else:
            values = [b.sql for b in branches]
            kind = kinds.pop() if kinds else "null"
            nullable = any(b.nullable for b in branches)
        whens = " ".join(f"WHEN {_truthy(c)} THEN {v}" for c, v in zip(conditions, values, strict=False))
        return _Sql(f"(CASE {whens} ELSE {values[-1]} END)", kind, nullable, what)

    # -- arithmetic and text

    def _arithmetic(self, operator: str, args: list[JsonValue], path: str, depth: int) -> _Sql:
        low, high = {"+": (1, None), "*": (1, None), "-": (1, 2), "/": (2, 2), "%": (2, 2)}[operator]
        self._arity(operator, args, path, low, high)
        operands = [
            self._as_number(operator, e, i, path) for i, e in enumerate(self._operands(operator, args, path, depth))
        ]
        nullable = any(e.nullable for e in operands)
        what = f"the result of {json.dumps(operator)}"
        if operator in ("+", "*"):
            sql = operands[0].sql if len(operands) == 1 else "(" + f" {operator} ".join(e.sql for e in operands) + ")"
            return _Sql(sql, "number", nullable, what)
        if operator == "-":
            first = operands[0].sql
            sql = f"(- {first})" if len(operands) == 1 else f"({first} - {operands[1].sql})"
            return _Sql(sql, "number", nullable, what)
        dividend, divisor = operands
        if divisor.literal is not None and divisor.literal == 0:
            self.fail(f"{json.dumps(operator)} {_at(path)} divides by the literal 0")
        if divisor.literal is None:
            # Division by zero gives no value rather than a database error.
            divisor_sql, nullable = f"NULLIF({divisor.sql}, 0)", True
        else:
            divisor_sql = divisor.sql
        if operator == "%":
            return _Sql(f"mod({dividend.sql}, {divisor_sql})", "number", nullable, what)
        # Adding a zero of scale DIVISION_SCALE makes PostgreSQL keep at least that many decimals.
        return _Sql(f"(({dividend.sql} + {_ZERO_WITH_SCALE}) / {divisor_sql})", "number", nullable, what)

    def _min_max(self, operator: str, args: list[JsonValue], path: str, depth: int) -> _Sql:
        self._arity(operator, args, path, 1, None)
        operands = [
            self._as_number(operator, e, i, path) for i, e in enumerate(self._operands(operator, args, path, depth))
        ]
        what = f"the result of {json.dumps(operator)}"
        if len(operands) == 1:
            return operands[0]
        sql = f"{'LEAST' if operator == 'min' else 'GREATEST'}({', '.join(e.sql for e in operands)})"
        nullable = [e for e in operands if e.nullable]
        if nullable:
            # LEAST/GREATEST skip NULLs; JSON Logic has no value when an operand has none.
            missing = " OR ".join(f"{e.sql} IS NULL" for e in nullable)
            sql = f"(CASE WHEN {missing} THEN NULL ELSE {sql} END)"
        return _Sql(sql, "number", bool(nullable), what)

    def _cat(self, operator: str, args: list[JsonValue], path: str, depth: int) -> _Sql:
        self._arity(operator, args, path, 1, None)
        parts = [self._as_text(operator, e, i, path) for i, e in enumerate(self._operands(operator, args, path, depth))]
        # A missing dimension joins as "" (as JavaScript's join does with null).
        pieces = [f"COALESCE({e.sql}, '')" if e.nullable else e.sql for e in parts]
        sql = pieces[0] if len(pieces) == 1 else "(" + " || ".join(pieces) + ")"
        return _Sql(sql, "text", False, 'the result of "cat"')


# ---------------------------------------------------------------- meters


def _checked(sql: str, field: str) -> str:
    # counted as `CAST(<attribute> AS numeric)`, as before the guard existed: every meter that compiled then still
    # compiles (catalog.compile_stored recompiles stored meters)
    length = len(_GUARD.sub(r"CAST(\1 AS numeric)", sql))
    if length > MAX_SQL_CHARS:
        raise InvalidInput(
            field,
            f"compiles to {length} characters of SQL (limit {MAX_SQL_CHARS}); simplify the expression",
        )
    return sql


def compile_matcher(raw: object, field: str = "matcher", *, stored: bool = True) -> str | None:
    """A matcher as a never-NULL SQL condition over `e`; None when the matcher is absent.
    stored: for stored rows (attributes guarded by stored_decimal_sql), else for ingest's validated input."""
    expression = normalize_expression(raw, field=field)
    if expression is None:
        return None
    return _checked(_truthy(_ExpressionCompiler(field, stored).compile(expression)), field)


def _top_level(raw: object, field: str, bare_prefix: str, stored: bool) -> _Sql | None:
    """A computation: a JSON Logic expression, a number, or a bare variable name."""
    expression = normalize_expression(raw, field=field, allow_bare_name=True)
    compiler = _ExpressionCompiler(field, stored)
    if isinstance(expression, str):
        if _DECIMAL_TEXT.fullmatch(expression):
            return compiler.compile(Decimal(expression))
        return compiler.variable(expression, "", bare_prefix=bare_prefix)
    if expression is None:
        return None
    if isinstance(expression, (bool, list)):
        raise InvalidInput(
            field,
            f"{json.dumps(expression)} is not a computation; pass a number, "
            'an attribute name such as "tokens", or a JSON Logic expression',
        )
    return compiler.compile(expression)


def compile_computation(raw: object, field: str = "computation", *, stored: bool = True) -> str:
    """A numeric computation as SQL over `e` (NULL = no value). A bare name is an attribute."""
    expr = _top_level(raw, field, bare_prefix="attributes", stored=stored)
    if expr is None:
        raise InvalidInput(
            field,
            'is required; pass an attribute name such as "tokens", a number, or a JSON Logic expression',
        )
    if expr.kind != "number":
        raise InvalidInput(field, f"gives {expr.what}, which is not a number; compute a number, e.g. from attributes")
    return _checked(expr.sql, field)


def compile_distinct_key(raw: object, field: str = "computation", *, stored: bool = True) -> str:
    """The text whose distinct values a UNIQUE_COUNT meter counts. A bare name is a dimension."""
    expr = _top_level(raw, field, bare_prefix="dimensions", stored=stored)
    if expr is None:
        raise InvalidInput(
            field,
            "is required for UNIQUE_COUNT; name the dimension or attribute "
            'whose distinct values are counted, e.g. "dimensions.user_id"',
        )
    if expr.kind == "number":
        # Canonical text so that 1.50 and 1.5 count as one value.
        return _checked(f"CAST(trim_scale({expr.sql}) AS text)", field)
    if expr.kind != "text":
        raise InvalidInput(field, f"gives {expr.what}; UNIQUE_COUNT counts distinct values of a dimension or attribute")
    return _checked(expr.sql, field)


def _is_count_unit(raw: object, field: str) -> bool:
    expression = normalize_expression(raw, field=field, allow_bare_name=True)
    if expression is None:
        return True
    if isinstance(expression, str) and _DECIMAL_TEXT.fullmatch(expression):
        expression = Decimal(expression)
    return not isinstance(expression, bool) and isinstance(expression, (int, Decimal)) and expression == 1


def _ordered(computations: Sequence[object], field_prefix: str) -> list[tuple[int, Mapping[str, object]]]:
    """(request index, computation) pairs in ascending `order`, orders checked to be distinct."""
    if isinstance(computations, (str, bytes)) or not isinstance(computations, Sequence):
        raise InvalidInput(field_prefix, "must be a list of computations")
    seen: dict[int, int] = {}
    entries: list[tuple[int, int, Mapping[str, object]]] = []
    for index, entry in enumerate(computations):
        field = f"{field_prefix}[{index}]"
        if not isinstance(entry, Mapping):
            raise InvalidInput(field, "must be an object with matcher, computation and order")
        order = entry.get("order")
        if isinstance(order, bool) or not isinstance(order, int):
            raise InvalidInput(
                f"{field}.order",
                "is required and must be an integer; it sets the "
                "evaluation order (the first matching computation wins)",
            )
        if order in seen:
            raise InvalidInput(
                f"{field}.order",
                f"{order} is already used by {field_prefix}[{seen[order]}]; give each computation a distinct order",
            )
        seen[order] = index
        entries.append((order, index, entry))
    return [(index, entry) for _, index, entry in sorted(entries, key=lambda item: item[0])]


def _first_match(branches: list[tuple[str | None, str]]) -> str:
    """CASE WHEN matcher THEN value ... END; an absent matcher matches everything after it."""
    whens: list[str] = []
    for condition, value in branches:
        if condition is None:
            if not whens:
                return value
            return f"(CASE {' '.join(whens)} ELSE {value} END)"
        whens.append(f"WHEN {condition} THEN {value}")
    return f"(CASE {' '.join(whens)} END)"


def value_attributes(computations: Sequence[Mapping[str, object]]) -> tuple[str, ...]:
    """Names of the attributes the computations read (not the matchers), in first-seen order: what an
    event's value for the meter is made of, so a message about that value can name them. The
    computations are compiled ones (compile_meter accepted them), so this never fails on them."""
    names: dict[str, None] = {}

    def add(name: str, bare_prefix: str | None) -> None:
        prefix, dot, rest = name.partition(".")
        if not dot and bare_prefix:
            prefix, rest = bare_prefix, name
        if prefix in ATTRIBUTE_PREFIXES and rest:
            names[rest] = None

    def walk(node: JsonValue) -> None:
        if isinstance(node, list):
            for item in node:
                walk(item)
        elif isinstance(node, dict):
            for operator, args in node.items():
                first = args[0] if isinstance(args, list) and args else args
                if operator == "var" and isinstance(first, str):
                    add(first, None)
                else:
                    walk(args)

    for entry in computations:
        expression = normalize_expression(entry.get("computation"), allow_bare_name=True)
        if isinstance(expression, str):
            if not _DECIMAL_TEXT.fullmatch(expression):
                add(expression, "attributes")  # a bare name is an attribute (compile_computation)
        else:
            walk(expression)
    return tuple(names)


def compile_meter(
    aggregation: str, computations: Sequence[Mapping[str, object]], field_prefix: str = "computations"
) -> CompiledMeter:
    """Compiles a meter; raises InvalidInput naming the field (e.g. "computations[1].matcher").
    Twice: for stored rows (value_sql, distinct_sql) and for ingest's validated input (input_*); the second
    compile of an accepted definition cannot fail (the same checks, the same counted length)."""
    name = aggregation.strip().upper() if isinstance(aggregation, str) else ""
    if name not in AGGREGATIONS:
        raise InvalidInput(
            "aggregation",
            f"{json.dumps(aggregation, default=str)} is not supported; use one of: {', '.join(AGGREGATIONS)}",
        )
    value_sql, distinct_sql = _meter_sql(name, computations, field_prefix, stored=True)
    input_value_sql, input_distinct_sql = _meter_sql(name, computations, field_prefix, stored=False)
    return CompiledMeter(name, value_sql, input_value_sql, distinct_sql, input_distinct_sql)


def _meter_sql(name: str, computations: Sequence[Mapping[str, object]], field_prefix: str,
               *, stored: bool) -> tuple[str, str | None]:
    """(value SQL, distinct SQL) of a meter of aggregation `name`."""
    one = sql_numeric_literal(1)
    branches: list[tuple[str | None, str]] = []
    keys: list[tuple[str | None, str]] = []
    for index, entry in _ordered(computations, field_prefix):
        field = f"{field_prefix}[{index}]"
        condition = compile_matcher(entry.get("matcher"), f"{field}.matcher", stored=stored)
        raw = entry.get("computation")
        if name == "COUNT":
            if not _is_count_unit(raw, f"{field}.computation"):
                raise InvalidInput(
                    f"{field}.computation",
                    'COUNT meters count matching events; pass "1" (or omit it), or use a SUM meter to add values',
                )
            branches.append((condition, one))
        elif name == "UNIQUE_COUNT":
            keys.append((condition, compile_distinct_key(raw, f"{field}.computation", stored=stored)))
        else:
            branches.append((condition, compile_computation(raw, f"{field}.computation", stored=stored)))
    if name == "UNIQUE_COUNT":
        if not keys:
            raise InvalidInput(
                field_prefix,
                'UNIQUE_COUNT needs a computation naming the value counted distinct, e.g. "dimensions.user_id"',
            )
        distinct = _first_match(keys)
        return f"(CASE WHEN {distinct} IS NOT NULL THEN {one} END)", distinct
    if not branches:
        if name != "COUNT":
            raise InvalidInput(
                field_prefix,
                f'a {name} meter needs at least one computation (e.g. {{"computation": "tokens", "order": 1}})',
            )
        return one, None
    return _first_match(branches), None
